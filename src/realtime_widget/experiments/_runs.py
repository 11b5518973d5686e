"""The results: each :class:`Run` (one pass of the script with one variant) and :class:`Runs`,
the handle of one ``run_script``: awaitable, filled in as the runs finish, and the way in to
their table, statistics, figure, recordings, files and assertions."""

from __future__ import annotations

import asyncio
import html
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._delivery import Delivery, MidCellDeliveryError
from .._log import EventLog
from .._pending import Pending
from ..media._conditions import conditions_from
from . import _storage as storage
from ._expectations import Expectation
from ._players import Players, players
from ._plot import plot_runs, plot_tradeoff
from ._script import SavedTurn, Script, TurnSource
from ._storage import LATENCY_COLUMNS
from ._summary import summarize, timing


def _judging() -> Any:
    """The judged scores' storage (the evaluate package): imported when a set is judged,
    summarized, saved or read, never with the core."""
    from ..evaluate import _judging

    return _judging


if TYPE_CHECKING:
    import pandas as pd

    from .._recording import Recording
    from ..evaluate._judge import Judge
    from ..evaluate._models import ModelClient, ModelEndpoint


@dataclass
class Run:
    """One pass of the script with one variant: its seed, the session it ran with, its turns'
    rows and its slice of the event log."""

    variant: str
    repeat: int
    index: int
    seed: int
    fields: dict[str, Any]
    session: dict[str, Any] = field(default_factory=dict)  # session_config() as sent
    confirmed: dict[str, Any] = field(default_factory=dict)  # what session.updated said
    call_number: int = 0
    condition: str | None = None  # the name of the condition its spoken turns played under
    fresh_call: bool = False
    status: str = "pending"  # running, completed, failed, cancelled
    error: str | None = None
    started_ms: float | None = None  # kernel clock
    ended_ms: float | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    events: EventLog | None = None
    recording: Recording | None = None
    # seq ranges in the widget's log: the run, and each turn (with the runner's error if any)
    seq: tuple[int, int] = (0, 0)
    spans: list[tuple[int, int, str | None]] = field(default_factory=list)

    @property
    def meta(self) -> dict[str, Any]:
        """What every row of this run carries."""
        return {
            "variant": self.variant,
            "condition": self.condition,
            "repeat": self.repeat,
            "run": self.index,
            "seed": self.seed,
            "call_number": self.call_number,
        }

    def manifest(self) -> dict[str, Any]:
        return {
            **self.meta,
            "fields": self.fields,
            "session": self.session,
            "confirmed": self.confirmed,
            "fresh_call": self.fresh_call,
            "status": self.status,
            "error": self.error,
            "started_ms": self.started_ms,
            "ended_ms": self.ended_ms,
        }

    @classmethod
    def from_manifest(cls, entry: Mapping[str, Any]) -> Run:
        return cls(
            variant=entry["variant"],
            repeat=int(entry["repeat"]),
            index=int(entry["run"]),
            seed=int(entry["seed"]),
            fields=entry.get("fields") or {},
            session=entry.get("session") or {},
            confirmed=entry.get("confirmed") or {},
            call_number=int(entry.get("call_number") or 0),
            condition=entry.get("condition"),
            fresh_call=bool(entry.get("fresh_call")),
            status=entry.get("status") or "completed",
            error=entry.get("error"),
            started_ms=entry.get("started_ms"),
            ended_ms=entry.get("ended_ms"),
        )

    def __repr__(self) -> str:
        done = sum(1 for r in self.rows if r.get("status") == "completed")
        return (
            f"<Run {self.variant!r} repeat {self.repeat}: {self.status}, {done}/{len(self.rows)} "
            f"turns completed>"
        )


# The grid most recently started in this kernel, for ``Runs.last()`` (kept until the next one).
_LATEST: list[Runs] = []


class Runs(Pending):
    """The runs of one ``run_script``: awaitable (``await runs``), and filled in as they finish
    (read them in a later cell). ``runs.turns()`` is the table; ``runs.runs`` the runs."""

    _default_timeout: float | None = None
    _what = "the runs"

    def __init__(
        self,
        script: TurnSource,
        variants: Mapping[str, Mapping[str, Any]],
        repeat: int,
        *,
        delivery: Delivery | None = None,
        conditions: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(delivery)
        self.script = script
        self.variants = {k: dict(v) for k, v in variants.items()}
        self.repeat = repeat
        # name -> Condition (None: as recorded); the grid's axis beside the variants
        self.conditions: dict[str, Any] = dict(conditions or {})
        self.runs: list[Run] = []
        self.cancelled = False
        self.error: str | None = None  # the runner's own failure, if it had one
        self.wall_ms: float | None = None  # the whole grid, kernel clock
        self.progress: Any = None  # the ipywidgets progress box, while one shows
        self._stop: Callable[[], None] | None = None
        # the widget's model endpoint for judges (a live set; never saved: the key stays)
        self.endpoint: ModelEndpoint | None = None
        self.judged: pd.DataFrame | None = None  # every judge's rows so far (runs.judge)
        self.grid = uuid.uuid4().hex[:12]  # this set's id in the log's run.started records
        self.tracing: Any = None  # the live session's trace (judges' spans join it)

    # -- waiting ----------------------------------------------------------------------------

    def _track(self, task: asyncio.Task[Any], stop: Callable[[], None]) -> None:
        """Follow the task that plays these runs: they are done when it ends, and ``stop``
        (the runner's) is what ``cancel()`` calls. These become ``Runs.last()``."""
        self._stop = stop
        _LATEST[:] = [self]
        task.add_done_callback(lambda _task: self._finish())

    async def wait(self, timeout: float | None = None) -> Any:
        try:
            return await super().wait(timeout)
        except MidCellDeliveryError as exc:
            raise MidCellDeliveryError(
                f"{exc}\nThe runs go on between cells: `runs = Runs.last()` (from realtime_widget "
                "import Runs) in a later cell has them."
            ) from None
        except (asyncio.CancelledError, KeyboardInterrupt):
            self.cancel()  # an interrupted cell stops the runs; what finished stays
            raise

    def cancel(self) -> None:
        """Stop after the current turn is cut short; the finished runs stay."""
        if self._stop is not None:
            self._stop()

    @classmethod
    def last(cls) -> Runs | None:
        """The runs most recently started in this kernel (when ``await`` was interrupted)."""
        return _LATEST[0] if _LATEST else None

    def _result(self) -> Any:
        return self

    # -- tables -----------------------------------------------------------------------------

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every finished run's rows, as dicts (the table's columns)."""
        return [row for run in self.runs for row in run.rows]

    @property
    def variant_names(self) -> list[str]:
        return list(self.variants) or list(dict.fromkeys(r.variant for r in self.runs))

    def turns(self) -> pd.DataFrame:
        """One row per turn of every finished run (the columns of ``storage.COLUMNS``)."""
        return storage.frame(self.rows)

    def summary(self) -> pd.DataFrame:
        """Per variant: runs, turns, completion rate, p50/p95 of each latency, the agent's
        audio seconds (total and per turn) and the turns' own time."""
        return _judging().with_scores(summarize(self.rows, self.variant_names), self.judged)

    def timing(self) -> dict[str, float | None]:
        """The grid's wall time against the sum of its turns' own durations (seconds)."""
        return timing(self.rows, self.wall_ms)

    # -- pictures and sound -----------------------------------------------------------------

    def plot(self, what: str | None = None, *, columns: Sequence[str] = LATENCY_COLUMNS) -> Any:
        """The latency distributions per variant, one panel per latency (and the agent's audio
        seconds per turn), in one figure; ``plot("cut_off")``: the eagerness trade-off, cut-off
        rate against response latency, one point per variant x condition. Returns the
        matplotlib Figure."""
        title = f"{len(self.runs)} runs of a {len(self.script)}-turn script"
        if what is not None:
            return plot_tradeoff(self.rows, self.variant_names, what, title)
        return plot_runs(self.rows, self.variant_names, title, columns)

    def listen(
        self,
        turn: int = 1,
        *,
        repeat: int = 1,
        condition: str | None = None,
        pad_ms: float = 300.0,
    ) -> Players:
        """The recordings of one turn, one player per variant side by side (its ``repeat``,
        under ``condition``: by default the grid's first): what the service heard and what the
        user heard. Needs ``record=True`` on the widget."""
        name = self._condition(condition)
        if name is None and self.conditions:
            name = next(iter(self.conditions))
        return players(self.runs, self.variant_names, turn, repeat, pad_ms, name)

    def _condition(self, condition: str | None) -> str | None:
        """``condition`` checked against the grid's condition names (None: every condition)."""
        if condition is not None and condition not in self.conditions:
            allowed = list(self.conditions) or "none: these runs have no conditions"
            raise ValueError(f"condition must be one of {allowed}; got {condition!r}")
        return condition

    # -- files ------------------------------------------------------------------------------

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write one Parquet file per run, partitioned by variant (``variant=<name>/``, the
        name URL-quoted), with each run's event log (``_logs/``, JSONL) and a manifest
        (``_runs.json``: the script, the variants, each run's seed and session) beside them.
        ``pandas.read_parquet(dir)`` or DuckDB's ``read_parquet('dir/**/*.parquet',
        hive_partitioning=true)`` read the set; ``Runs.read_parquet(dir)`` gets all of it back."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        entries = []
        for run in self.runs:
            part = storage.partition(run.variant)
            stem = storage.run_stem(run.repeat, run.condition)
            (out / part).mkdir(exist_ok=True)
            storage.write_rows(out / part / f"{stem}.parquet", run.rows)
            entry = {**run.manifest(), "file": f"{part}/{stem}.parquet", "log": None}
            if run.events is not None:
                log = out / "_logs" / part / f"{stem}.jsonl"
                log.parent.mkdir(parents=True, exist_ok=True)
                run.events.to_jsonl(log)
                entry["log"] = f"_logs/{part}/{stem}.jsonl"
            entries.append(entry)
        storage.write_manifest(
            out,
            {
                "script": self.script.describe(),
                "fingerprint": self.script.fingerprint,
                "variants": self.variants,
                "conditions": {
                    name: c.to_dict() if hasattr(c, "to_dict") else c
                    for name, c in self.conditions.items()
                },
                "repeat": self.repeat,
                "cancelled": self.cancelled,
                "wall_ms": self.wall_ms,
                "runs": entries,
                "judged": _judging().write_judged(out, self.judged),
            },
        )
        return out

    @classmethod
    def read_parquet(cls, path: str | os.PathLike[str]) -> Runs:
        """A set written by ``to_parquet`` (rows, seeds, sessions, event logs), ready for
        ``turns()``, ``summary()``, ``plot()`` and ``expect()``."""
        root = Path(path)
        meta = storage.read_manifest(root)
        # the turns as described: their audio is not kept
        script = Script(
            SavedTurn(t["kind"], t.get("prompt") or "?", t.get("audio_ms")) for t in meta["script"]
        )
        runs = cls(
            script,
            meta.get("variants") or {},
            int(meta.get("repeat", 1)),
            conditions=conditions_from(meta.get("conditions")),
        )
        runs.cancelled = bool(meta.get("cancelled"))
        runs.wall_ms = meta.get("wall_ms")
        runs.judged = _judging().read_judged(root, meta.get("judged"))
        for entry in meta["runs"]:
            run = Run.from_manifest(entry)
            run.rows = [
                {"variant": run.variant, **r} for r in storage.read_rows(root / entry["file"])
            ]
            if entry.get("log") and (root / entry["log"]).is_file():
                run.events = EventLog.read_jsonl(root / entry["log"])
            runs.runs.append(run)
        runs._finish()
        return runs

    def to_otel(self, tracer_provider: Any = None, *, capture_content: bool | None = None) -> int:
        """Export these runs as one OpenTelemetry trace with their own times: ``run_script`` >
        ``experiment_run {variant}`` (variant, condition, repeat, seed) > each run's user turns,
        responses and tools from its log, and the judges' ``chat`` spans linked to the turns
        they scored (see docs/tracing.md). To ``tracer_provider`` or the global one; returns
        how many spans were made. Needs the ``otel`` extra."""
        from .._otel import export_runs

        return export_runs(self, tracer_provider, capture_content=capture_content)

    # -- checks -----------------------------------------------------------------------------

    async def judge(
        self,
        judge: Judge,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        client: ModelClient | None = None,
    ) -> pd.DataFrame:
        """Score every turn (``per="turn"``) or run (``per="run"``) with ``judge``: rows keyed
        by run and turn (join them to ``turns()``), kept in ``judged`` and saved by
        ``to_parquet``. The model calls go to ``base_url`` / ``api_key``, else the judge's own,
        else the widget's service and key (a live set)."""
        return await _judging().judge_runs(
            self, judge, base_url=base_url, api_key=api_key, client=client
        )

    def conversations(self) -> pd.DataFrame:
        """One row per run: turns, goal_met, ended_by (goal / max_turns / error / cancelled;
        ``script`` for a fixed script), error, and the transcript both ways."""
        return _judging().conversations(self)

    def expect(
        self,
        turn: int,
        *,
        variant: str | None = None,
        repeat: int | None = None,
        condition: str | None = None,
    ) -> Expectation:
        """Assertions over one turn's rows (every run, or one variant / repeat / condition):
        ``runs.expect(turn=2).contains("vegetarian").within_ms(1200).called("get_menu")``."""
        return Expectation(self, turn, variant, repeat, self._condition(condition))

    # -- display ----------------------------------------------------------------------------

    def _state(self) -> str:
        if self.cancelled:
            return "stopped"
        if self.error:
            return "failed"
        return "done" if self.done else "running"

    def __repr__(self) -> str:
        rows = self.rows
        done = sum(1 for r in rows if r["status"] == "completed")
        total = len(self.variant_names) * max(1, len(self.conditions)) * self.repeat
        return (
            f"<Runs {self._state()}: {len(self.runs)}/{total} runs, {done}/{len(rows)} turns "
            f"completed; variants {self.variant_names}>"
        )

    def _repr_html_(self) -> str:
        head = html.escape(repr(self))
        if not self.rows:
            return f"<div>{head}</div>"
        try:
            table = self.summary()[
                ["runs", "turns", "completion_rate", "to_first_output_ms_p50",
                 "to_first_output_ms_p95", "audio_s"]
            ].to_html(float_format=lambda v: f"{v:.3g}")  # fmt: skip
        except ImportError:
            table = ""
        return f"<div><div>{head}</div>{table}</div>"
