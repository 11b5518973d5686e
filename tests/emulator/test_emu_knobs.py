"""Latency and fault knobs, and several calls at once."""

from __future__ import annotations

import asyncio
import itertools
import socket
import statistics
import time

import pytest

from realtime_widget.emulator import Emulator
from realtime_widget.emulator._call import EXHAUSTED_CLOSING_MESSAGE, MALFORMED_MESSAGE
from tests.helpers.emu_checks import Connect, user_text
from tests.helpers.emu_client import RealtimeClient

pytestmark = pytest.mark.netns

TEXT_RESPONSE = {"type": "response.create", "response": {"output_modalities": ["text"]}}


async def test_first_delta_delay_and_delta_interval(connect: Connect, emulator: Emulator) -> None:
    emulator.configure(first_delta_delay_ms=300, delta_interval_ms=40)
    client = await connect()
    client.send(user_text("one two three four five"))
    client.send(TEXT_RESPONSE)
    await client.wait_for("response.done")
    created = client.time_of(client.of_type("response.created")[0])
    deltas = [client.time_of(e) for e in client.of_type("response.output_text.delta")]
    assert 0.28 < deltas[0] - created < 0.6
    gaps = [b - a for a, b in itertools.pairwise(deltas)]
    assert len(gaps) >= 5 and statistics.median(gaps) >= 0.035


async def test_answer_delay(connect: Connect) -> None:
    with Emulator(answer_delay_ms=400) as emu:
        began = time.monotonic()
        await connect(emu)
        assert time.monotonic() - began >= 0.4


async def test_drop_channel_after(connect: Connect) -> None:
    with Emulator(drop_channel_after=3, first_delta_delay_ms=0) as emu:
        client = await connect(emu)
        client.send(TEXT_RESPONSE)
        await asyncio.wait_for(client.channel_closed.wait(), 5)
        await asyncio.sleep(0.1)
        assert len(client.events) == 3
        call = emu.calls[0]
        assert len(call["events_out"]) == 3 and "data channel closed after 3" in call["faults"][0]


async def test_close_after(connect: Connect) -> None:
    with Emulator(close_after=2, first_delta_delay_ms=0) as emu:
        client = await connect(emu)
        client.send(TEXT_RESPONSE)
        for _ in range(100):
            if emu.calls[0]["state"] == "closed":
                break
            await asyncio.sleep(0.05)
        assert emu.calls[0]["state"] == "closed"
        assert len(client.events) == 2
        assert "peer connection closed after 2" in emu.calls[0]["faults"][0]


async def test_malformed_after(connect: Connect) -> None:
    with Emulator(malformed_after=1, first_delta_delay_ms=0) as emu:
        client = await connect(emu)
        client.send(TEXT_RESPONSE)
        await client.wait_for("response.done")
        assert client.raw == [MALFORMED_MESSAGE]
        assert client.types()[0] == "session.created"  # the garbage came after event 1


async def test_concurrent_calls_are_independent(connect: Connect, emulator: Emulator) -> None:
    clients = await asyncio.gather(*(connect() for _ in range(3)))
    for i, client in enumerate(clients):
        client.send(user_text(f"caller {i}"))
        client.send(TEXT_RESPONSE)
    # One caller vanishes mid-stream; the others must not notice.
    emulator.configure(delta_interval_ms=20)
    await clients[0].wait_for("response.created")
    await clients[0].pc.close()
    for i, client in enumerate(clients[1:], start=1):
        done = (await client.wait_for("response.done"))["response"]
        assert done["output"][0]["content"][0]["text"].startswith(f"You said: caller {i}.")
    calls = {c["id"]: c for c in emulator.calls}
    assert len(calls) == 3
    for client in clients[1:]:
        assert client.call_id is not None
        assert calls[client.call_id]["state"] == "open" and len(calls[client.call_id]["items"]) == 2


async def test_stop_ends_every_call_and_frees_the_port(connect: Connect) -> None:
    emu = Emulator(first_delta_delay_ms=0).start()
    port = emu.port
    clients: list[RealtimeClient] = [await connect(emu) for _ in range(2)]
    emu.stop()
    for client in clients:
        await asyncio.wait_for(client.channel_closed.wait(), 5)
    assert [c["state"] for c in emu.calls] == ["closed", "closed"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


async def test_exhaust_after_can_end_the_call(connect: Connect) -> None:
    with Emulator(exhaust_after=4, exhaust_ends_call=True, first_delta_delay_ms=0) as emu:
        client = await connect(emu)
        client.send(TEXT_RESPONSE)
        await asyncio.wait_for(client.channel_closed.wait(), 5)
        # Four events, then Inworld's non-standard message (no type, no event_id), then the end.
        assert len(client.events) == 5
        assert client.events[-1] == EXHAUSTED_CLOSING_MESSAGE
        assert client.events[-1]["errorType"] == "SESSION_RESOURCES_EXHAUSTED"
        assert all("type" in e for e in client.events[:4])
        for _ in range(100):
            if emu.calls[0]["state"] == "closed":
                break
            await asyncio.sleep(0.02)
        call = emu.calls[0]
        assert call["state"] == "closed" and call["events_out"][-1] == EXHAUSTED_CLOSING_MESSAGE
        assert "session resources exhausted after 4 events" in call["faults"][0]
