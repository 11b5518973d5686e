"""The turn-taking kinds (pauses, barge-in, noise alone) and their columns, from hand-built logs
and a hand-built recording; the summary per variant x condition, the trade-off figure and the
Parquet set with a condition axis."""

from __future__ import annotations

import math
import shutil
from typing import Any

import pytest

from realtime_widget import Condition, Runs, Script, experiments
from realtime_widget._recording import Recording
from realtime_widget.experiments._rows import turn_rows
from realtime_widget.experiments._script import TurnRecords

np = pytest.importorskip("numpy")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")

T0 = 1_700_000_000_000.0
RUN = {"variant": "high", "condition": "cafe", "repeat": 1, "run": 1, "seed": 5, "call_number": 1}


def records(evs: list[tuple[str, dict[str, Any], float]], seq0: int = 0) -> list[dict[str, Any]]:
    """Log records from (direction, event, ms after T0)."""
    return [
        {
            "seq": seq0 + i,
            "call_number": 1,
            "direction": d,
            "type": e["type"],
            "t_ms": T0 + t,
            "t_kernel_ms": T0 + t,
            "event": e,
        }
        for i, (d, e, t) in enumerate(evs)
    ]


def say(clip: str, start: float, end: float) -> list[tuple[str, dict[str, Any], float]]:
    return [
        ("local", {"type": "say.started", "clip_id": clip}, start),
        ("local", {"type": "say.ended", "clip_id": clip}, end),
    ]


def server(kind: str, t: float, **fields: Any) -> tuple[str, dict[str, Any], float]:
    return ("server", {"type": kind, **fields}, t)


def created(rid: str, t: float) -> tuple[str, dict[str, Any], float]:
    return server("response.created", t, response={"id": rid, "output_modalities": ["audio"]})


def done(rid: str, t: float, status: str = "completed") -> tuple[str, dict[str, Any], float]:
    return server("response.done", t, response={"id": rid, "status": status})


def by_time(
    evs: list[tuple[str, dict[str, Any], float]],
) -> list[tuple[str, dict[str, Any], float]]:
    return sorted(evs, key=lambda e: e[2])


# -- pauses ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pauses() -> Any:
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng")
    return Script.pauses(["I'd like a table for", "two people", "at eight"], pause_ms=900)


def test_a_pauses_turn_is_its_phrases_with_silences_of_pause_ms_between(pauses) -> None:
    import io
    import wave

    with wave.open(io.BytesIO(pauses.audio)) as f:
        rate = f.getframerate()
        x = np.frombuffer(f.readframes(f.getnframes()), "<i2").astype(float) / 32768
    assert pauses.kind == "pauses" and len(pauses.onsets_ms) == 3 and pauses.onsets_ms[0] == 0
    assert abs(x[0]) > 0 or abs(x[:50]).max() > 0.005  # trimmed: speech from the first sample
    for onset in pauses.onsets_ms[1:]:  # exactly pause_ms of silence before each phrase
        at = round(onset * rate / 1000)
        gap = x[at - round(0.9 * rate) : at]
        assert np.abs(gap).max() == 0.0 and np.abs(x[at : at + rate // 20]).max() > 0.009
        assert np.abs(x[at - round(0.9 * rate) - 5 : at - round(0.9 * rate)]).max() > 0
    assert pauses.duration_ms == pytest.approx(len(x) * 1000 / rate, abs=0.1)
    assert "900 ms pauses" in pauses.prompt and "two people" in pauses.prompt
    assert (
        Script.pauses(["a", "b"], pause_ms=300).identity() != Script.pauses(["a", "b"]).identity()
    )


def pauses_log(pauses: Any, *, cut: bool, early_stop_only: bool = False) -> list[dict[str, Any]]:
    dur = pauses.duration_ms
    last = pauses.onsets_ms[-1]
    evs = [*say("c1", 0, dur), server("input_audio_buffer.speech_started", 120)]
    if cut:  # ended after "a table for" (250 ms into the first pause) and answered at once
        stop1 = pauses.onsets_ms[1] - 900 + 250
        evs += [
            server("input_audio_buffer.speech_stopped", stop1),
            created("r1", stop1 + 5),
            server("input_audio_buffer.speech_started", pauses.onsets_ms[1] + 120),
            done("r1", pauses.onsets_ms[1] + 125, "cancelled"),
        ]
    elif early_stop_only:  # the VAD stopped in a pause but the service did not answer it
        stop1 = pauses.onsets_ms[2] - 600
        evs += [
            server("input_audio_buffer.speech_stopped", stop1),
            server("input_audio_buffer.speech_started", pauses.onsets_ms[2] + 120),
        ]
    assert last < dur
    evs += [
        server("input_audio_buffer.speech_stopped", dur + 600),
        created("r2", dur + 610),
        server("output_audio_buffer.started", dur + 700, response_id="r2"),
        ("local", {"type": "audio.audible", "response_id": "r2"}, dur + 730),
        done("r2", dur + 2000),
        server("output_audio_buffer.stopped", dur + 2600, response_id="r2"),
    ]
    return records(by_time(evs))


def test_pauses_cut_off_and_end_of_turn_from_the_log(pauses) -> None:
    whole = pauses_log(pauses, cut=False)
    row = turn_rows(whole, [(0, len(whole), None)], [pauses], RUN)[0]
    assert row["cut_off"] is False and row["end_of_turn_ms"] == pytest.approx(600.0)
    assert row["clip_ms"] == pytest.approx(pauses.duration_ms)
    assert row["kind"] == "pauses" and row["status"] == "completed" and row["condition"] == "cafe"

    cut = pauses_log(pauses, cut=True)
    row = turn_rows(cut, [(0, len(cut), None)], [pauses], RUN)[0]
    assert row["cut_off"] is True and row["responses"] == 2
    assert row["end_of_turn_ms"] == pytest.approx(600.0)  # the turn's real end, after the last

    # a speech_stopped in a pause that the service did not answer is not a cut-off
    early = pauses_log(pauses, cut=False, early_stop_only=True)
    row = turn_rows(early, [(0, len(early), None)], [pauses], RUN)[0]
    assert row["cut_off"] is False and row["end_of_turn_ms"] == pytest.approx(600.0)

    # a response created before the last phrase, with no speech_stopped in the log, is one
    quick = records(by_time([*say("c1", 0, pauses.duration_ms), created("r1", 500.0)]))
    assert pauses.measure(quick)["cut_off"] is True
    assert pauses.measure(records([]))["cut_off"] is None  # the clip never played


def test_pauses_refuses_what_it_cannot_speak() -> None:
    with pytest.raises(TypeError, match="phrases must be a list"):
        Script.pauses("one phrase")
    with pytest.raises(ValueError, match="at least two non-empty"):
        Script.pauses(["only one"])
    with pytest.raises(ValueError, match="at least two non-empty"):
        Script.pauses(["one", "  "])
    with pytest.raises(ValueError, match=r"pause_ms must be 0..20000 ms"):
        Script.pauses(["one", "two"], pause_ms=-5)
    with pytest.raises(TypeError, match="pause_ms must be a number"):
        Script.pauses(["one", "two"], pause_ms=float("nan"))


# -- barge-in --------------------------------------------------------------------------------

RATE = 16_000


def agent_recording(t0: float, seconds: float, loud: list[tuple[float, float]]) -> Recording:
    """A recording from ``t0`` (ms after T0): the agent track loud (a 440 Hz tone at -14 dBFS)
    in each (start, end) ms stretch, silent elsewhere; the user track silent."""
    n = int(seconds * RATE)
    pcm = np.zeros((n, 2), np.int16)
    t = np.arange(n) / RATE
    tone = (0.2 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    for a, b in loud:
        lo, hi = round((a - t0) * RATE / 1000), round((b - t0) * RATE / 1000)
        pcm[lo:hi, 1] = tone[lo:hi]
    return Recording._from_pcm(1, RATE, T0 + t0, pcm)


def barge_logs(*, stop_at: float | None, reply_end: float = 6000.0) -> tuple[list, list]:
    """The lead turn (a typed question answered from 1000 ms, heard at 1040) and the barge-in
    (its clip from 1740 ms, the agent cut at ``stop_at``: None for a reply that plays on)."""
    lead = records(
        [
            ("client", {"type": "conversation.item.create", "item": {"role": "user"}}, 0),
            ("client", {"type": "response.create"}, 1),
            created("r1", 10),
            server("response.output_item.added", 20, response_id="r1", item={"id": "item_9"}),
            server("output_audio_buffer.started", 1000, response_id="r1"),
            ("local", {"type": "audio.audible", "response_id": "r1"}, 1040),
        ]
    )
    evs = [*say("c2", 1740, 3300), server("input_audio_buffer.speech_started", 1860)]
    if stop_at is not None:
        evs += [
            done("r1", stop_at - 40, "cancelled"),
            server("output_audio_buffer.cleared", stop_at - 30, response_id="r1"),
            server(
                "conversation.item.truncated",
                stop_at - 20,
                item_id="item_9",
                content_index=0,
                audio_end_ms=900,
            ),
        ]
    else:
        evs += [done("r1", reply_end - 100), server("output_audio_buffer.stopped", reply_end)]
    answer = max(stop_at or 0, reply_end if stop_at is None else 0) + 1500
    evs += [
        server("input_audio_buffer.speech_stopped", 3800),
        created("r2", 3810),
        server("output_audio_buffer.started", answer, response_id="r2"),
        ("local", {"type": "audio.audible", "response_id": "r2"}, answer + 20),
        done("r2", answer + 1000),
        server("output_audio_buffer.stopped", answer + 1500, response_id="r2"),
    ]
    return lead, records(by_time(evs), seq0=len(lead))


def test_barge_in_stop_heard_and_truncated_from_the_recording() -> None:
    turn = Script.barge_in((np.full(800, 0.3, np.float32), RATE), after_ms=700)
    assert turn.interrupts and turn.kind == "barge_in" and turn.speech_onset_ms == 0.0
    lead, own = barge_logs(stop_at=2010.0)
    # the agent's voice: from 1000 ms (40 ms before the page said audible) to 2010 ms, then the
    # answer to the barge-in from 3510
    rec = agent_recording(0.0, 6.0, [(1000.0, 2010.0), (3510.0, 4500.0)])
    got = turn.measure_in(TurnRecords(own, lead, rec))
    assert got["stop_ms"] == pytest.approx(2010 - 1740, abs=AUDIBLE_SLACK)
    assert got["heard_ms"] == pytest.approx(2010 - 1000, abs=AUDIBLE_SLACK)
    row = turn_rows([*lead, *own], [(0, len(lead), None), (len(lead), len(lead) + len(own), None)],
                    [Script.text("What is on the menu?"), turn], RUN, recording=rec)[1]  # fmt: skip
    assert row["stop_ms"] == got["stop_ms"] and row["heard_ms"] == got["heard_ms"]
    assert row["truncated_to_ms"] == 900.0
    assert row["end_of_turn_ms"] == pytest.approx(500.0) and row["clip_ms"] == 1560.0
    assert row["response_id"] == "r2" and row["status"] == "completed"


AUDIBLE_SLACK = 10.0  # one 10 ms frame of the audible detector


def test_an_answer_begun_at_a_pause_in_the_barge_in_does_not_stretch_the_window() -> None:
    """A barge-in split at its own pause: the service answers its first half (never heard,
    cancelled as the caller goes on), then the whole; the window still ends at the first
    answer that was heard."""
    turn = Script.barge_in((np.full(800, 0.3, np.float32), RATE), after_ms=700)
    lead, own = barge_logs(stop_at=2010.0)
    split = [created("r1b", 2600.0), done("r1b", 2700.0, "cancelled")]
    own = records(
        by_time([*((r["direction"], r["event"], r["t_ms"] - T0) for r in own), *split]),
        seq0=len(lead),
    )
    rec = agent_recording(0.0, 6.0, [(1000.0, 2010.0), (3510.0, 4500.0)])
    got = turn.measure_in(TurnRecords(own, lead, rec))
    assert got["stop_ms"] == pytest.approx(2010 - 1740, abs=AUDIBLE_SLACK)


def test_a_back_channel_while_the_caller_barges_in_is_not_the_reply_going_on() -> None:
    turn = Script.barge_in((np.full(800, 0.3, np.float32), RATE), after_ms=700)
    lead, own = barge_logs(stop_at=2010.0)
    mm = [server("response.backchannel.audio.delta", 3240.0, backchannel_id="b1", delta="")]
    own = records(
        by_time([*((r["direction"], r["event"], r["t_ms"] - T0) for r in own), *mm]), seq0=len(lead)
    )
    # the page plays the "mm-hm" into the agent track 1.5 s into the barge-in
    rec = agent_recording(0.0, 6.0, [(1000.0, 2010.0), (3250.0, 3450.0), (3510.0, 4500.0)])
    got = turn.measure_in(TurnRecords(own, lead, rec))
    assert got["stop_ms"] == pytest.approx(2010 - 1740, abs=AUDIBLE_SLACK)


def test_an_answer_heard_before_its_events_reached_the_page_is_not_the_reply_going_on() -> None:
    """A busy page stamps the answer's events late (here 400 ms after its sound): the reply's
    sound still ends where it stopped, at the silence before the answer."""
    turn = Script.barge_in((np.full(800, 0.3, np.float32), RATE), after_ms=700)
    lead, own = barge_logs(stop_at=2010.0)
    rec = agent_recording(0.0, 6.0, [(1000.0, 2010.0), (3110.0, 4500.0)])
    got = turn.measure_in(TurnRecords(own, lead, rec))
    assert got["stop_ms"] == pytest.approx(2010 - 1740, abs=AUDIBLE_SLACK)
    assert got["heard_ms"] == pytest.approx(2010 - 1000, abs=AUDIBLE_SLACK)


def test_the_reply_s_own_pauses_do_not_end_it() -> None:
    """A reply that plays on past the onset with pauses between its sentences (400 ms) stops
    where its sound ends, not at its first pause."""
    turn = Script.barge_in((np.full(800, 0.3, np.float32), RATE), after_ms=700)
    lead, own = barge_logs(stop_at=2900.0)
    loud = [(1000.0, 1900.0), (2300.0, 2900.0), (3510.0, 4500.0)]
    got = turn.measure_in(TurnRecords(own, lead, agent_recording(0.0, 6.0, loud)))
    assert got["stop_ms"] == pytest.approx(2900 - 1740, abs=AUDIBLE_SLACK)


def test_barge_in_over_a_reply_that_plays_on_and_without_a_recording() -> None:
    turn = Script.barge_in((np.full(800, 0.3, np.float32), RATE), after_ms=700)
    lead, own = barge_logs(stop_at=None, reply_end=5200.0)
    rec = agent_recording(0.0, 9.0, [(1000.0, 5200.0), (6700.0, 7600.0)])
    got = turn.measure_in(TurnRecords(own, lead, rec))
    assert got["stop_ms"] == pytest.approx(5200 - 1740, abs=AUDIBLE_SLACK)  # never stopped
    assert turn.measure(own)["truncated_to_ms"] is None
    # no recording: stop_ms is not guessed; heard_ms comes from the events
    lead, own = barge_logs(stop_at=2010.0)
    got = turn.measure_in(TurnRecords(own, lead, None))
    assert got == {"stop_ms": None, "heard_ms": pytest.approx(2010 - 30 - 1040)}
    # a recording that does not cover the stretch is no recording
    late = agent_recording(3000.0, 4.0, [])
    assert turn.measure_in(TurnRecords(own, lead, late))["stop_ms"] is None


def test_a_barge_in_on_a_reply_that_was_already_over_stopped_nothing() -> None:
    turn = Script.barge_in((np.full(800, 0.3, np.float32), RATE), after_ms=700)
    lead, own = barge_logs(stop_at=None, reply_end=1500.0)  # over before the clip at 1740
    rec = agent_recording(0.0, 6.0, [(1000.0, 1500.0)])
    got = turn.measure_in(TurnRecords(own, lead, rec))
    assert got["stop_ms"] is None and got["heard_ms"] == pytest.approx(500.0 - 40)


@needs_espeak
def test_a_barge_in_counts_from_its_speech_not_its_quiet_lead_in() -> None:
    turn = Script.barge_in(text="Sorry, actually make that three.", after_ms=300)
    assert 0 < turn.speech_onset_ms < 300
    assert "(barge-in after 300 ms) Sorry" in turn.prompt


def test_a_barge_in_needs_a_turn_the_agent_answers_before_it() -> None:
    clip = (np.full(800, 0.3, np.float32), RATE)
    with pytest.raises(ValueError, match=r"turn 1: .*needs a turn before it"):
        Script([Script.barge_in(clip)])
    with pytest.raises(ValueError, match=r"turn 2: .*needs a turn before it"):
        Script([Script.noise(1000), Script.barge_in(clip)])
    Script(["Hello", Script.barge_in(clip), Script.barge_in(clip)])  # a barge-in is answered
    with pytest.raises(ValueError, match=r"after_ms must be 0..120000 ms"):
        Script.barge_in(clip, after_ms=-1)


# -- noise alone -----------------------------------------------------------------------------


def test_noise_alone_counts_false_turns_and_needs_no_reply() -> None:
    noise = Script.noise(4000)
    assert noise.kind == "noise" and not noise.expects_reply and noise.duration_ms == 4000
    quiet = records(say("n1", 0, 4000))
    phantom = records(
        by_time(
            [
                *say("n1", 0, 4000),
                server("input_audio_buffer.speech_started", 700),
                server("input_audio_buffer.speech_stopped", 1500),
                created("r1", 1510),
                done("r1", 2500),
                server("input_audio_buffer.speech_started", 3100),
                server("input_audio_buffer.speech_stopped", 3600),
            ]
        )
    )
    spans = [(0, len(quiet), None)]
    row = turn_rows(quiet, spans, [noise], RUN)[0]
    assert row["false_turns"] == 0 and row["status"] == "completed" and row["error"] is None
    assert row["clip_ms"] == 4000 and row["responses"] == 0
    row = turn_rows(phantom, [(0, len(phantom), None)], [noise], RUN)[0]
    assert row["false_turns"] == 2 and row["responses"] == 1 and row["status"] == "completed"
    # a noise turn that failed is still an error
    row = turn_rows(quiet, [(0, len(quiet), "TimeoutError: x")], [noise], RUN)[0]
    assert row["status"] == "error"
    with pytest.raises(ValueError, match=r"ms must be 100..600000 ms"):
        Script.noise(50)


def test_spoken_turns_play_their_conditions_audio_the_same_every_time() -> None:
    x = (0.2 * np.sin(np.arange(16_000) * 0.05)).astype(np.float32)
    turn = Script.audio((x, RATE))
    cafe = Condition(noise="white", snr_db=10, name="cafe")
    assert turn.clip_for(None) is turn.audio
    a, b = turn.clip_for(cafe), turn.clip_for(Condition(noise="white", snr_db=10, name="cafe"))
    assert a == b and a != turn.audio and len(a) == len(turn.audio)  # seeded, same length
    assert turn.clip_for(Condition(noise="white", snr_db=10, seed=1)) != a
    row = turn.measure(
        records(by_time([*say("c", 0, 1000), server("input_audio_buffer.speech_stopped", 1450)]))
    )
    assert row == {"clip_ms": 1000.0, "end_of_turn_ms": 450.0}


# -- summary, figure, files ------------------------------------------------------------------


def grid_rows() -> Runs:
    """Two variants x two conditions, one run each: a pauses turn, a barge-in, a noise turn."""
    runs = Runs(Script(["a"]), {"high": {}, "low": {}}, 1, conditions={"clean": None, "cafe": CAFE})
    figures = {  # (cut_off, first output ms, stop_ms, false turns in 4 s)
        ("high", "clean"): (True, 400.0, 250.0, 0),
        ("high", "cafe"): (True, 420.0, 300.0, 2),
        ("low", "clean"): (False, 1400.0, 260.0, 0),
        ("low", "cafe"): (False, 1500.0, 340.0, 1),
    }
    for i, ((v, c), (cut, ms, stop, false)) in enumerate(figures.items(), 1):
        run = experiments.Run(v, 1, i, 0, {}, condition=c)
        base = dict.fromkeys(tuple(experiments.COLUMNS))
        base.update(variant=v, condition=c, repeat=1, run=i, seed=0, call_number=1)
        base.update(status="completed", tools=[], responses=1, tool_calls=0)
        run.rows = [
            {**base, "turn": 1, "kind": "pauses", "cut_off": cut, "to_first_output_ms": ms,
             "end_of_turn_ms": ms - 300},
            {**base, "turn": 2, "kind": "barge_in", "stop_ms": stop, "heard_ms": 700.0,
             "to_first_output_ms": ms, "truncated_to_ms": 690.0},
            {**base, "turn": 3, "kind": "noise", "false_turns": false, "clip_ms": 4000.0},
        ]  # fmt: skip
        runs.runs.append(run)
    runs._finish()
    return runs


CAFE = Condition(noise="babble", snr_db=10, name="cafe")


def test_summary_per_variant_and_condition_with_the_turn_taking_figures() -> None:
    pytest.importorskip("pandas")
    s = grid_rows().summary()
    assert list(s.index) == [("high", "clean"), ("high", "cafe"), ("low", "clean"), ("low", "cafe")]
    assert s.loc[("high", "cafe"), "cut_off_rate"] == 1.0
    assert s.loc[("low", "clean"), "cut_off_rate"] == 0.0
    assert s.loc[("high", "cafe"), "false_turns_per_min"] == pytest.approx(30.0)  # 2 in 4 s
    assert s.loc[("low", "cafe"), "false_turns_per_min"] == pytest.approx(15.0)
    assert s.loc[("high", "clean"), "false_turns_per_min"] == 0.0
    assert s.loc[("low", "cafe"), "stop_ms_p50"] == 340.0
    assert s.loc[("low", "cafe"), "end_of_turn_ms_p50"] == 1200.0
    assert s.loc[("high", "clean"), "completion_rate"] == 1.0
    # a grid without conditions or turn-taking turns keeps its plain summary
    plain = Runs(Script(["a"]), {"v": {}}, 1)
    run = experiments.Run("v", 1, 1, 0, {})
    run.rows = [{**dict.fromkeys(tuple(experiments.COLUMNS)), "variant": "v", "repeat": 1,
                 "turn": 1, "status": "completed", "kind": "text", "tools": []}]  # fmt: skip
    plain.runs.append(run)
    assert list(plain.summary().index) == ["v"] and "cut_off_rate" not in plain.summary()


def test_the_trade_off_figure_is_one_point_per_variant_and_condition() -> None:
    pytest.importorskip("matplotlib")
    runs = grid_rows()
    fig = runs.plot("cut_off")
    ax = fig.axes[0]
    points = sorted((line.get_xdata()[0], line.get_ydata()[0]) for line in ax.lines)
    assert points == [(400.0, 1.0), (420.0, 1.0), (1400.0, 0.0), (1500.0, 0.0)]
    assert {t.get_text() for t in ax.texts} == {"high · clean", "high · cafe", "low · clean",
                                                  "low · cafe"}  # fmt: skip
    with pytest.raises(ValueError, match="one of \\('cut_off',\\)"):
        runs.plot("stop")


def test_a_set_with_conditions_round_trips_through_parquet(tmp_path) -> None:
    pytest.importorskip("pyarrow")
    runs = grid_rows()
    out = runs.to_parquet(tmp_path / "set")
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
    assert names == [
        "variant=high/repeat-001-cafe.parquet",
        "variant=high/repeat-001-clean.parquet",
        "variant=low/repeat-001-cafe.parquet",
        "variant=low/repeat-001-clean.parquet",
    ]
    back = Runs.read_parquet(out)
    assert back.conditions == {"clean": None, "cafe": CAFE}
    assert [r.condition for r in back.runs] == ["clean", "cafe", "clean", "cafe"]
    df, again = runs.turns(), back.turns()
    assert str(again.cut_off.dtype) == "boolean" and str(again.false_turns.dtype) == "Int64"
    cols = ["variant", "condition", "turn", "cut_off", "false_turns", "stop_ms", "heard_ms",
            "truncated_to_ms", "end_of_turn_ms", "clip_ms"]  # fmt: skip
    key = ["variant", "condition", "turn"]
    left = df[cols].sort_values(key).reset_index(drop=True)
    right = again[cols].sort_values(key).reset_index(drop=True)
    assert left.equals(right)
    assert back.summary().equals(runs.summary())
    assert not math.isnan(back.summary().loc[("low", "cafe"), "stop_ms_p50"])
