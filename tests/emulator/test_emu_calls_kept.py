"""``emu.calls`` stays bounded: live calls are always kept, finished ones only the newest N."""

from __future__ import annotations

import httpx
import pytest

from realtime_widget.emulator import Emulator
from tests.helpers.emu_checks import FAST
from tests.helpers.emu_client import RealtimeClient

pytestmark = pytest.mark.netns


async def test_finished_calls_are_pruned_and_live_ones_kept() -> None:
    emu = Emulator(keep_finished_calls=2, **FAST).start()
    clients = [RealtimeClient(emu.base_url, emu.api_key, mic=False) for _ in range(4)]
    auth = {"Authorization": f"Bearer {emu.api_key}"}
    try:
        for client in clients:
            await client.connect()
        oldest, first, second, third = (client.call_id for client in clients)
        async with httpx.AsyncClient(base_url=emu.base_url, headers=auth) as http:
            for call_id in (first, second, third):  # the oldest call stays live throughout
                hangup = await http.post(f"/v1/realtime/calls/{call_id}/hangup")
                assert hangup.status_code == 200
            snapshots = emu.calls
            assert [c["id"] for c in snapshots] == [oldest, second, third]  # creation order
            assert [c["state"] for c in snapshots[1:]] == ["closed", "closed"]
            assert snapshots[0]["state"] == "open"
            listed = (await http.get("/emulator/calls")).json()
            assert [c["id"] for c in listed] == [oldest, second, third]
            gone = await http.post(f"/v1/realtime/calls/{first}/hangup")
            assert gone.status_code == 404
    finally:
        for client in clients:
            await client.close()
        emu.stop()
    # Stopping finishes the oldest call too: it is now the newest finished one.
    assert [c["id"] for c in emu.calls] == [oldest, third]
