"""Fixtures for the emulator tests: the netns guard, fast emulators, checked clients.

Every event any client receives is validated against the OpenAI SDK's typed schema and checked
for unique event ids and consistent response/item/index ids when the test ends.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from realtime_widget.emulator import Emulator
from tests.helpers.emu_checks import FAST, Connect
from tests.helpers.emu_client import RealtimeClient
from tests.helpers.protocol_checks import check_stream


def loopback_only() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("netns") and not loopback_only():
        pytest.skip(
            "opens WebRTC peer connections, so it runs only in a network namespace with just "
            "'lo': run the tests under scripts/in-netns"
        )


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(**FAST) as emu:
        yield emu


@pytest.fixture
async def connect(emulator: Emulator) -> AsyncIterator[Connect]:
    """``await connect()`` gives a connected client; all its events are checked at the end."""
    clients: list[tuple[RealtimeClient, Emulator]] = []

    async def make(emu: Emulator | None = None, **kwargs: Any) -> RealtimeClient:
        emu = emu or emulator
        client = RealtimeClient(emu.base_url, emu.api_key, **kwargs)
        clients.append((client, emu))
        await client.connect()
        return client

    yield make
    for client, _ in clients:
        await client.close()
    for client, emu in clients:
        check_stream(client.events)
        if emu.running:
            snap = next(c for c in emu.calls if c["id"] == client.call_id)
            recorded = [e.get("event_id") for e in snap["events_out"]]
            received = [e.get("event_id") for e in client.events]
            # The snapshot keeps the newest events_kept events: line them up with their tail.
            skipped = snap["events_out_count"] - len(recorded)
            assert received[skipped:] == recorded[: max(len(received) - skipped, 0)]
