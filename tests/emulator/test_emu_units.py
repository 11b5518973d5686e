"""Pure pieces, without WebRTC: the VAD, session merging, the synthetic voice, the responder."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from realtime_widget.emulator import ResponseContext, TextReply, ToolCall, default_responder
from realtime_widget.emulator._audio import SAMPLE_RATE, frame_rms, speech_duration_s, synthesize
from realtime_widget.emulator._backchannel import (
    BackchannelConfig,
    BackchannelTurn,
    audio_deltas,
    backchannel_config,
)
from realtime_widget.emulator._conversation import cut_transcript
from realtime_widget.emulator._errors import ClientError
from realtime_widget.emulator._ratelimits import RateLimits
from realtime_widget.emulator._session_state import (
    default_session,
    merge_session,
    validate_session_update,
)
from realtime_widget.emulator._vad import EnergyVad, VadEvent, vad_params


def run_vad(
    turn_detection: dict[str, object], pattern: list[tuple[float, float]]
) -> list[VadEvent]:
    """Feed 20 ms frames: ``pattern`` is (seconds, rms) runs."""
    params = vad_params(turn_detection)
    assert params is not None
    vad, events, t = EnergyVad(params), [], 0.0
    for seconds, rms in pattern:
        for _ in range(round(seconds / 0.02)):
            event = vad.feed(rms, t, t + 20)
            t += 20
            if event:
                events.append(event)
    return events


PAUSED = [(0.5, 0.0), (0.6, 0.2), (0.45, 0.0), (0.6, 0.2), (1.5, 0.0)]


@pytest.mark.parametrize(("eagerness", "turns"), [("high", 2), ("medium", 1), ("low", 1)])
def test_semantic_vad_eagerness_sets_the_silence_needed(eagerness: str, turns: int) -> None:
    events = run_vad({"type": "semantic_vad", "eagerness": eagerness}, PAUSED)
    assert [e.kind for e in events] == ["speech_started", "speech_stopped"] * turns


@pytest.mark.parametrize(("silence_ms", "turns"), [(200, 2), (800, 1)])
def test_server_vad_silence_duration(silence_ms: int, turns: int) -> None:
    events = run_vad({"type": "server_vad", "silence_duration_ms": silence_ms}, PAUSED)
    assert len(events) == 2 * turns
    assert events[-1].audio_ms == pytest.approx(2150 + silence_ms, abs=20)
    assert events[0].audio_ms == pytest.approx(500 - 300, abs=20)  # prefix padding included


def test_vad_ignores_clicks_and_quiet_noise() -> None:
    events = run_vad(
        {"type": "semantic_vad"},
        [(0.02, 0.5), (0.5, 0.0), (1.0, 0.021), (0.5, 0.0)],  # a click, a soft tone
    )
    assert events == []
    assert vad_params(None) is None


def test_merge_keeps_untouched_fields_and_is_a_copy() -> None:
    session = default_session()
    update = validate_session_update(session, {"audio": {"output": {"voice": "Sarah"}}, "x": 1})
    merged = merge_session(session, update)
    assert merged["audio"]["output"]["voice"] == "Sarah" and "x" not in merged
    assert merged["audio"]["output"]["speed"] == 1.0
    assert session["audio"]["output"]["voice"] == "Clive"  # the original is untouched


def test_validation_names_the_bad_param() -> None:
    with pytest.raises(ClientError) as info:
        validate_session_update(default_session(), {"tools": [{"type": "function", "name": 3}]})
    assert info.value.param == "session.tools[0].name" and info.value.code == "invalid_type"


def test_synthetic_voice_length_follows_text_and_is_audible() -> None:
    short, long = synthesize("Hi there.", 15), synthesize("Hi there. " * 4, 15)
    assert len(short) == round(speech_duration_s("Hi there.", 15) * SAMPLE_RATE)
    assert len(long) > 3.5 * len(short)
    assert 0.05 < frame_rms(long) < 0.3
    assert np.array_equal(short, synthesize("Hi there.", 15))  # deterministic
    assert len(synthesize("Hi there.", 15, speed=1.5)) < len(short)
    assert len(synthesize("", 15)) == 0


def context(items: list[dict[str, Any]], **extra: object) -> ResponseContext:
    base: dict[str, object] = {
        "session": {},
        "instructions": "",
        "items": items,
        "tools": [],
        "tool_choice": "auto",
        "output_modalities": ["text"],
    }
    return ResponseContext(**{**base, **extra})  # type: ignore[arg-type]


def test_default_responder() -> None:
    user: dict[str, Any] = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Hi"}],
    }
    assert default_responder(context([user])) == TextReply(
        "You said: Hi. This is the local realtime emulator."
    )
    asked = {**user, "content": [{"type": "input_text", "text": "What can you do? "}]}
    assert default_responder(context([asked])) == TextReply(
        "You said: What can you do? This is the local realtime emulator."
    )
    tool = {"type": "function", "name": "lookup", "parameters": {"properties": {}}}
    forced = context([user], tools=[tool], tool_choice="required")
    assert default_responder(forced) == ToolCall("lookup", {})
    assert isinstance(default_responder(context([user], tools=[tool])), TextReply)
    assert "Hello" in default_responder(context([])).text  # type: ignore[union-attr]


def test_rate_limit_buckets_refill_over_a_minute() -> None:
    now = [0.0]
    limits = RateLimits(clock=lambda: now[0])
    requests, tokens = limits.spend(4000)
    assert requests == {
        "name": "requests",
        "limit": 5000,
        "remaining": 4999,
        "reset_seconds": 0.012,
    }
    assert tokens["remaining"] == tokens["limit"] - 4000
    assert tokens["reset_seconds"] == pytest.approx(60 * 4000 / tokens["limit"])
    now[0] = 0.3  # refills at limit per minute
    _, tokens = limits.spend(0)
    assert abs(tokens["remaining"] - (tokens["limit"] - 4000 + tokens["limit"] // 200)) <= 1
    now[0] = 120.0
    requests, tokens = limits.spend(0)
    assert tokens["remaining"] == tokens["limit"] and tokens["reset_seconds"] == 0
    assert requests["remaining"] == 4999  # one more request spent just now


def test_cut_transcript_keeps_whole_words() -> None:
    text = "You said: hello there. Bye"
    assert cut_transcript(text, 0) == ""
    assert cut_transcript(text, 3) == "You"
    assert cut_transcript(text, 8) == "You said:"  # the colon is silent
    assert cut_transcript(text, 14) == "You said:"  # "hello" not finished
    assert cut_transcript(text, 15) == "You said: hello"
    assert cut_transcript(text, 100) == text


def test_backchannel_decisions() -> None:
    assert backchannel_config({"providerData": {}}) is None
    assert backchannel_config({"providerData": {"backchannel": {"enabled": "yes"}}}) is None
    config = backchannel_config(
        {"providerData": {"backchannel": {"enabled": True, "min_gap_ms": "x", "max_per_turn": 2}}}
    )
    assert config == BackchannelConfig(max_per_turn=2)  # a bad field keeps its default
    turn = BackchannelTurn(speech_start_ms=1000)
    assert turn.decide(config, 2480, False) is None  # 1.5 s not reached
    assert turn.decide(config, 2500, True) is None  # the assistant speaks: not eligible
    assert turn.decide(config, 3300, False) == "send"
    assert turn.decide(config, 4100, False) is None  # inside min_gap_ms: not eligible
    assert turn.decide(config, 7300, False) == "send"
    assert turn.decide(config, 20000, False) is None  # max_per_turn reached
    deltas = audio_deltas(0.6)
    assert len(deltas) > 2 and audio_deltas(0.0) == []
