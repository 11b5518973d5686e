"""A session as a picture: lanes for user speech, assistant audio, responses and errors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._extras import missing
from ._recording import recordings_of
from ._turns import collect_turns, obj

STATUS_COLOURS = {
    "completed": "#2e7d32",
    "cancelled": "#ef6c00",
    "failed": "#c62828",
    "incomplete": "#6a1b9a",
    None: "#9e9e9e",
}
LANES = ("user speech", "assistant audio", "responses", "errors")


def plot_timeline(
    records: Iterable[Mapping[str, Any]], *, label_last: int = 5, ax: Any = None
) -> Any:
    """Draw log records as lanes against seconds since the first; returns the Figure."""
    try:
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        raise missing("plot", "matplotlib", "plot_timeline()") from None
    lat_ax = None
    # a recording's two tracks go above the lanes (only in a figure of our own)
    waves = recordings_of(records) if ax is None else {}
    wave_axes: tuple[Any, ...] = ()
    if ax is None and waves:
        fig, (*wave_axes, ax, lat_ax) = plt.subplots(
            4, 1, figsize=(12, 6.6), sharex=True, height_ratios=(1, 1, 3, 1.6),
            layout="constrained",
        )  # fmt: skip
    elif ax is None:
        fig, (ax, lat_ax) = plt.subplots(
            2, 1, figsize=(12, 4.6), sharex=True, height_ratios=(3, 1.6), layout="constrained"
        )
    else:
        fig = ax.figure
    log = list(records)
    if not log:
        ax.set_title("no events yet")
        return fig
    t0 = log[0]["t_ms"]

    def s(t_ms: float) -> float:
        return (t_ms - t0) / 1000.0

    if wave_axes:
        _waveforms(wave_axes, waves, s)
    lane = {name: len(LANES) - 1 - i for i, name in enumerate(LANES)}
    height = 0.6
    speech: list[tuple[float, float]] = []
    audio: list[tuple[float, float]] = []
    errors: list[float] = []
    started: float | None = None
    audio_on: dict[str, float] = {}
    for rec in log:
        etype, t, ev = rec["type"], rec["t_ms"], obj(rec["event"])
        if etype == "input_audio_buffer.speech_started":
            started = t
        elif etype == "input_audio_buffer.speech_stopped" and started is not None:
            speech.append((s(started), s(t) - s(started)))
            started = None
        elif etype == "output_audio_buffer.started":
            audio_on[str(ev.get("response_id", ""))] = t
        elif etype in ("output_audio_buffer.stopped", "output_audio_buffer.cleared"):
            begin = audio_on.pop(str(ev.get("response_id", "")), None)
            if begin is not None:
                audio.append((s(begin), s(t) - s(begin)))
        elif etype in ("error", "call.failed", "callback.error") or "errorType" in ev:
            errors.append(s(t))
    ax.broken_barh(speech, (lane["user speech"] - height / 2, height), color="#1565c0")
    ax.broken_barh(audio, (lane["assistant audio"] - height / 2, height), color="#00897b")
    turns = collect_turns(log)
    for turn in turns:
        begin, end = turn.t.get("created"), turn.t.get("done")
        if begin is None:
            continue
        width = s(end) - s(begin) if end is not None else 0.05
        colour = STATUS_COLOURS.get(turn.status, STATUS_COLOURS[None])
        ax.broken_barh(
            [(s(begin), max(width, 0.05))], (lane["responses"] - height / 2, height), color=colour
        )
    if errors:
        ax.plot(errors, [lane["errors"]] * len(errors), "x", color="#c62828", markersize=9)
    span = max(s(log[-1]["t_ms"]), 1e-3)
    labelled: list[float] = []
    # Newest first; a label that would collide with one already placed is left out, so a
    # long session stays readable (the latency panel below has every turn).
    for turn in reversed(turns[-label_last:] if label_last else []):
        row, created = turn.row(), turn.t.get("created")
        parts = [
            f"{name} {row[col]:.0f} ms"
            for name, col in (("created", "to_created_ms"), ("audio", "to_first_audio_ms"))
            if row[col] is not None
        ]
        if not parts or created is None:
            continue
        x = s(created)
        if any(abs(x - other) < span * 0.08 for other in labelled):
            continue
        labelled.append(x)
        ax.annotate(
            "\n".join(parts),
            (x, lane["responses"] + height / 2),
            xytext=(0, 4),
            textcoords="offset points",
            fontsize=7,
            va="bottom",
        )
    if lat_ax is not None:
        _latency_panel(lat_ax, turns, s)
    ax.set_yticks(list(lane.values()), list(lane.keys()))
    ax.set_ylim(-0.7, len(LANES) - 0.1)
    (lat_ax or ax).set_xlabel("seconds since the first event")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(
        handles=[
            Patch(color=c, label=k)
            for k, c in STATUS_COLOURS.items()
            if k and any(t.status == k for t in turns)
        ],
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize=7,
        title="response",
        title_fontsize=7,
    )
    ax.set_title(f"{len(turns)} responses, {len(speech)} user utterances, {len(errors)} errors")
    return fig


def _waveforms(axes: tuple[Any, ...], recordings: Mapping[int, Any], s: Any) -> None:
    """Each recording's two tracks as envelopes (min/max per bucket) on the log's time axis."""
    import numpy as np

    labels = ("user\n(service heard)", "agent\n(user heard)")
    for rec in recordings.values():
        if not rec.chunks:
            continue
        pcm = rec.pcm()
        step = max(1, len(pcm) // 3000)
        n = len(pcm) // step
        times = s(rec.t0_ms) + np.arange(n) * step / rec.sample_rate
        for col, (a, colour) in enumerate(zip(axes, ("#1565c0", "#00897b"), strict=True)):
            x = pcm[: n * step, col].reshape(n, step) / 32768.0
            a.fill_between(times, x.min(axis=1), x.max(axis=1), color=colour, linewidth=0)
    for a, label in zip(axes, labels, strict=True):
        a.set_ylim(-1, 1)
        a.set_yticks([])
        a.set_ylabel(label, fontsize=8)
        a.grid(axis="x", alpha=0.3)


def _latency_panel(ax: Any, turns: list[Any], s: Any) -> None:
    """Each turn's latencies against time: the trend a long session needs."""
    from statistics import median

    for col, label, colour in (
        ("to_created_ms", "to response.created", "#6d4c41"),
        ("to_first_audio_ms", "to first audio", "#00897b"),
    ):
        points = [
            (s(t.t["created"]), r[col])
            for t in turns
            if t.t.get("created") is not None and (r := t.row())[col] is not None
        ]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, ".-", color=colour, markersize=4, linewidth=0.8, label=label)
        ax.axhline(median(ys), color=colour, linewidth=0.6, linestyle=":")
    ax.set_ylabel("ms after\nthe user's turn", fontsize=8)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            fontsize=7,
            title="latency (median dotted)",
            title_fontsize=7,
        )
