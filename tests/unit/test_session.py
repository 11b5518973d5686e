"""Session traits <-> session.update payloads, partial diffs and validation."""

from __future__ import annotations

import json

import pytest
import traitlets as t

from realtime_widget import RealtimeWidget
from realtime_widget._session import (
    SESSION_TRAITS,
    SessionTraits,
    partial_session,
    traits_from_session,
)
from tests.conftest import pretend_live
from tests.helpers import seam


@pytest.fixture
def widget() -> tuple[RealtimeWidget, list[dict]]:
    w = RealtimeWidget(api_key="k")
    sent: list[dict] = []
    seam.set_post(w, sent.append)
    return w, sent


def live(w: RealtimeWidget) -> None:
    """Pretend a call is up, without a browser."""
    pretend_live(w)


def test_defaults_match_the_documented_seed() -> None:
    s = RealtimeWidget(api_key="k").session_config()
    assert s["type"] == "realtime"
    assert s["model"] == "openai/gpt-4o-mini"
    assert s["output_modalities"] == ["audio", "text"]
    assert s["audio"]["output"] == {"voice": "Clive", "model": "inworld-tts-1.5-mini", "speed": 1.0}
    assert s["audio"]["input"]["turn_detection"] == {
        "type": "semantic_vad",
        "eagerness": "medium",
        "create_response": True,
        "interrupt_response": True,
    }
    assert s["audio"]["input"]["transcription"] == {
        "model": "inworld/inworld-stt-1",
        "language": "en",
    }
    assert s["providerData"] == {} and "provider_data" not in s
    json.dumps(s)  # JSON-ready


def test_constructor_sets_session_fields_and_rejects_unknown() -> None:
    w = RealtimeWidget(api_key="k", voice="Ashley", speed=1.2, output_modalities=["text"])
    assert w.session_config()["audio"]["output"]["voice"] == "Ashley"
    assert w.session_config()["output_modalities"] == ["text"]
    with pytest.raises(TypeError, match="voise"):
        RealtimeWidget(api_key="k", voise="Ashley")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("voice", "Ashley", {"audio": {"output": {"voice": "Ashley"}}}),
        ("speed", 1.25, {"audio": {"output": {"speed": 1.25}}}),
        (
            "tts_model",
            "inworld-tts-1.5-max",
            {"audio": {"output": {"model": "inworld-tts-1.5-max"}}},
        ),
        ("instructions", "Be brief.", {"instructions": "Be brief."}),
        ("output_modalities", ["text"], {"output_modalities": ["text"]}),
        ("model", "openai/gpt-4o", {"model": "openai/gpt-4o"}),
        ("max_output_tokens", "inf", {"max_output_tokens": "inf"}),
        (
            "transcription_model",
            "soniox/stt-rt-v4",
            {
                "audio": {
                    "input": {"transcription": {"model": "soniox/stt-rt-v4", "language": "en"}}
                }
            },
        ),
        ("transcription_model", None, {"audio": {"input": {"transcription": None}}}),
        ("provider_data", {"tts": {"x": 1}}, {"providerData": {"tts": {"x": 1}}}),
        (
            "turn_detection",
            {"eagerness": "high"},
            {
                "audio": {
                    "input": {
                        "turn_detection": {
                            "type": "semantic_vad",
                            "eagerness": "high",
                            "create_response": True,
                            "interrupt_response": True,
                        }
                    }
                }
            },
        ),
    ],
)
def test_a_change_while_connected_sends_one_partial_update(widget, name, value, expected) -> None:
    w, sent = widget
    live(w)
    setattr(w, name, value)
    assert sent == [
        {
            "kind": "send",
            "call": 1,
            "page": "",
            "events": [{"type": "session.update", "session": {"type": "realtime", **expected}}],
        }
    ]


def test_no_update_while_disconnected(widget) -> None:
    w, sent = widget
    w.voice = "Sarah"
    assert sent == []
    assert w.session_config()["audio"]["output"]["voice"] == "Sarah"


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("output_modalities", ["video"], "output_modalities must be"),
        ("output_modalities", ["text", "audio"], "['audio', 'text']"),
        ("speed", 3.0, "speed must be a number from 0.5 to 1.5"),
        ("speed", "fast", "speed"),
        ("temperature", -1, "temperature must be a number from 0.0 to 2.0"),
        ("max_output_tokens", 0, "max_output_tokens must be a whole number >= 1 or 'inf'"),
        ("max_output_tokens", "lots", "max_output_tokens"),
        ("voice", "  ", "voice must be a non-empty string"),
        (
            "turn_detection",
            {"eagerness": "eager"},
            "turn_detection['eagerness'] must be one of low, medium, high, auto",
        ),
        (
            "turn_detection",
            {"type": "magic"},
            "turn_detection['type'] must be one of semantic_vad, server_vad",
        ),
        ("turn_detection", {"type": "server_vad", "threshold": 2}, "threshold"),
        ("turn_detection", {"create_response": "yes"}, "create_response"),
        ("turn_detection", {"bogus": 1}, "unknown key"),
        ("noise_reduction", "loud", "noise_reduction must be one of near_field, far_field or None"),
        ("tool_choice", "maybe", "tool_choice"),
    ],
)
def test_invalid_values_raise_naming_the_field_and_send_nothing(widget, name, value, words) -> None:
    w, sent = widget
    live(w)
    before = w.session_config()
    with pytest.raises(t.TraitError) as info:
        setattr(w, name, value)
    assert words in str(info.value)
    assert sent == []
    assert w.session_config() == before


def test_server_vad_fills_its_defaults() -> None:
    w = RealtimeWidget(
        api_key="k", turn_detection={"type": "server_vad", "silence_duration_ms": 800}
    )
    td = w.session_config()["audio"]["input"]["turn_detection"]
    assert (
        td["silence_duration_ms"] == 800
        and td["threshold"] == 0.5
        and td["prefix_padding_ms"] == 300
    )


def test_session_config_round_trips_through_json_and_apply_session(widget) -> None:
    w, sent = widget
    other = RealtimeWidget(
        api_key="k", voice="Hades", speed=0.7, instructions="Pirate.", max_output_tokens="inf"
    )
    preset = json.loads(json.dumps(other.session_config()))
    live(w)
    w.apply_session(preset)
    assert w.session_config() == other.session_config()
    # one update, holding exactly the fields that changed
    assert len(sent) == 1
    session = sent[0]["events"][0]["session"]
    assert session["audio"]["output"] == {"voice": "Hades", "speed": 0.7}
    assert session["instructions"] == "Pirate." and session["max_output_tokens"] == "inf"
    assert "model" not in session


def test_apply_session_is_all_or_nothing(widget) -> None:
    w, sent = widget
    live(w)
    before = w.session_config()
    with pytest.raises(t.TraitError, match="speed"):
        w.apply_session({"audio": {"output": {"voice": "Sarah", "speed": 9}}})
    with pytest.raises(
        t.TraitError, match=r"session\.audio\.output\.colour is not a session field"
    ):
        w.apply_session({"audio": {"output": {"colour": "red"}}})
    assert w.session_config() == before and sent == []


def test_batch_update_coalesces(widget) -> None:
    w, sent = widget
    live(w)
    with w.batch_update():
        w.voice = "Dennis"
        w.speed = 1.1
        w.instructions = "Hi"
    assert len(sent) == 1
    assert sent[0]["events"][0]["session"] == {
        "type": "realtime",
        "instructions": "Hi",
        "audio": {"output": {"voice": "Dennis", "speed": 1.1}},
    }


def test_every_trait_maps_back_from_the_payload() -> None:
    w = RealtimeWidget(api_key="k")
    values = traits_from_session(w.session_config())
    assert set(values) == set(SESSION_TRAITS)
    for name in SESSION_TRAITS:
        assert partial_session(w, [name])["type"] == "realtime"


def test_server_vad_takes_the_documented_idle_timeout() -> None:
    w = SessionTraits(turn_detection={"type": "server_vad", "idle_timeout_ms": 6000})
    assert w.session_config()["audio"]["input"]["turn_detection"]["idle_timeout_ms"] == 6000
    # left out unless set: the service's own default holds
    w.turn_detection = {"type": "server_vad"}
    assert "idle_timeout_ms" not in w.session_config()["audio"]["input"]["turn_detection"]
    w.turn_detection = {"type": "server_vad", "idle_timeout_ms": None}
    assert w.turn_detection["idle_timeout_ms"] is None
    with pytest.raises(t.TraitError, match=r"idle_timeout_ms.*5000 to 30000"):
        w.turn_detection = {"type": "server_vad", "idle_timeout_ms": 10}
    with pytest.raises(t.TraitError, match=r"unknown key\(s\) \['idle_timeout_ms'\].*semantic_vad"):
        w.turn_detection = {"type": "semantic_vad", "idle_timeout_ms": 6000}


def test_transcription_prompt_is_sent_and_kept_in_presets() -> None:
    words = "Menu words: tagliatelle, ragù"
    preset = json.loads(json.dumps(SessionTraits(transcription_prompt=words).session_config()))
    assert preset["audio"]["input"]["transcription"] == {
        "model": "inworld/inworld-stt-1",
        "language": "en",
        "prompt": words,
    }
    w = SessionTraits()
    for name, value in traits_from_session(preset).items():
        setattr(w, name, value)
    assert w.transcription_prompt == words
    assert partial_session(w, ["transcription_prompt"])["audio"]["input"]["transcription"] == {
        "model": "inworld/inworld-stt-1",
        "language": "en",
        "prompt": words,
    }
    with pytest.raises(t.TraitError, match=r"transcription has unknown key\(s\) \['promt'\]"):
        traits_from_session({"audio": {"input": {"transcription": {"model": "m", "promt": "x"}}}})
