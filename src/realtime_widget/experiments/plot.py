"""The figure of a set of runs: each latency's distribution per variant, one panel each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._extras import missing
from .storage import LATENCY_COLUMNS


def plot_runs(
    rows: Sequence[Mapping[str, Any]],
    variants: Sequence[str],
    title: str,
    columns: Sequence[str] = LATENCY_COLUMNS,
) -> Any:
    """Box plots per variant, one panel per latency (and the agent's audio time), each turn a
    point coloured by turn; returns the matplotlib Figure."""
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
