"""Facts about the provider's session that the widget and the emulator must agree on.

One home for them: the widget validates and offers these values (``_session.py``,
``_controls.py``), the emulator validates ``session.update`` against them and runs its VAD with
them (``emulator/_session_state.py``, ``emulator/_vad.py``). Pure data, no imports, so the
emulator can use it without pulling in traitlets.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

DEFAULT_VOICE = "Clive"
DEFAULT_TTS_MODEL = "inworld-tts-1.5-mini"
# Voices from the provider's docs: suggestions for UIs; the service accepts any name.
KNOWN_VOICES = ("Clive", "Ashley", "Dennis", "Sarah", "Hades")

SPEED_RANGE = (0.5, 1.5)  # Inworld's documented clamp (OpenAI allows 0.25-1.5)
TEMPERATURE_RANGE = (0.0, 2.0)
TOOL_CHOICES = ("auto", "none", "required")
NOISE_REDUCTION = ("near_field", "far_field")

TURN_DETECTION_TYPES = ("semantic_vad", "server_vad")
EAGERNESS = ("low", "medium", "high", "auto")
DEFAULT_EAGERNESS = "medium"

# server_vad defaults (the provider's): threshold 0..1, padding and silence in ms.
VAD_THRESHOLD = 0.5
VAD_PREFIX_PADDING_MS = 300
VAD_SILENCE_DURATION_MS = 500
# server_vad's optional idle timeout (ms without speech before the service nudges a reply),
# OpenAI's documented range; the provider documents the key, not its limits.
IDLE_TIMEOUT_RANGE_MS = (5_000, 30_000)
# Keys a turn_detection of each type may carry beyond its defaults (sent only when set).
TURN_DETECTION_OPTIONAL: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {"semantic_vad": (), "server_vad": ("idle_timeout_ms",)}
)

# What a turn_detection of each type holds when the user gives only its type (read-only views:
# copy before editing).
SEMANTIC_VAD_DEFAULTS: MappingProxyType[str, Any] = MappingProxyType(
    {
        "type": "semantic_vad",
        "eagerness": DEFAULT_EAGERNESS,
        "create_response": True,
        "interrupt_response": True,
    }
)
SERVER_VAD_DEFAULTS: MappingProxyType[str, Any] = MappingProxyType(
    {
        "type": "server_vad",
        "threshold": VAD_THRESHOLD,
        "prefix_padding_ms": VAD_PREFIX_PADDING_MS,
        "silence_duration_ms": VAD_SILENCE_DURATION_MS,
        "create_response": True,
        "interrupt_response": True,
    }
)
