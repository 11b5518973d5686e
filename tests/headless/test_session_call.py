"""A session whose call the kernel holds: connect, typed turns, auth, faults, and the socket's
life (a drop reconnects once and replays the session; a second drop fails the call loudly)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from realtime_widget import ProviderError, RealtimeSession, SessionClosedError
from realtime_widget.emulator import Emulator
from tests.conftest import SENTINEL_KEY
from tests.helpers import seam
from tests.helpers.headless import MakeEmulator, Open, types, until


async def test_connect_returns_once_the_service_confirmed_the_session(session: Open) -> None:
    s = session(instructions="Be brief.", voice="Ashley")
    connected = await s.connect()
    assert connected is s and s.status == "connected"
    assert s.server_session["audio"]["output"]["voice"] == "Ashley"
    assert s.host_info["transport"] == "websocket" and s.host_info["mid_cell"] is True
    assert types(s)[:4] == ["call.start", "channel.open", "session.update", "session.created"]
    assert "session.updated" in types(s, "server")


async def test_a_typed_turn_is_answered_heard_and_logged(session: Open) -> None:
    s = session(mic=False)
    await s.connect()
    played = s.wait_for("speaker.stopped")  # the kernel's speaker: a wait of its own
    reply = await s.ask("Hello there!")
    assert reply.status == "completed" and "Hello there!" in reply.text
    assert reply.latency_ms is not None and reply.latency_ms > 0
    local = types(s, "local")
    assert "speaker.started" in local and "audio.audible" in local
    # audio is media: the log keeps its size, not its samples
    deltas = s.events.of_type("response.output_audio.delta")
    assert deltas and all(
        "delta" not in d["event"] and d["event"]["delta_bytes"] > 0 for d in deltas
    )
    stop = await played
    assert stop["reason"] == "done" and stop["played_ms"] > 0
    assert stop["response_id"] == reply.response_id


async def test_the_sessions_live_update_goes_out_as_one_partial_update(session: Open) -> None:
    s = session(mic=False)
    await s.connect()
    updated = s.wait_for("session.updated")
    s.update_session(voice="Dennis", speed=1.2)
    event = await updated
    assert event["session"]["audio"]["output"]["voice"] == "Dennis"
    sent = s.events.of_type("session.update", direction="client")[-1]["event"]["session"]
    assert sent == {"type": "realtime", "audio": {"output": {"voice": "Dennis", "speed": 1.2}}}


async def test_basic_is_the_default_and_a_401_falls_back_to_bearer_once(
    session: Open, emu_with: MakeEmulator
) -> None:
    emu = emu_with(auth_schemes=("bearer",))
    s = session(emu)
    await s.connect()
    fallback = s.events.of_type("auth.fallback")
    assert [f["event"]["refused"] for f in fallback] == ["Basic"]
    assert fallback[0]["event"]["used"] == "Bearer"
    reply = await s.ask("Still here?")
    assert reply.status == "completed"


async def test_a_wrong_key_is_a_provider_error_naming_status_and_schemes(
    session: Open, emu_with: MakeEmulator
) -> None:
    emu = emu_with(api_key=SENTINEL_KEY)
    s = session(emu, api_key=SENTINEL_KEY + "-wrong")
    with pytest.raises(ProviderError) as caught:
        await s.connect()
    words = str(caught.value)
    assert caught.value.status == 401 and "HTTP 401" in words
    assert "'Basic' and 'Bearer'" in words
    assert SENTINEL_KEY not in words and SENTINEL_KEY not in s.error
    assert SENTINEL_KEY not in repr(s) and s.status == "failed"
    # the session stays usable: a right key connects on the next try
    emu2 = emu_with(api_key=SENTINEL_KEY)
    s2 = session(emu2)
    await s2.connect()
    assert s2.status == "connected"


async def test_a_second_connect_and_a_connect_after_close_are_refused_in_words(
    session: Open,
) -> None:
    s = session(mic=False)
    await s.connect()
    with pytest.raises(RuntimeError, match="connected already"):
        s.connect()
    await s.aclose()
    with pytest.raises(SessionClosedError, match="closed"):
        s.connect()


async def test_async_with_connects_and_hangs_up(emulator: Emulator) -> None:
    async with RealtimeSession(
        base_url=emulator.base_url, api_key=emulator.api_key, mic=False
    ) as s:
        assert s.status == "connected"
        assert (await s.ask("One thing.")).status == "completed"
    assert s.status == "disconnected"
    assert "channel.close" in types(s, "local")


async def test_a_frame_that_is_not_json_is_logged_and_the_call_goes_on(
    session: Open, emu_with: MakeEmulator
) -> None:
    emu = emu_with(malformed_after=3)
    s = session(emu, mic=False)
    await s.connect()
    reply = await s.ask("Are you there?")
    assert reply.status == "completed"
    errors = s.events.of_type("parse_error")
    assert len(errors) == 1 and errors[0]["event"]["raw"]


async def test_typing_over_the_agent_interrupts_it_then_asks(
    session: Open, emu_with: MakeEmulator
) -> None:
    """The gap a page had too: a message typed while the agent answers was refused
    (conversation_already_has_active_response). Now it stops the answer, as the Stop button
    does, and is answered."""
    emu = emu_with(speech_rate=15.0)  # a reply that speaks for seconds
    s = session(emu, mic=False)
    await s.connect()
    first = s.ask("Tell me a long story about the sea and the ships and the harbour.")
    await s.wait_for("response.output_audio.delta", timeout=10)
    await asyncio.sleep(0.3)
    s.send_text("Stop, what time is it?")
    second = await s.wait_for(
        "response.done",
        where=lambda e: e["response"]["status"] == "completed",
        timeout=30,
    )
    assert second["response"]["status"] == "completed"
    await first.settled()
    assert first.status == "cancelled"
    sent = types(s, "client")
    i = sent.index("response.cancel")
    assert sent[i : i + 4] == [
        "response.cancel",
        "conversation.item.truncate",
        "conversation.item.create",
        "response.create",
    ]
    assert "output_audio_buffer.clear" not in sent  # WebRTC's own: the speaker stops itself
    errors = [e["event"]["error"].get("code") for e in s.events.of_type("error")]
    assert "conversation_already_has_active_response" not in errors
    cut = s.events.of_type("speaker.stopped")[0]["event"]
    assert cut["reason"] == "cleared" and cut["played_ms"] > 0
    truncate = s.events.of_type("conversation.item.truncate")[0]["event"]
    assert abs(truncate["audio_end_ms"] - cut["played_ms"]) <= 1


# -- a service of our own, for what the emulator does not do ------------------------------------

Handler = Callable[[web.WebSocketResponse, int], Awaitable[None]]


@contextlib.asynccontextmanager
async def fake_service(handler: Handler) -> AsyncIterator[str]:
    """A WebSocket server on loopback at Inworld's path; ``handler(ws, n)`` runs the n-th
    connection. Yields its http base URL."""
    count = 0
    sockets: list[web.WebSocketResponse] = []

    async def socket(request: web.Request) -> web.WebSocketResponse:
        nonlocal count
        count += 1
        ws = web.WebSocketResponse()
        sockets.append(ws)
        await ws.prepare(request)
        await handler(ws, count)
        return ws

    app = web.Application()
    app.router.add_get("/api/v1/realtime/session", socket)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for ws in sockets:  # what a handler still holds ends with the service
            await ws.close()
        await runner.cleanup()


async def answer_updates(ws: web.WebSocketResponse, extra: list[dict[str, Any]]) -> None:
    """session.created, then session.updated for each update (and ``extra`` after the first)."""
    await ws.send_json({"type": "session.created", "event_id": "e0", "session": {}})
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            break
        event = json.loads(msg.data)
        if event.get("type") == "session.update":
            await ws.send_json({"type": "session.updated", "session": event["session"]})
            for e in extra:
                await ws.send_json(e)
            extra = []


async def test_an_unknown_event_is_kept_as_it_came(session: Open) -> None:
    odd = {"type": "vendor.surprise", "payload": [1, 2]}

    async def handler(ws: web.WebSocketResponse, _n: int) -> None:
        await answer_updates(ws, [odd])

    async with fake_service(handler) as url:
        s = session(base_url=url, api_key="k", mic=False)
        await s.connect()
        kept = await until(lambda: s.events.of_type("vendor.surprise"))
        assert kept[0]["event"] == odd
        assert s.status == "connected"


async def test_a_socket_that_drops_reconnects_once_and_replays_the_session(
    session: Open,
) -> None:
    updates: list[tuple[int, dict[str, Any]]] = []

    async def handler(ws: web.WebSocketResponse, n: int) -> None:
        await ws.send_json({"type": "session.created", "session": {}})
        async for msg in ws:
            event = json.loads(msg.data)
            if event.get("type") == "session.update":
                updates.append((n, event["session"]))
                await ws.send_json({"type": "session.updated", "session": event["session"]})
                if n == 1 and len(updates) == 2:  # the live edit went in: now drop
                    await ws.close(code=1011)
                    return

    async with fake_service(handler) as url:
        s = session(base_url=url, api_key="k", mic=False, voice="Clive")
        await s.connect()
        s.voice = "Ashley"
        for _ in range(100):
            if any(n == 2 for n, _ in updates):
                break
            await asyncio.sleep(0.05)
        assert [n for n, _ in updates] == [1, 1, 2]
        replayed = updates[-1][1]  # the whole session, with the live edit in it
        assert replayed["audio"]["output"]["voice"] == "Ashley"
        assert replayed["instructions"] == s.instructions
        assert s.status == "connected"
        local = types(s, "local")
        assert local.index("socket.reconnecting") < local.index("socket.reconnected")


async def test_a_drop_mid_reply_fails_that_reply_and_the_call_goes_on(session: Open) -> None:
    async def handler(ws: web.WebSocketResponse, n: int) -> None:
        await ws.send_json({"type": "session.created", "session": {}})
        async for msg in ws:
            event = json.loads(msg.data)
            if event.get("type") == "session.update":
                await ws.send_json({"type": "session.updated", "session": event["session"]})
            elif event.get("type") == "response.create" and n == 1:
                await ws.send_json({"type": "response.created", "response": {"id": "r1"}})
                await ws.close(code=1011)
                return

    async with fake_service(handler) as url:
        s = session(base_url=url, api_key="k", mic=False)
        await s.connect()
        reply = s.ask("Anyone?")
        with pytest.raises(Exception, match="dropped mid-reply"):
            await reply
        await until(lambda: "socket.reconnected" in types(s, "local"))
        assert s.status == "connected"
        assert "response.created" in types(s, "server")  # the log kept what came before


async def test_a_second_drop_fails_the_call_loudly_and_keeps_the_log(session: Open) -> None:
    async def handler(ws: web.WebSocketResponse, n: int) -> None:
        await ws.send_json({"type": "session.created", "session": {}})
        async for msg in ws:
            event = json.loads(msg.data)
            if event.get("type") == "session.update":
                await ws.send_json({"type": "session.updated", "session": event["session"]})
                if n == 2:  # the replay went in: drop again
                    await ws.close(code=1011)
                    return
            elif event.get("type") == "response.create" and n == 1:
                await ws.send_json({"type": "response.created", "response": {"id": "r1"}})
                await ws.close(code=1011)
                return

    async with fake_service(handler) as url:
        s = session(base_url=url, api_key="k", mic=False)
        await s.connect()
        reply = s.ask("Anyone?")
        with pytest.raises(Exception, match="dropped"):
            await reply
        await until(lambda: s.status == "failed")
        assert "dropped again" in s.error
        kept = len(s.events)
        assert kept > 5 and "response.created" in types(s, "server")
        # connect() works again on the same session (the service's third socket behaves)
        await s.connect()
        assert s.status == "connected" and len(s.events) > kept


async def test_a_url_that_is_not_a_realtime_service_fails_at_connect(session: Open) -> None:
    async def silent(ws: web.WebSocketResponse, _n: int) -> None:
        async for _msg in ws:  # takes everything, says nothing
            pass

    s = session(base_url="http://127.0.0.1:9", api_key="k")  # nothing listens
    with pytest.raises(ProviderError, match="Could not open the realtime WebSocket"):
        await s.connect()

    async with fake_service(silent) as url:
        import realtime_widget._kernel_call as kc

        before, kc.CREATED_TIMEOUT_S = kc.CREATED_TIMEOUT_S, 1.0
        try:
            s2 = session(base_url=url, api_key="k")
            with pytest.raises(ProviderError, match=r"no session\.created"):
                await s2.connect(timeout=10)
        finally:
            kc.CREATED_TIMEOUT_S = before


async def test_the_key_is_in_no_frame_record_repr_error_or_export(
    session: Open, emu_with: MakeEmulator, tmp_path: Any
) -> None:
    emu = emu_with(api_key=SENTINEL_KEY)
    s = session(emu, mic=False, log_path=tmp_path / "log.jsonl", record=True)
    await s.connect()
    await s.ask("Say something.")
    s.events.to_jsonl(tmp_path / "export.jsonl")
    s.events.to_parquet(tmp_path / "export.parquet")
    frames = json.dumps([c for c in emu.calls], default=str)
    await s.aclose()
    assert SENTINEL_KEY not in frames  # what the service received (its snapshots)
    for path in tmp_path.iterdir():
        assert SENTINEL_KEY.encode() not in path.read_bytes(), path.name
    assert SENTINEL_KEY not in repr(s) and SENTINEL_KEY not in repr(seam.transport(s))
    assert SENTINEL_KEY not in json.dumps(s.host_info) + s.error
