"""Shared pieces of the emulator tests (the protocol checks live in tests/protocol_checks.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from emu_client import RealtimeClient

# Fast pacing: tests assert behaviour, not realistic latency.
FAST: dict[str, Any] = {"first_delta_delay_ms": 0.0, "delta_interval_ms": 2.0, "speech_rate": 150.0}
Connect = Callable[..., Awaitable[RealtimeClient]]


def user_text(text: str, **extra: Any) -> dict[str, Any]:
    """A client event adding a typed user message (``extra`` goes on the event)."""
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
        **extra,
    }
