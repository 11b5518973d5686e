"""A session as a picture: lanes for user speech, assistant audio, responses and errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._turns import collect_turns

if TYPE_CHECKING:
    from ._log import EventLog

STATUS_COLOURS = {
    "completed": "#2e7d32",
    "cancelled": "#ef6c00",
    "failed": "#c62828",
    "incomplete": "#6a1b9a",
    None: "#9e9e9e",
}
LANES = ("user speech", "assistant audio", "responses", "errors")


def plot_timeline(log: EventLog, *, label_last: int = 5, ax: Any = None) -> Any:
    """Draw ``log`` as lanes against seconds since its first event; returns the Figure."""
    try:
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        raise ImportError(
            'plot_timeline() needs matplotlib: pip install "realtime-widget[plot]"'
        ) from None
    if ax is None:
        fig, ax = plt.subplots(figsize=(12, 3.2), layout="constrained")
    else:
        fig = ax.figure
    if not len(log):
        ax.set_title("no events yet")
        return fig
    t0 = log.record(0)["t_ms"]

    def s(t_ms: float) -> float:
        return (t_ms - t0) / 1000.0

    lane = {name: len(LANES) - 1 - i for i, name in enumerate(LANES)}
    height = 0.6
    speech: list[tuple[float, float]] = []
    audio: list[tuple[float, float]] = []
    errors: list[float] = []
    started: float | None = None
    audio_on: dict[str, float] = {}
    for rec in log:
        etype, t = rec["type"], rec["t_ms"]
        if etype == "input_audio_buffer.speech_started":
            started = t
        elif etype == "input_audio_buffer.speech_stopped" and started is not None:
            speech.append((s(started), s(t) - s(started)))
            started = None
        elif etype == "output_audio_buffer.started":
            audio_on[rec["event"].get("response_id", "")] = t
        elif etype in ("output_audio_buffer.stopped", "output_audio_buffer.cleared"):
            begin = audio_on.pop(rec["event"].get("response_id", ""), None)
            if begin is not None:
                audio.append((s(begin), s(t) - s(begin)))
        elif etype in ("error", "call.failed", "callback.error") or "errorType" in rec["event"]:
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
    for turn in turns[-label_last:] if label_last else []:
        row = turn.row()
        parts = [
            f"{name} {row[col]:.0f} ms"
            for name, col in (("created", "to_created_ms"), ("audio", "to_first_audio_ms"))
            if row[col] is not None
        ]
        if parts and turn.t.get("created") is not None:
            ax.annotate(
                "\n".join(parts),
                (s(turn.t["created"] or 0), lane["responses"] + height / 2),
                xytext=(0, 4),
                textcoords="offset points",
                fontsize=7,
                va="bottom",
            )
    ax.set_yticks(list(lane.values()), list(lane.keys()))
    ax.set_ylim(-0.7, len(LANES) - 0.1)
    ax.set_xlabel("seconds since the first event")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(
        handles=[
            Patch(color=c, label=k)
            for k, c in STATUS_COLOURS.items()
            if k and any(t.status == k for t in turns)
        ],
        loc="upper right",
        fontsize=7,
        title="response",
        title_fontsize=7,
    )
    ax.set_title(f"{len(turns)} responses, {len(speech)} user utterances, {len(errors)} errors")
    return fig
