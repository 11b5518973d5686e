"""The emulated session's state: defaults, validation of ``session.update`` payloads, merging.

A ``session.update`` is validated as a whole before anything is applied, so an invalid field
leaves the session exactly as it was (the provider documents the same). Keys the emulator does
not know are ignored, the way Inworld ignores e.g. ``provider_data``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .._spec import (
    DEFAULT_TTS_MODEL,
    DEFAULT_VOICE,
    EAGERNESS,
    NOISE_REDUCTION,
    SEMANTIC_VAD_DEFAULTS,
    SERVER_VAD_DEFAULTS,
    SPEED_RANGE,
    TEMPERATURE_RANGE,
    TURN_DETECTION_TYPES,
)
from ._errors import ClientError
from ._ids import new_id
from ._validate import (
    Validator,
    any_object,
    audio_format,
    boolean,
    enum,
    integer,
    list_of,
    max_tokens,
    modalities,
    nullable,
    number,
    obj,
    string,
    tool,
    tool_choice,
    type_error,
    voice,
)

AUDIO_FORMAT: dict[str, Any] = {"type": "audio/pcm", "rate": 24000}
# The service's default recognizer: a transcription sent without a model gets it.
DEFAULT_STT_MODEL = "inworld/inworld-stt-1"


def default_turn_detection(kind: str) -> dict[str, Any]:
    if kind == "server_vad":
        # The service echoes idle_timeout_ms (off by default), which the widget never sends.
        return {**SERVER_VAD_DEFAULTS, "idle_timeout_ms": None}
    return dict(SEMANTIC_VAD_DEFAULTS)


def default_session() -> dict[str, Any]:
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": new_id("sess"),
        "model": "inworld/realtime-emulator",
        "instructions": "",
        "output_modalities": ["audio"],
        "temperature": 0.8,
        "max_output_tokens": "inf",
        "tools": [],
        "tool_choice": "auto",
        "audio": {
            "input": {
                "format": dict(AUDIO_FORMAT),
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": default_turn_detection("semantic_vad"),
            },
            "output": {
                "format": dict(AUDIO_FORMAT),
                "voice": DEFAULT_VOICE,
                "model": DEFAULT_TTS_MODEL,
                "speed": 1.0,
            },
        },
        "providerData": {},
    }


_TURN_DETECTION_FIELDS: dict[str, dict[str, Validator]] = {
    "server_vad": {
        "type": enum(*TURN_DETECTION_TYPES),
        "threshold": number(0.0, 1.0),
        "prefix_padding_ms": integer(0, 10_000),
        "silence_duration_ms": integer(0, 10_000),
        "idle_timeout_ms": nullable(integer(5_000, 30_000)),
        "create_response": boolean,
        "interrupt_response": boolean,
    },
    "semantic_vad": {
        "type": enum(*TURN_DETECTION_TYPES),
        "eagerness": enum(*EAGERNESS),
        "create_response": boolean,
        "interrupt_response": boolean,
    },
}


def _turn_detection(current: dict[str, Any] | None) -> Validator:
    """Validate a (partial) turn_detection against the type it will have after the merge."""

    def check(value: Any, param: str) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise type_error(param, "an object or null", value)
        kind = value.get("type", (current or {}).get("type"))
        if kind is None:
            raise ClientError(
                "missing_required_parameter", f"{param}.type", f"Missing '{param}.type'."
            )
        enum(*TURN_DETECTION_TYPES)(kind, f"{param}.type")
        return obj(_TURN_DETECTION_FIELDS[kind])(value, param)

    return check


def _session_validator(current: Mapping[str, Any]) -> Validator:
    current_td = current.get("audio", {}).get("input", {}).get("turn_detection")
    return obj(
        {
            "type": enum("realtime"),
            "model": string,
            "instructions": string,
            "output_modalities": modalities,
            "temperature": number(*TEMPERATURE_RANGE),
            "max_output_tokens": max_tokens,
            "tools": list_of(tool),
            "tool_choice": tool_choice,
            "providerData": any_object,
            "audio": obj(
                {
                    "input": obj(
                        {
                            # Inworld takes 8-48 kHz input PCM (it has no effect under WebRTC).
                            "format": audio_format((8000, 48000)),
                            "transcription": nullable(
                                obj({"model": string, "language": string, "prompt": string})
                            ),
                            "noise_reduction": nullable(obj({"type": enum(*NOISE_REDUCTION)})),
                            "turn_detection": _turn_detection(current_td),
                        }
                    ),
                    "output": obj(
                        {
                            "format": audio_format(),
                            "voice": voice,
                            "model": string,
                            "speed": number(*SPEED_RANGE),
                        }
                    ),
                }
            ),
        }
    )


def validate_session_update(current: Mapping[str, Any], update: Any) -> dict[str, Any]:
    """Return the cleaned partial update, or raise ``ClientError`` for the first bad field."""
    cleaned: dict[str, Any] = _session_validator(current)(update, "session")
    return cleaned


def merge_session(current: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge a validated partial update: objects merge, everything else is replaced."""
    merged = copy.deepcopy(dict(current))
    _merge_into(merged, update, path=())
    transcription = merged.get("audio", {}).get("input", {}).get("transcription")
    if isinstance(transcription, dict) and "model" not in transcription:
        transcription["model"] = DEFAULT_STT_MODEL
    return merged


def _merge_into(target: dict[str, Any], update: Mapping[str, Any], path: tuple[str, ...]) -> None:
    for key, value in update.items():
        here = (*path, key)
        old = target.get(key)
        if here == ("audio", "input", "turn_detection") and isinstance(value, dict):
            kind = value.get("type")
            if old is None or (kind is not None and kind != old.get("type")):
                # A new kind of turn detection starts from that kind's defaults, so a
                # semantic_vad's eagerness never leaks into a server_vad and vice versa.
                old = default_turn_detection(kind or "semantic_vad")
                target[key] = old
        if isinstance(value, dict) and isinstance(old, dict) and key != "format":
            # A format is replaced whole: audio/pcmu must not keep audio/pcm's rate.
            _merge_into(old, value, here)
        else:
            target[key] = copy.deepcopy(value)
