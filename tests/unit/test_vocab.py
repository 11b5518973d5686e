"""The service's vocabulary (event names, beta aliases, the response-text accumulator) and the
one way a feature says it needs an extra."""

from __future__ import annotations

import pytest

from realtime_widget import _vocab as V
from realtime_widget._extras import missing, require


@pytest.mark.parametrize(
    ("beta", "ga"),
    [
        ("response.text.delta", "response.output_text.delta"),
        ("response.text.done", "response.output_text.done"),
        ("response.audio_transcript.delta", "response.output_audio_transcript.delta"),
        ("response.audio_transcript.done", "response.output_audio_transcript.done"),
        ("conversation.item.created", "conversation.item.added"),
    ],
)
def test_a_beta_name_reads_as_its_ga_twin(beta: str, ga: str) -> None:
    assert V.canonical(beta) == ga
    assert V.canonical(ga) == ga  # a GA name (and any other) is left as it is
    assert V.BETA_ALIASES[beta] == ga


def test_canonical_is_total() -> None:
    assert V.canonical("response.done") == "response.done"
    assert V.canonical(None) == "" and V.canonical(3) == ""


@pytest.mark.parametrize(
    ("deltas", "expected"),
    [
        (["Hel", "lo ", "there"], "Hello there"),  # incremental pieces
        (["Hel", "Hello", "Hello there"], "Hello there"),  # the whole text so far each time
        (["a", "a", "a"], "a"),  # the whole text, repeated
        (["", "Hi"], "Hi"),
        (["Hi", " Hi"], "Hi Hi"),  # a piece that does not start with the text is appended
    ],
)
def test_input_transcription_deltas_of_either_shape_merge(deltas: list[str], expected: str) -> None:
    text = ""
    for delta in deltas:
        text = V.merge_transcript(text, delta)
    assert text == expected


def _events(rid: str = "r1") -> list[dict]:
    return [
        {"type": "response.created", "response": {"id": rid}},
        {"type": "response.output_audio_transcript.delta", "response_id": rid, "delta": "Hel"},
        {"type": "response.audio_transcript.delta", "response_id": rid, "delta": "lo"},
    ]


def test_response_text_takes_both_spellings_and_prefers_the_done_text() -> None:
    acc = V.ResponseText()
    fed = [acc.feed(e) for e in _events()]
    assert fed == [False, True, True]
    assert acc.transcript == "Hello" and acc.output_text == "" and acc.text == "Hello"
    acc.feed({"type": "response.audio_transcript.done", "transcript": "Hello!"})
    assert acc.transcript == "Hello!"
    acc.feed({"type": "response.text.delta", "delta": "Hi "})
    acc.feed({"type": "response.output_text.delta", "delta": "there"})
    assert acc.output_text == "Hi there" and acc.text == "Hi there"  # text before transcript
    acc.feed({"type": "response.output_text.done", "text": "Hi there."})
    assert acc.text == "Hi there."


def test_response_text_ignores_fields_of_the_wrong_shape() -> None:
    acc = V.ResponseText()
    acc.feed({"type": "response.output_text.delta", "delta": 7})
    acc.feed({"type": "response.output_text.delta", "delta": "ok"})
    assert acc.text == "ok"


def test_client_event_is_checked_and_copied() -> None:
    event = {"type": "response.create", "response": {"metadata": {"a": "1"}}}
    out = V.client_event(event)
    event["response"]["metadata"]["a"] = "2"
    assert out["response"]["metadata"]["a"] == "1"
    with pytest.raises(TypeError, match="dict with a 'type'"):
        V.client_event("response.create")
    with pytest.raises(ValueError, match="string 'type'"):
        V.client_event({"type": ""})
    with pytest.raises(ValueError, match="not JSON-serializable"):
        V.client_event({"type": "x", "bad": object()})


def test_a_missing_extra_names_the_package_and_the_extra() -> None:
    err = missing("plot", "matplotlib", "plot_timeline()")
    assert str(err).startswith(
        'plot_timeline() needs matplotlib: pip install "realtime-widget[plot]"'
    )
    with pytest.raises(
        ImportError, match=r'Thing needs no_such_pkg_rtw: pip install "realtime-widget\[x\]"'
    ):
        require("no_such_pkg_rtw.sub", "x", "Thing")
    assert require("json", "x", "Thing").dumps([]) == "[]"
