"""The runner with turn-taking turns and a condition axis, against a page that hears clips (no
browser): the grid's order, each condition's audio (the same every repeat), a barge-in played
over the reply to the turn before it and measured from the recording, noise alone."""

from __future__ import annotations

import pytest

from realtime_widget import Condition, Script, experiments
from tests.conftest import pretend_live
from tests.helpers.fake_page import wait_until
from tests.helpers.service_page import make_widget
from tests.helpers.voice_page import STOP_LAG_MS, VoicePage

np = pytest.importorskip("numpy")
pytest.importorskip("scipy")
RATE = 16_000


@pytest.fixture
def w():
    widget = make_widget()
    yield widget
    widget.close()


def question() -> tuple[object, int]:
    t = np.arange(int(0.8 * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), RATE


async def test_a_grid_of_conditions_with_a_barge_in_and_noise_alone(w) -> None:
    page = VoicePage(w)
    pretend_live(w)
    records: list[bool] = []
    w.observe(lambda change: records.append(change["new"]), names=["record"])
    loud = Condition(noise="white", snr_db=10, name="loud")
    script = Script(
        [
            Script.audio(question()),
            Script.barge_in(question(), after_ms=50),
            Script.noise(600),
        ]
    )
    runs = await w.run_script(
        script, variants={"v": {}}, conditions={"clean": None, "loud": loud}, repeat=2,
        timeout=10,
    )  # fmt: skip
    assert runs.done and runs.error is None, runs.error
    assert [(r.variant, r.condition, r.repeat) for r in runs.runs] == [
        ("v", "clean", 1), ("v", "loud", 1), ("v", "clean", 2), ("v", "loud", 2),
    ]  # fmt: skip
    assert records == [True, False]  # both tracks recorded for the runs, then as it was
    df = runs.turns()
    assert list(df.columns) == list(tuple(experiments.COLUMNS))
    assert df.condition.tolist() == ["clean"] * 3 + ["loud"] * 3 + ["clean"] * 3 + ["loud"] * 3
    # each condition's audio, the same samples on every repeat; noise alone: silence when clean
    clips = [page.clips[i : i + 3] for i in range(0, 12, 3)]
    assert clips[0] == clips[2] and clips[1] == clips[3] and clips[0][0] != clips[1][0]
    assert len(clips[0][0]) == len(clips[1][0])
    asked = df[df.kind == "audio"]
    assert asked.status.tolist() == ["cancelled"] * 4  # cut by the barge-in: turn_detected
    barge = df[df.kind == "barge_in"]
    assert (barge.status == "completed").all(), barge[["status", "error"]]
    assert barge.stop_ms.tolist() == pytest.approx([STOP_LAG_MS] * 4, abs=10)
    assert (barge.heard_ms > 0).all() and (barge.truncated_to_ms > 0).all()
    assert barge.heard_ms.tolist() == pytest.approx(barge.truncated_to_ms.tolist(), abs=10)
    assert (barge.end_of_turn_ms == 500.0).all() and (asked.end_of_turn_ms == 500.0).all()
    noise = df[df.kind == "noise"]
    assert noise.false_turns.tolist() == [0, 1, 0, 1]  # the white noise is a (false) turn
    assert noise.status.tolist() == ["completed"] * 4 and noise.error.isna().all()
    s = runs.summary()
    assert s.loc[("v", "clean"), "false_turns_per_min"] == 0
    assert s.loc[("v", "loud"), "false_turns_per_min"] == pytest.approx(100.0, rel=0.05)
    assert s.loc[("v", "clean"), "stop_ms_p50"] == pytest.approx(STOP_LAG_MS, abs=10)


async def test_a_turn_the_service_ends_in_its_clips_trailing_silence_is_still_answered(w) -> None:
    """An eager VAD can end the turn (and the service create its reply) a little before the
    clip's last, silent sample: that response is still the reply the barge-in plays over (it
    once counted as begun at a pause, so the barge-in found nothing to barge in on)."""
    VoicePage(w, wait_ms=-40.0)
    pretend_live(w)
    script = Script([Script.audio(question()), Script.barge_in(question(), after_ms=50)])
    runs = await w.run_script(script, variants={"v": {}}, repeat=1, timeout=10)
    assert runs.done and runs.error is None, runs.error
    df = runs.turns()
    asked, barge = df.iloc[0], df.iloc[1]
    assert asked.end_of_turn_ms == -40.0 and barge.end_of_turn_ms == -40.0
    assert asked.status == "cancelled", asked  # cut by the barge-in
    assert barge.status == "completed" and df.error.isna().all(), barge
    assert barge.stop_ms == pytest.approx(STOP_LAG_MS, abs=10)
    assert barge.heard_ms > 0 and barge.ended_ms > barge.started_ms


async def test_a_typed_turn_is_not_changed_by_a_condition(w) -> None:
    page = VoicePage(w)
    pretend_live(w)
    loud = Condition(noise="white", snr_db=0)
    runs = await w.run_script(["Hello there!"], conditions={"a": None, "b": loud}, timeout=5)
    df = runs.turns()
    assert df.condition.tolist() == ["a", "b"] and set(df.status) == {"completed"}
    assert df.text.tolist() == ["You said: Hello there!"] * 2 and not page.clips


def test_the_conditions_axis_is_checked_before_anything_runs(w) -> None:
    pretend_live(w)
    with pytest.raises(TypeError, match="conditions must be a dict of name -> Condition"):
        w.run_script(["Hi"], conditions=["cafe"])
    with pytest.raises(TypeError, match="condition 'cafe' must be a Condition or None; got str"):
        w.run_script(["Hi"], conditions={"cafe": "babble"})
    with pytest.raises(TypeError, match="a condition's name is a non-empty string"):
        w.run_script(["Hi"], conditions={"": None})


async def test_say_with_a_condition_plays_the_transformed_samples(w) -> None:
    page = VoicePage(w)
    pretend_live(w)
    x, rate = question()
    phone = Condition(telephone=True)
    w.say((x, rate))
    w.say((x, rate), condition=phone)
    w.say((x, rate), condition=phone)
    wait_until(lambda: len(page.clips) == 3)
    plain, a, b = page.clips
    assert a == b != plain and len(a) == len(plain)
    with pytest.raises(TypeError, match="condition must be a Condition"):
        w.say((x, rate), condition="phone")
