"""Shared pieces of the emulator tests (the protocol checks live in tests/protocol_checks.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.helpers.emu_client import RealtimeClient

# Fast pacing: tests assert behaviour, not realistic latency. The protocol tests drive turns
# with synthetic tones and the formant voice (exact lengths, any speed), which a speech model
# rightly does not take for speech: they pin the energy VAD, the formant voice and the
# placeholder transcript. The real voice (Silero, faster-whisper, espeak-ng) has its own tests
# (test_emu_real_voice.py) with VOICE.
FAST: dict[str, Any] = {
    "first_delta_delay_ms": 0.0,
    "delta_interval_ms": 2.0,
    "speech_rate": 150.0,
    "vad": "energy",
    "tts": "formant",
    "stt_model": "none",
}
VOICE: dict[str, Any] = {"first_delta_delay_ms": 0.0, "delta_interval_ms": 2.0}
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
