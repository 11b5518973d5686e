"""The kernel's sideband client against a fake service on 127.0.0.1: refusal, early close,
drop and one reconnect, fallback, send and receive."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from realtime_widget._sideband import Sideband, SidebandUnavailable, sideband_url
from tests.conftest import SENTINEL_KEY

AUTH = {"Authorization": f"Bearer {SENTINEL_KEY}"}
Script = Callable[[ServerConnection, int], Awaitable[None]]


class FakeService:
    """A sideband endpoint whose n-th connection (0-based) runs ``script(ws, n)``; ``refuse``
    maps a connection number to the HTTP status its handshake is refused with."""

    def __init__(self, script: Script, refuse: dict[int, int] | None = None) -> None:
        self.script = script
        self.refuse = refuse or {}
        self.handshakes = 0
        self.headers: list[Headers] = []
        self.received: list[dict[str, Any]] = []
        self.server: Server | None = None

    def process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        n = self.handshakes
        self.handshakes += 1
        self.headers.append(request.headers)
        ws.number = n  # type: ignore[attr-defined]
        if n in self.refuse:
            body = json.dumps({"error": {"message": f"no sideband for {SENTINEL_KEY}"}})
            response = ws.respond(self.refuse[n], body)
            response.headers["Content-Type"] = "application/json"
            return response
        return None

    async def handler(self, ws: ServerConnection) -> None:
        await self.script(ws, ws.number)  # type: ignore[attr-defined]

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return sideband_url(f"http://127.0.0.1:{port}", "call-1")


@pytest.fixture
async def service() -> AsyncIterator[Callable[..., Awaitable[FakeService]]]:
    made: list[FakeService] = []

    async def make(script: Script, refuse: dict[int, int] | None = None) -> FakeService:
        fake = FakeService(script, refuse)
        fake.server = await serve(
            fake.handler, "127.0.0.1", 0, process_request=fake.process_request
        )
        made.append(fake)
        return fake

    yield make
    for fake in made:
        assert fake.server is not None
        fake.server.close()
        await fake.server.wait_closed()


class Heard:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.states: list[tuple[str, str]] = []

    def event(self, event: dict[str, Any], t_ms: float) -> None:
        self.events.append(event)
        self.times.append(t_ms)

    def state(self, state: str, reason: str) -> None:
        self.states.append((state, reason))

    def names(self) -> list[str]:
        return [s for s, _ in self.states]

    async def until(self, state: str, timeout: float = 5.0) -> str:
        for _ in range(int(timeout / 0.01)):
            for s, reason in self.states:
                if s == state:
                    return reason
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {state!r}; states were {self.states}")


def client(fake: FakeService, heard: Heard, **kw: Any) -> Sideband:
    clock = iter(range(1000, 10**9, 10))
    return Sideband(
        fake.url, AUTH, heard.event, heard.state, clock=lambda: float(next(clock)), **kw
    )


async def echo_events(ws: ServerConnection, n: int) -> None:
    await ws.send(json.dumps({"type": "session.updated", "event_id": f"e{n}"}))
    async for message in ws:
        event = json.loads(message)
        await ws.send(json.dumps({"type": "ack", "event_id": f"ack_{event['event_id']}"}))


async def test_events_both_ways_with_the_kernel_receive_time(service) -> None:
    received: list[dict[str, Any]] = []

    async def script(ws: ServerConnection, n: int) -> None:
        await ws.send(json.dumps({"type": "session.updated", "event_id": "e0"}))
        await ws.send("not json")  # ignored, the line goes on
        await ws.send("[1, 2]")
        async for message in ws:
            received.append(json.loads(message))
            await ws.send(json.dumps({"type": "ack", "event_id": f"ack{len(received)}"}))

    fake = await service(script)
    heard = Heard()
    sideband = client(fake, heard)
    assert await sideband.start() is True
    assert heard.states == [("connecting", ""), ("open", "")] and sideband.open
    assert fake.headers[0]["Authorization"] == f"Bearer {SENTINEL_KEY}"
    events = [{"type": "response.create", "event_id": f"c{i}"} for i in range(3)]
    assert sideband.send(events) is True
    while len(heard.events) < 4:
        await asyncio.sleep(0.01)
    assert received == events  # in order
    assert [e["event_id"] for e in heard.events] == ["e0", "ack1", "ack2", "ack3"]
    assert heard.times == [1000.0, 1030.0, 1040.0, 1050.0]  # stamped on arrival, clock()
    assert sideband.received == 4
    await sideband.close()
    assert heard.states[-1] == ("closed", "closed by the kernel")
    assert sideband.send(events) is False  # closed: the caller uses the data channel
    await sideband.close()  # twice is fine
    assert heard.names().count("closed") == 1
    assert SENTINEL_KEY not in repr(sideband)


@pytest.mark.parametrize("status", [404, 401, 403])
async def test_a_refused_handshake_fails_once_with_the_reason(service, status: int) -> None:
    fake = await service(echo_events, refuse={0: status})
    heard = Heard()
    sideband = client(fake, heard)
    assert await sideband.start() is False
    assert heard.names() == ["connecting", "failed"]
    reason = heard.states[-1][1]
    assert f"refused at the handshake: HTTP {status}" in reason
    assert "no sideband for" in reason and SENTINEL_KEY not in reason
    await asyncio.sleep(0.1)
    assert fake.handshakes == 1  # a refusal is not retried
    assert sideband.send([{"type": "response.create"}]) is False


async def test_nothing_listening_fails(service) -> None:
    fake = await service(echo_events)
    url = fake.url
    assert fake.server is not None
    fake.server.close()
    await fake.server.wait_closed()
    heard = Heard()
    sideband = Sideband(url, AUTH, heard.event, heard.state, open_timeout=1)
    assert await sideband.start() is False
    assert heard.names() == ["connecting", "failed"]
    assert "could not connect" in heard.states[-1][1]


async def test_an_early_close_is_a_refusal_not_a_drop(service) -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        await ws.close(1008, "policy")

    fake = await service(script)
    heard = Heard()
    sideband = client(fake, heard)
    assert await sideband.start() is True
    reason = await heard.until("failed")
    assert reason == "closed early (code 1008: policy)"
    await asyncio.sleep(0.1)
    assert fake.handshakes == 1 and heard.names() == ["connecting", "open", "failed"]


async def test_a_drop_reconnects_once_then_falls_back(service) -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        await ws.send(json.dumps({"type": "session.updated", "event_id": f"e{n}"}))
        await asyncio.sleep(0.05)
        if n == 0:
            await ws.close(1011, "going down")
        else:
            ws.transport.abort()  # the network went away: no close frame (1006)

    fake = await service(script)
    heard = Heard()
    sideband = client(fake, heard)
    await sideband.start()
    reason = await heard.until("failed")
    assert reason == "dropped again after a reconnect (code 1006)"
    assert heard.states == [
        ("connecting", ""),
        ("open", ""),
        ("reconnecting", "dropped (code 1011: going down)"),
        ("open", "reconnected"),
        ("failed", reason),
    ]
    assert [e["event_id"] for e in heard.events] == ["e0", "e1"]
    assert fake.handshakes == 2
    assert fake.headers[1]["Authorization"] == f"Bearer {SENTINEL_KEY}"  # same auth again


async def test_events_queued_through_a_reconnect_go_out_after_it(service) -> None:
    received: list[str] = []

    async def script(ws: ServerConnection, n: int) -> None:
        await ws.send(json.dumps({"type": "x", "event_id": f"e{n}"}))
        if n == 0:
            await asyncio.sleep(0.05)
            await ws.close(1011, "drop")
            return
        async for message in ws:
            received.append(json.loads(message)["event_id"])

    fake = await service(script)
    heard = Heard()
    sideband: Sideband | None = None

    def on_state(state: str, reason: str) -> None:
        heard.state(state, reason)
        if state == "reconnecting":
            assert sideband is not None and sideband.send([{"type": "y", "event_id": "during"}])

    sideband = Sideband(fake.url, AUTH, heard.event, on_state)
    await sideband.start()
    await heard.until("reconnecting")
    for _ in range(300):
        if received:
            break
        await asyncio.sleep(0.01)
    assert received == ["during"]
    assert sideband.unsent() == []
    await sideband.close()


async def test_a_refused_reconnect_falls_back_and_hands_back_the_unsent(service) -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        await ws.send(json.dumps({"type": "x", "event_id": "e0"}))
        await asyncio.sleep(0.05)
        await ws.close(1011, "drop")

    fake = await service(script, refuse={1: 403})
    heard = Heard()
    sideband: Sideband | None = None
    queued = [{"type": "response.create", "event_id": "q1"}]

    def on_state(state: str, reason: str) -> None:
        heard.state(state, reason)
        if state == "reconnecting":
            assert sideband is not None and sideband.send(queued)

    sideband = Sideband(fake.url, AUTH, heard.event, on_state)
    await sideband.start()
    reason = await heard.until("failed")
    assert "refused at the handshake: HTTP 403" in reason
    assert heard.names() == ["connecting", "open", "reconnecting", "failed"]
    assert sideband.unsent() == queued  # for the data channel
    assert sideband.unsent() == []  # taken once


async def test_a_normal_close_is_the_end_not_a_failure(service) -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        await ws.send(json.dumps({"type": "x", "event_id": "e0"}))
        await ws.close(1000, "call ended")

    fake = await service(script)
    heard = Heard()
    sideband = client(fake, heard)
    await sideband.start()
    assert await heard.until("closed") == "call ended"
    await asyncio.sleep(0.1)
    assert "failed" not in heard.names() and fake.handshakes == 1


async def test_a_listener_bug_does_not_end_the_sideband(service) -> None:
    fake = await service(echo_events)
    got: list[str] = []

    def on_event(event: dict[str, Any], t_ms: float) -> None:
        got.append(event["event_id"])
        raise RuntimeError("listener bug")

    states: list[str] = []
    sideband = Sideband(fake.url, AUTH, on_event, lambda s, r: states.append(s))
    await sideband.start()
    sideband.send([{"type": "a", "event_id": "1"}, {"type": "b", "event_id": "2", "bad": {1j}}])
    sideband.send([{"type": "c", "event_id": "3"}])
    for _ in range(300):
        if len(got) >= 3:
            break
        await asyncio.sleep(0.01)
    assert got == ["e0", "ack_1", "ack_3"]  # the unsendable event is dropped, not the rest
    assert states == ["connecting", "open"]
    await sideband.close()


def test_the_url_is_wss_for_https_and_ws_for_http() -> None:
    assert sideband_url("https://api.inworld.ai", "abc") == (
        "wss://api.inworld.ai/v1/realtime?call_id=abc"
    )
    assert sideband_url("http://127.0.0.1:8123/api/", "a b/c") == (
        "ws://127.0.0.1:8123/v1/realtime?call_id=a%20b%2Fc"
    )
    with pytest.raises(ValueError, match="base_url"):
        sideband_url("ftp://x", "abc")
    with pytest.raises(ValueError, match="call_id"):
        sideband_url("https://x", "")


def test_without_the_extra_the_message_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "websockets.asyncio.client", None)
    with pytest.raises(SidebandUnavailable, match=r"realtime-widget\[sideband\]"):
        Sideband("ws://127.0.0.1:1/v1/realtime?call_id=x", AUTH, print, print)
