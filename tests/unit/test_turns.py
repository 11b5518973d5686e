"""turns(), latency_summary() and plot_timeline() on logs with known timings."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd
import pytest

from realtime_widget import EventLog
from realtime_widget._turns import collect_turns
from tests.helpers import seam

T0 = 1_764_000_000_000.0


def build() -> EventLog:
    log = EventLog()
    t = T0

    def at(ms: float, direction: str, event: dict) -> None:
        log._append(direction, event, t_ms=t + ms, t_kernel_ms=t + ms + 2)

    # turn 1: speech -> response (completed)
    at(0, "server", {"type": "session.created", "session": {}})
    at(
        1000,
        "server",
        {"type": "input_audio_buffer.speech_started", "item_id": "u1", "audio_start_ms": 1000},
    )
    at(
        2500,
        "server",
        {"type": "input_audio_buffer.speech_stopped", "item_id": "u1", "audio_end_ms": 2500},
    )
    at(2520, "server", {"type": "input_audio_buffer.committed", "item_id": "u1"})
    at(
        2600,
        "server",
        {"type": "response.created", "response": {"id": "r1", "status": "in_progress"}},
    )
    at(2750, "server", {"type": "output_audio_buffer.started", "response_id": "r1"})
    at(
        2800,
        "server",
        {"type": "response.output_audio_transcript.delta", "response_id": "r1", "delta": "Hi"},
    )
    at(2900, "local", {"type": "audio.audible", "response_id": "r1"})
    at(3800, "server", {"type": "output_audio_buffer.stopped", "response_id": "r1"})
    at(
        3810,
        "server",
        {
            "type": "response.done",
            "response": {
                "id": "r1",
                "status": "completed",
                "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
            },
        },
    )
    # turn 2: text -> response, interrupted by speech
    at(
        5000,
        "client",
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "go"}],
            },
        },
    )
    at(5001, "client", {"type": "response.create"})
    at(5101, "server", {"type": "response.created", "response": {"id": "r2"}})
    at(
        5301, "server", {"type": "response.text.delta", "response_id": "r2", "delta": "Sure"}
    )  # a beta name
    at(5400, "server", {"type": "input_audio_buffer.speech_started", "item_id": "u2"})
    at(
        5410,
        "server",
        {
            "type": "response.done",
            "response": {
                "id": "r2",
                "status": "cancelled",
                "status_details": {"type": "cancelled", "reason": "turn_detected"},
            },
        },
    )
    at(
        5420,
        "server",
        {"type": "error", "error": {"type": "invalid_request_error", "message": "x"}},
    )
    return log


def test_turns_rows_and_latencies() -> None:
    df = build().turns()
    assert list(df["response_id"]) == ["r1", "r2"]
    r1, r2 = df.iloc[0], df.iloc[1]
    assert r1["trigger"] == "speech" and r2["trigger"] == "text"
    assert r1["to_created_ms"] == 100 and r1["to_first_delta_ms"] == 300
    assert r1["to_first_audio_ms"] == 400  # the browser's ear, not output_audio_buffer.started
    assert r1["status"] == "completed" and r1["total_tokens"] == 15
    assert r1["speech_stopped"] - r1["speech_started"] == pd.Timedelta(milliseconds=1500)
    assert r2["to_created_ms"] == 100 and r2["to_first_delta_ms"] == 300
    assert pd.isna(r2["to_first_audio_ms"])
    assert r2["status"] == "cancelled" and r2["reason"] == "turn_detected"
    assert str(df["created"].dtype).startswith("datetime64") and df["created"].dt.tz is not None


def test_latency_summary() -> None:
    summary = build().latency_summary()
    # first heard (r1: 400 ms), else first read (r2: its text delta, 300 ms)
    assert summary == {"last_ms": 300, "median_ms": 350, "count": 2}


def test_empty_turns_have_stable_columns() -> None:
    df = EventLog().turns()
    assert len(df) == 0 and "to_first_audio_ms" in df.columns


def test_plot_timeline_renders(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    fig = build().plot_timeline()
    out = tmp_path / "timeline.png"
    fig.savefig(out, dpi=80)
    assert out.stat().st_size > 5_000
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "user speech",
        "assistant audio",
        "responses",
        "errors",
    ]
    assert ax.get_title() == "2 responses, 1 user utterances, 1 errors"
    labels = [t.get_text() for t in ax.texts]
    assert any("created 100 ms" in s and "audio 400 ms" in s for s in labels)
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    fig.savefig(artifacts / "timeline-unit.png", dpi=100)


def ten_minute_session() -> EventLog:
    """70 spoken turns over ~9 minutes, some interrupted, a few errors."""
    import random

    rng = random.Random(1)
    log = EventLog()

    def at(ms: float, direction: str, event: dict) -> None:
        log._append(direction, event, t_ms=T0 + ms, t_kernel_ms=T0 + ms + 3)

    ms = 0.0
    for i in range(70):
        ms += rng.uniform(2000, 5000)
        at(ms, "server", {"type": "input_audio_buffer.speech_started"})
        ms += rng.uniform(800, 3000)
        at(ms, "server", {"type": "input_audio_buffer.speech_stopped"})
        rid = f"r{i}"
        ms += rng.uniform(50, 300)
        at(ms, "server", {"type": "response.created", "response": {"id": rid}})
        ms += rng.uniform(100, 400)
        at(ms, "server", {"type": "output_audio_buffer.started", "response_id": rid})
        at(ms + 80, "local", {"type": "audio.audible", "response_id": rid})
        cancelled = rng.random() < 0.15
        dur = rng.uniform(1000, 4000) / (3 if cancelled else 1)
        status = "cancelled" if cancelled else "completed"
        at(ms + dur, "server", {"type": "response.done", "response": {"id": rid, "status": status}})
        end = "output_audio_buffer.cleared" if cancelled else "output_audio_buffer.stopped"
        at(ms + dur + 5, "server", {"type": end, "response_id": rid})
        ms += dur
        if rng.random() < 0.05:
            at(ms + 10, "server", {"type": "error", "error": {"message": "x"}})
    return log


def test_a_ten_minute_session_stays_readable() -> None:
    import matplotlib

    matplotlib.use("Agg")
    log = ten_minute_session()
    fig = log.plot_timeline(label_last=5)
    lanes, latency = fig.axes[0], fig.axes[1]
    assert lanes.get_title().startswith("70 responses, 70 user utterances")
    # dense turns: labels that would collide are dropped, never drawn over each other
    xs = sorted(t.xy[0] for t in lanes.texts)
    assert 1 <= len(xs) <= 5
    assert all(b - a >= 0.08 * xs[-1] for a, b in itertools.pairwise(xs))
    # every turn's latency is in the panel below
    assert {line.get_label() for line in latency.lines} >= {"to response.created", "to first audio"}
    assert max(len(line.get_xdata()) for line in latency.lines) == 70
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    fig.savefig(artifacts / "timeline-10min.png", dpi=100)


FIXTURE = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "latency.json").read_text()
)


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=[c["name"] for c in FIXTURE["cases"]])
def test_latency_summary_follows_the_fixture(case: dict) -> None:
    log = EventLog()
    log._extend((r["dir"], r["event"], r["t_ms"], r["t_ms"], 1) for r in case["records"])
    assert log.latency_summary() == case["expected"]
    assert len(log.turns()) >= case["expected"]["count"]  # the analyses survive every shape


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=[c["name"] for c in FIXTURE["cases"]])
def test_the_widgets_live_figure_is_the_same(case: dict) -> None:
    """The widget folds each batch as it arrives (bounded memory) and syncs the figure."""
    from realtime_widget import RealtimeWidget

    w = RealtimeWidget(api_key="k")
    seam.set_post(w, lambda m: None)
    for i, r in enumerate(case["records"]):  # one batch per record: the live path
        seam.from_page(
            w,
            {"kind": "events", "call": 0, "page": "p", "records": [{"seq": i, **r}]},
            [],
        )
    assert w.live_latency == case["expected"]
    w.close()


def tool_call_records(
    *, page_ms: float, sideband_ms: float, dur_ms: float, sent_ms: float, sent_via: str | None
) -> list[dict]:
    """A response that calls one function: the page heard the call at ``page_ms``, the kernel
    on the sideband at ``sideband_ms``; the function ran ``dur_ms``; its output went out at
    ``sent_ms`` on the sideband (``sent_via="sideband"``) or through the page (None)."""
    call_item = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
    output = {
        "call_number": 1,
        "direction": "client",
        "t_ms": sent_ms,
        "event": {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "c1", "output": "1"},
        },
    }
    if sent_via is not None:
        output["via"] = sent_via
    return [
        {
            "call_number": 1,
            "direction": "server",
            "t_ms": 1000.0,
            "event": {"type": "response.created", "response": {"id": "r1"}},
        },
        {
            "call_number": 1,
            "direction": "server",
            "t_ms": page_ms,
            "t_sideband_ms": sideband_ms,
            "via": "both",
            "event": {"type": "response.output_item.done", "response_id": "r1", "item": call_item},
        },
        {
            "call_number": 1,
            "direction": "local",
            "t_ms": sideband_ms + dur_ms + 1.0,
            "event": {"type": "tool.finished", "call_id": "c1", "duration_ms": dur_ms},
        },
        output,
    ]


def test_a_tool_answered_on_the_sideband_counts_its_hop_from_the_kernels_receive() -> None:
    """The page's copy of the call can reach the page after the kernel already answered it on
    the sideband: the hop is the kernel's, from its own receive to its output."""
    # the page heard the call at 1030 ms; the kernel, on the sideband, at 1005 ms
    recs = tool_call_records(
        page_ms=1030.0, sideband_ms=1005.0, dur_ms=1.0, sent_ms=1008.0, sent_via="sideband"
    )
    (turn,) = collect_turns(recs)
    assert turn.tool_columns()["tool_hop_ms"] == 2.0  # 1008 - 1005 - 1, never negative


def test_a_tool_heard_on_the_sideband_first_and_answered_by_the_page_counts_from_that() -> None:
    """The kernel runs a call from the first copy to reach it. When that was the sideband's and
    the output went out through the page, the hop still starts at the kernel's receive: counting
    from the page's later copy made it negative."""
    recs = tool_call_records(
        page_ms=1030.0, sideband_ms=1005.0, dur_ms=4.0, sent_ms=1031.0, sent_via=None
    )
    (turn,) = collect_turns(recs)
    assert turn.tool_columns()["tool_hop_ms"] == 22.0  # 1031 - 1005 - 4 (from the page: -3)
