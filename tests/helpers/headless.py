"""What the headless tier's tests share beside its fixtures: the fixtures' types, the log's
event types, and polling on the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from realtime_widget import RealtimeSession
from realtime_widget.emulator import Emulator

Open = Callable[..., RealtimeSession]
MakeEmulator = Callable[..., Emulator]


def types(s: RealtimeSession, direction: str | None = None) -> list[str]:
    """The log's event types, in order (one direction, or all)."""
    return [r["type"] for r in s.events if direction is None or r["direction"] == direction]


async def until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``check()`` on the loop until it is truthy (its value), else fail in words."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"not true within {timeout:g} s: {check}")
        await asyncio.sleep(0.02)
