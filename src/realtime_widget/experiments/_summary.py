"""Statistics over the turns' rows.

Per variant completion, latency quantiles and audio time, and the grid's wall time against its
turns' own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._extras import require
from ._storage import LATENCY_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

Row = Mapping[str, Any]


def quantile(values: Sequence[float | None], q: float) -> float:
    """The ``q`` quantile, linear between closest ranks (numpy's default); NaN when empty."""
    xs = sorted(v for v in values if v is not None and not math.isnan(v))
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(rows: Sequence[Row], variants: Sequence[str]) -> pd.DataFrame:
    """The summary table: per variant (per variant x condition when the grid has conditions).

    Runs, turns, completion rate, p50/p95 of each latency, the agent's audio seconds (total
    and per turn) and the turns' own time; with turn-taking turns or conditions, their figures
    too (:func:`turn_taking`).
    """
    pd = require("pandas", "pandas", "Runs.summary()")
    conditions = list(dict.fromkeys(c for r in rows if (c := r.get("condition")) is not None))
    measured = bool(conditions) or any(r.get("kind") in TURN_TAKING_KINDS for r in rows)
    out = []
    for name, condition in [(v, c) for v in variants for c in conditions or [None]]:
        mine = [r for r in rows if r["variant"] == name and r.get("condition") == condition]
        entry: dict[str, Any] = {
            "variant": name,
            **({"condition": condition} if conditions else {}),
            "runs": len({r["repeat"] for r in mine}),
            "turns": len(mine),
            "completed": sum(1 for r in mine if r["status"] == "completed"),
        }
        entry["completion_rate"] = entry["completed"] / len(mine) if mine else float("nan")
        for col in LATENCY_COLUMNS:
            vals = [r[col] for r in mine if r[col] is not None]
            entry[f"{col}_p50"] = quantile(vals, 0.5)
            entry[f"{col}_p95"] = quantile(vals, 0.95)
        audio = [r["audio_ms"] for r in mine if r["audio_ms"] is not None]
        entry["audio_s"] = sum(audio) / 1000.0 if audio else float("nan")
        entry["audio_s_per_turn"] = entry["audio_s"] / len(audio) if audio else float("nan")
        turn_ms = [r["turn_ms"] for r in mine if r["turn_ms"] is not None]
        entry["turn_s"] = sum(turn_ms) / 1000.0 if turn_ms else float("nan")
        if measured:
            entry.update(turn_taking(mine))
        out.append(entry)
    return pd.DataFrame(out).set_index(["variant", "condition"] if conditions else "variant")


TURN_TAKING_KINDS = ("pauses", "barge_in", "noise")


def turn_taking(rows: Sequence[Row]) -> dict[str, float]:
    """The turn-taking figures of some rows (NaN where there is nothing to count).

    The share of pauses turns cut off, the median end of turn of spoken turns, false turns per
    minute of noise alone, and stop_ms p50/p95 and the median heard_ms of barge-ins.
    """
    cut = [bool(r["cut_off"]) for r in rows if r.get("cut_off") is not None]
    noise = [r for r in rows if r.get("kind") == "noise" and r.get("clip_ms")]
    minutes = sum(float(r["clip_ms"]) for r in noise) / 60_000.0
    false = sum(int(r.get("false_turns") or 0) for r in noise)
    stops = [r.get("stop_ms") for r in rows]
    return {
        "cut_off_rate": sum(cut) / len(cut) if cut else float("nan"),
        "end_of_turn_ms_p50": quantile([r.get("end_of_turn_ms") for r in rows], 0.5),
        "false_turns_per_min": false / minutes if minutes else float("nan"),
        "stop_ms_p50": quantile(stops, 0.5),
        "stop_ms_p95": quantile(stops, 0.95),
        "heard_ms_p50": quantile([r.get("heard_ms") for r in rows], 0.5),
    }


def timing(rows: Sequence[Row], wall_ms: float | None) -> dict[str, float | None]:
    """The grid's wall time against the sum of its turns' own durations (seconds)."""
    turn_ms = [r["turn_ms"] for r in rows if r["turn_ms"] is not None]
    turns_s = sum(turn_ms) / 1000.0
    wall_s = wall_ms / 1000.0 if wall_ms is not None else None
    ratio = wall_s / turns_s if wall_s is not None and turns_s else None
    return {"wall_s": wall_s, "turns_s": turns_s, "ratio": ratio}
