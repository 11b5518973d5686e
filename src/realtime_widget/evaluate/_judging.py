"""What a set of runs does with judges and callers.

``runs.judge()`` (the judged rows kept with the set and saved beside it), the judges' columns of
``runs.summary()``, and ``runs.conversations()`` (one row per run of a simulated caller).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._env import base_url_from_env, key_from_env
from .._extras import require
from .._provider import DEFAULT_BASE_URL
from .._secrets import Secret
from ._caller import CALLER_ENDED
from ._judge import JUDGE_COLUMNS, Judge, judge_turns, judged_frame, run_context
from ._models import ModelClient, ModelEndpoint

if TYPE_CHECKING:
    import pandas as pd

    from ..experiments._runs import Run, Runs

JUDGED_FILE = "_judged.parquet"
CONVERSATION_COLUMNS = (
    "variant",
    "repeat",
    "condition",
    "run",
    "turns",
    "goal_met",
    "ended_by",
    "error",
    "transcript",
)


def env_endpoint() -> ModelEndpoint | None:
    """The endpoint a widget made here would use.

    ``INWORLD_API_KEY`` (or ``.env``) and ``INWORLD_BASE_URL`` (else Inworld's); None without a key.
    """
    key = key_from_env()
    if not key:
        return None
    return ModelEndpoint(base_url_from_env() or DEFAULT_BASE_URL, key)


async def judge_runs(
    runs: Runs,
    judge: Judge,
    *,
    base_url: str | None = None,
    api_key: str | Secret | None = None,
    client: ModelClient | None = None,
) -> pd.DataFrame:
    """Judge every turn (or run) of ``runs``.

    The rows are kept in ``runs.judged`` (a judge judged again replaces its rows) and returned.
    """
    pd = require("pandas", "pandas", "Runs.judge()")
    if not isinstance(judge, Judge):
        raise TypeError(f"runs.judge() takes a Judge, not {type(judge).__name__}")
    own = client is None
    if client is None:
        client = judge.client(runs.endpoint or env_endpoint(), base_url=base_url, api_key=api_key)
    meta = {run.index: run_context(run) for run in runs.runs}
    try:
        scores = await judge_turns(judge, runs.turns(), meta, client)
    finally:
        if own:
            await client.aclose()
    tracing = getattr(runs, "tracing", None)
    if tracing is not None:  # the live session's trace: chat spans linked to the turns
        tracing.judged(runs, scores.to_dict("records"))
    kept = runs.judged
    if kept is not None and not kept.empty:
        kept = kept[kept["judge"] != judge.name]
        if not kept.empty:
            runs.judged = judged_frame(pd, [*kept.to_dict("records"), *scores.to_dict("records")])
            return scores
    runs.judged = scores
    return scores


def with_scores(summary: pd.DataFrame, judged: pd.DataFrame | None) -> pd.DataFrame:
    """``summary`` with each judge's score and pass-rate columns.

    ``summary`` is indexed by variant, or by variant and condition. Each judge adds
    ``<name>_score`` (the mean score) and ``<name>_pass_rate`` (the share of judgements that
    passed), and ``<name>_errors`` when some judgements could not be read.
    """
    if judged is None or judged.empty:
        return summary
    out = summary.copy()
    keys = [str(k) for k in summary.index.names]  # ["variant"] or ["variant", "condition"]
    for name in dict.fromkeys(judged["judge"].astype(str)):
        mine = judged[judged["judge"] == name]
        by = mine.groupby([mine[k].astype(str) for k in keys])
        out[f"{name}_score"] = by["score"].apply(lambda s: s.astype("Float64").mean())
        out[f"{name}_pass_rate"] = by["passed"].apply(lambda s: s.astype("Float64").mean())
        errors = by["error"].apply(lambda s: int(s.notna().sum()))
        if errors.sum():
            out[f"{name}_errors"] = errors
    return out


def write_judged(root: Path, judged: pd.DataFrame | None) -> str | None:
    """The judged rows as ``_judged.parquet`` beside the set (already scrubbed of the key).

    The file's name, or None when nothing was judged.
    """
    if judged is None or judged.empty:
        return None
    judged.to_parquet(root / JUDGED_FILE, index=False)
    return JUDGED_FILE


def read_judged(root: Path, name: str | None) -> pd.DataFrame | None:
    if not name or not (root / name).is_file():
        return None
    pd = require("pandas", "pandas", "Runs.read_parquet()")
    back = pd.read_parquet(root / name)
    rows = back.reindex(columns=list(JUDGE_COLUMNS)).to_dict("records")
    return judged_frame(pd, [{k: (None if _na(v) else v) for k, v in r.items()} for r in rows])


def _na(value: Any) -> bool:
    try:
        return bool(value is None or value != value)
    except (TypeError, ValueError):  # pandas.NA refuses bool()
        return True


def _ending(run: Run) -> Mapping[str, Any] | None:
    """The run's ``caller.ended`` record's event, if its caller ended by itself."""
    if run.events is None:
        return None
    for rec in run.events.of_type(CALLER_ENDED, direction="local"):
        return dict(rec["event"])
    return None


def _line(row: Mapping[str, Any]) -> Sequence[str]:
    said = row.get("said") or row.get("prompt") or ""
    agent = row.get("text") or row.get("transcript") or ""
    lines = [f"caller: {said}"]
    heard = row.get("heard")
    if heard and heard != said:
        lines.append(f"  (the service heard: {heard})")
    lines.append(f"agent: {agent or '[no reply]'}")
    return lines


def conversations(runs: Runs) -> pd.DataFrame:
    """One row per run.

    Its turns, whether the caller's goal was met, what ended it (``goal``, ``max_turns``, ``error``,
    ``cancelled``; ``script`` for a fixed script), the error if any, and the transcript both ways
    (``caller: ...`` / ``agent: ...``, one line each).
    """
    pd = require("pandas", "pandas", "Runs.conversations()")
    out = []
    for run in runs.runs:
        ending = _ending(run)
        error = run.error
        if run.status == "cancelled":
            ended_by = "cancelled"
        elif ending is not None:
            ended_by = ending.get("ended_by") or "error"
            error = ending.get("error") or error
        elif run.status == "failed":
            ended_by = "error"
        else:
            ended_by = "script"
        rows = sorted(run.rows, key=lambda r: r["turn"])
        out.append(
            {
                "variant": run.variant,
                "repeat": run.repeat,
                "condition": getattr(run, "condition", None),
                "run": run.index,
                "turns": len(rows),
                "goal_met": bool(ending.get("goal_met")) if ending is not None else None,
                "ended_by": ended_by,
                "error": error,
                "transcript": "\n".join(line for r in rows for line in _line(r)),
            }
        )
    df = pd.DataFrame(out, columns=list(CONVERSATION_COLUMNS))
    for col in ("repeat", "run", "turns"):
        df[col] = df[col].astype("int64")
    df["goal_met"] = df["goal_met"].astype("boolean")
    for col in ("variant", "condition", "ended_by", "error", "transcript"):
        df[col] = df[col].astype("string")
    return df
