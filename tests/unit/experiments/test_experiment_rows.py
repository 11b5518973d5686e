"""Rows from records, and what is computed over rows: statistics and expectations."""

from __future__ import annotations

import math

import pytest

from realtime_widget import Runs, Script, experiments
from realtime_widget.experiments._rows import turn_rows


def test_summary_percentiles_and_completion_from_rows() -> None:
    runs = Runs(Script(["a"]), {"A": {}, "B": {}}, 5)
    lat = {"A": [100.0, 200.0, 300.0, 400.0, 500.0], "B": [50.0, 50.0, 50.0, 50.0, None]}
    for v, values in lat.items():
        for i, ms in enumerate(values, 1):
            run = experiments.Run(v, i, i, 0, {})
            row = dict.fromkeys(tuple(experiments.COLUMNS))
            row.update(
                variant=v,
                repeat=i,
                turn=1,
                status="completed" if ms else "error",
                audio_ms=1000.0,
                turn_ms=1500.0,
                tools=[],
                **dict.fromkeys(experiments.LATENCY_COLUMNS, ms),
            )
            run.rows = [row]
            runs.runs.append(run)
    s = runs.summary()
    assert s.loc["A", "to_first_output_ms_p50"] == 300.0
    assert s.loc["A", "to_first_output_ms_p95"] == pytest.approx(480.0)  # numpy's linear rule
    assert s.loc["B", "to_first_output_ms_p50"] == 50.0
    assert s.loc["A", "completion_rate"] == 1.0 and s.loc["B", "completion_rate"] == 0.8
    assert s.loc["A", "audio_s"] == 5.0 and s.loc["A", "audio_s_per_turn"] == 1.0
    assert s.loc["A", "runs"] == 5 and s.loc["B", "turns"] == 5
    runs.expect(turn=1, variant="A").within_ms(500)
    runs.expect(turn=1).within_ms(480, quantile=0.95)
    with pytest.raises(AssertionError, match="the quantile is 496"):
        runs.expect(turn=1, variant="A").within_ms(400, quantile=0.99)
    with pytest.raises(AssertionError) as err:
        runs.expect(turn=1).within_ms(250)
    assert "4 of 10" in str(err.value)  # 300, 400, 500 and B's missing one
    with pytest.raises(AssertionError, match="no such turn"):
        runs.expect(turn=3)
    fig = runs.plot()
    assert len(fig.axes) == 5  # four latencies and the audio time, one figure


def test_turn_rows_from_a_recorded_log_with_a_clip_turn() -> None:
    """Rows from records alone: a clip turn measured from its end, and a turn with no reply."""
    np = pytest.importorskip("numpy")
    t0 = 1_700_000_000_000.0
    evs = [
        ("local", {"type": "say.started", "clip_id": "c1"}, 0),
        ("server", {"type": "input_audio_buffer.speech_started"}, 100),
        ("local", {"type": "say.ended", "clip_id": "c1"}, 1500),
        ("server", {"type": "input_audio_buffer.speech_stopped"}, 1900),
        (
            "server",
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "transcript": "order a pizza",
            },
            2000,
        ),
        (
            "server",
            {"type": "response.created", "response": {"id": "r1", "output_modalities": ["audio"]}},
            2010,
        ),
        ("server", {"type": "output_audio_buffer.started", "response_id": "r1"}, 2100),
        ("local", {"type": "audio.audible", "response_id": "r1"}, 2150),
        (
            "server",
            {
                "type": "response.output_audio_transcript.done",
                "response_id": "r1",
                "transcript": "One pizza.",
            },
            2600,
        ),
        (
            "server",
            {"type": "response.done", "response": {"id": "r1", "status": "completed"}},
            2610,
        ),
        ("server", {"type": "output_audio_buffer.stopped", "response_id": "r1"}, 3100),
        (
            "client",
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "user", "content": []},
            },
            3200,
        ),
        ("client", {"type": "response.create"}, 3201),
    ]
    records = [
        {
            "seq": i,
            "call_number": 1,
            "direction": d,
            "type": e["type"],
            "t_ms": t0 + t,
            "t_kernel_ms": t0 + t,
            "event": e,
        }
        for i, (d, e, t) in enumerate(evs)
    ]
    script = Script([Script.audio((np.zeros(1600, dtype=np.int16), 16000)), "Anyone?"])
    rows = turn_rows(
        records,
        [(0, 11, None), (11, 13, "TimeoutError: no response")],
        script,
        {"variant": "v", "repeat": 1, "run": 1, "seed": 5, "call_number": 1},
    )
    clip, typed = rows
    assert clip["kind"] == "audio" and clip["prompt"] == "array" and clip["trigger"] == "clip"
    assert clip["heard"] == "order a pizza" and clip["text"] == "One pizza."
    assert clip["to_first_output_ms"] == 650.0  # say.ended -> first audible: voice to voice
    assert clip["to_first_audio_ms"] == 650.0 and clip["audio_ms"] == 1000.0
    assert clip["turn_ms"] == 3100.0 and clip["status"] == "completed"
    assert typed["status"] == "error" and typed["error"] == "TimeoutError: no response"
    assert typed["responses"] == 0 and typed["to_first_output_ms"] is None
    assert math.isnan(Runs(script, {"v": {}}, 1).summary().empty or float("nan"))
