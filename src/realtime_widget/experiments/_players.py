"""One turn's recordings, one player per variant side by side (``runs.listen()``)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._recording import Recording
    from ._runs import Run

# (variant, its row, the clip, why there is no clip)
Cell = tuple[str, Any, "Recording | None", "str | None"]


def turn_clip(rec: Recording, row: Mapping[str, Any], pad_ms: float) -> Recording:
    """The stretch of ``rec`` holding the turn's reply (and a tool's answer, when it had one)."""
    rid = row.get("response_id")
    if rid is None:
        raise ValueError("the turn had no response")
    clip = rec.clip(str(rid), pad_ms=pad_ms)
    end = row.get("ended_ms")
    if row.get("responses", 1) > 1 and end is not None and clip.t0_ms is not None:
        clip = rec.window(clip.t0_ms, float(end) + pad_ms)
    return clip


def players(
    runs: list[Run],
    variants: list[str],
    turn: int,
    repeat: int,
    pad_ms: float,
    condition: str | None = None,
) -> Players:
    """The players of ``turn`` in each variant's ``repeat``, or why one has none.

    Under ``condition``, when the runs have conditions.
    """
    cells: list[Cell] = []
    for name in variants:
        run = next(
            (
                r
                for r in runs
                if r.variant == name
                and r.repeat == repeat
                and (condition is None or r.condition == condition)
            ),
            None,
        )
        row = next((x for x in (run.rows if run else []) if x["turn"] == turn), None)
        if run is None or row is None:
            cells.append((name, None, None, "not run"))
            continue
        rec = run.recording
        if rec is None or not rec.chunks:
            cells.append((name, row, None, "no recording: RealtimeWidget(record=True)"))
            continue
        try:
            clip = turn_clip(rec, row, pad_ms)
        except (KeyError, ValueError) as exc:
            cells.append((name, row, None, str(exc)))
            continue
        cells.append((name, row, clip, None))
    return Players(turn, repeat, cells, condition)


class Players:
    """Players side by side, one per variant (``runs.listen()``)."""

    def __init__(
        self, turn: int, repeat: int, cells: list[Cell], condition: str | None = None
    ) -> None:
        self.turn, self.repeat, self.cells, self.condition = turn, repeat, cells, condition

    @property
    def clips(self) -> dict[str, Recording | None]:
        return {name: clip for name, _, clip, _ in self.cells}

    def _repr_html_(self) -> str:
        columns = []
        for name, row, clip, why in self.cells:
            lines = [f"<b>{html.escape(name)}</b>"]
            if row is not None:
                lat = row.get("to_first_output_ms")
                lat_s = f"{lat:.0f} ms" if isinstance(lat, float) and not math.isnan(lat) else "-"
                lines.append(f"<div>{html.escape(str(row.get('text') or ''))[:200]}</div>")
                lines.append(
                    f"<div>{html.escape(str(row.get('status')))} · first output {lat_s}</div>"
                )
            lines.append(
                clip._repr_html_() if clip is not None else f"<i>{html.escape(why or '')}</i>"
            )
            columns.append(
                "<div style='flex:1 1 20em;min-width:18em;border-left:2px solid #ccc;"
                f"padding-left:.6em'>{''.join(lines)}</div>"
            )
        title = f"turn {self.turn}, repeat {self.repeat}"
        if self.condition is not None:
            title += f", {self.condition}"
        return (
            f"<div><div>{html.escape(title)}</div>"
            f"<div style='display:flex;gap:1em;flex-wrap:wrap'>{''.join(columns)}</div></div>"
        )

    def __repr__(self) -> str:
        return f"<players of turn {self.turn}: {', '.join(n for n, *_ in self.cells)}>"
