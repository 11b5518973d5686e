"""The figure of a set of runs: each latency's distribution per variant, one panel each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._extras import missing
from ._storage import LATENCY_COLUMNS


def plot_runs(
    rows: Sequence[Mapping[str, Any]],
    variants: Sequence[str],
    title: str,
    columns: Sequence[str] = LATENCY_COLUMNS,
) -> Any:
    """Box plots per variant, one panel per latency (and the agent's audio time).

    Each turn is a point coloured by turn; returns the matplotlib Figure.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise missing("plot", "matplotlib", "Runs.plot()") from None
    panels = [c for c in columns if any(r[c] is not None for r in rows)]
    if any(r["audio_ms"] is not None for r in rows):
        panels.append("audio_ms")
    if not panels:
        panels = ["to_first_output_ms"]
    names = list(variants)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.2 * len(panels) + 1, 3.6), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    turns = sorted({r["turn"] for r in rows})
    colours = plt.get_cmap("tab10")
    for ax, col in zip(axes[0], panels, strict=True):
        data = [[r[col] for r in rows if r["variant"] == v and r[col] is not None] for v in names]
        ax.boxplot(
            [d or [float("nan")] for d in data], showfliers=False, widths=0.5,
            medianprops={"color": "black"},
        )  # fmt: skip
        for i, name in enumerate(names, 1):  # every turn as a point, coloured by turn
            mine = [r for r in rows if r["variant"] == name and r[col] is not None]
            for j, r in enumerate(mine):
                dx = ((j * 7919) % 17 / 16.0 - 0.5) * 0.3  # a fixed jitter
                ax.plot(
                    i + dx, r[col], "o", ms=4, alpha=0.75,
                    color=colours((turns.index(r["turn"])) % 10),
                )  # fmt: skip
        ax.set_xticks(range(1, len(names) + 1), names, rotation=20, ha="right")
        ax.set_title(col.removesuffix("_ms").replace("_", " ") + " (ms)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    handles = [
        plt.Line2D([], [], ls="", marker="o", color=colours(k % 10), label=f"turn {t}")
        for k, t in enumerate(turns)
    ]
    if handles:
        fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    fig.suptitle(title, fontsize=11)
    plt.close(fig)  # shown by the cell's result, not twice
    return fig


SPOKEN_KINDS = ("audio", "pauses", "barge_in")
TRADEOFFS = ("cut_off",)


def plot_tradeoff(
    rows: Sequence[Mapping[str, Any]], variants: Sequence[str], what: str, title: str
) -> Any:
    """The eagerness trade-off: cut-off rate against median response latency.

    Each variant x condition's cut-off rate (pauses turns) against its median response latency
    (``to_first_output_ms`` of the spoken turns: from the clip's end, so the service's wait
    for the end of the turn is in it); returns the Figure.
    """
    if what not in TRADEOFFS:
        raise ValueError(f"plot() draws the latencies, or one of {TRADEOFFS}; got {what!r}")
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise missing("plot", "matplotlib", "Runs.plot()") from None
    from ._summary import quantile

    conditions = list(dict.fromkeys(r.get("condition") for r in rows))
    fig, ax = plt.subplots(figsize=(5.6, 4.0), layout="constrained")
    colours = plt.get_cmap("tab10")
    markers = "osD^vP*X"
    for ci, condition in enumerate(conditions):
        for vi, variant in enumerate(variants):
            mine = [r for r in rows if r["variant"] == variant and r.get("condition") == condition]
            cut = [bool(r["cut_off"]) for r in mine if r.get("cut_off") is not None]
            spoken = [r.get("to_first_output_ms") for r in mine if r.get("kind") in SPOKEN_KINDS]
            latency = quantile(spoken, 0.5)
            if not cut or latency != latency:  # no pauses turn, or no spoken reply measured
                continue
            rate = sum(cut) / len(cut)
            label = variant if condition is None else f"{variant} · {condition}"
            ax.plot(
                latency, rate, markers[vi % len(markers)], ms=8, color=colours(ci % 10),
                label=label,
            )  # fmt: skip
            ax.annotate(label, (latency, rate), textcoords="offset points", xytext=(6, 4),
                        fontsize=8)  # fmt: skip
    ax.set_xlabel("response latency, spoken turns p50 (ms)")
    ax.set_ylabel("cut-off rate (pauses turns)")
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8, loc="best")
    else:
        ax.text(0.5, 0.5, "no pauses turn with a measured reply", ha="center",
                transform=ax.transAxes)  # fmt: skip
    ax.set_title(f"eagerness trade-off: {title}", fontsize=10)
    plt.close(fig)
    return fig
