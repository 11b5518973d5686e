"""The results: each :class:`Run` (one pass of the script with one variant) and :class:`Runs`.

:class:`Runs` is the handle of one ``run_script``: awaitable, filled in as the runs finish, and
the way in to their table, statistics, figure, recordings, files and assertions.
"""

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
    """The judged scores' storage (the evaluate package).

    Imported when a set is judged, summarized, saved or read, never with the core.
    """
    from ..evaluate import _judging

    return _judging


if TYPE_CHECKING:
    import pandas as pd

    from .._recording import Recording
    from ..evaluate._judge import Judge
    from ..evaluate._models import ModelClient, ModelEndpoint


@dataclass
class Run:
    """One pass of the script with one variant: its seed, the session it ran with, its rows.

    The runner makes one per (variant, condition, repeat) and fills it in as the run plays;
    ``runs.runs`` lists them, and ``Runs.read_parquet`` rebuilds them from a saved set (with
    their logs, without their recordings).

    Args:
        variant: The variant's name (a key of ``run_script``'s ``variants``).
        repeat: Which repeat this is, from 1.
        index: The run's number in the grid, from 1 (the table's ``run`` column).
        seed: The run's seed: a CRC of the grid's seed, the variant and the repeat, sent as
            ``rtw_seed`` in each typed turn's ``response.create`` metadata.
        fields: The variant's session fields, as given.
        session: The session configuration as sent (``session_config()``).
        confirmed: What the service's ``session.updated`` said.
        call_number: The call the run played on (the log's ``call_number``).
        condition: The name of the condition its spoken turns played under, if the grid has
            conditions.
        fresh_call: Whether the run hung up and connected anew before playing.
        status: ``"pending"``, ``"running"``, ``"completed"``, ``"failed"`` or
            ``"cancelled"``.
        error: Why the run failed, in words.
        started_ms: When the run started, on the kernel's clock (epoch ms).
        ended_ms: When it ended, likewise.
        rows: Its turns' rows, as dicts with the table's columns.
        events: Its slice of the event log.
        recording: The call's recording over the run, when the session records.
        seq: The run's range of ``seq`` numbers in the session's log.
        spans: Each turn's range of ``seq`` numbers, with the runner's error if it had one.

    Example:
        >>> run = runs.runs[0]
        >>> run.variant, run.repeat, run.status
        ('fast', 1, 'completed')
        >>> run.events.turns()
    """

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
        """What ``Runs.to_parquet`` keeps of the run in ``_runs.json``: all but its rows and log.

        Returns:
            A JSON-ready dict: the run's ``meta`` plus ``fields``, ``session``, ``confirmed``,
            ``fresh_call``, ``status``, ``error``, ``started_ms`` and ``ended_ms``.

        Example:
            >>> Run.from_manifest(run.manifest()).seed == run.seed
            True
        """
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
        """A run rebuilt from its ``manifest()`` entry (its rows and log are added apart).

        Args:
            entry: One run's entry of a saved set's ``_runs.json``.

        Returns:
            The run, without rows, log or recording.

        Example:
            >>> import json
            >>> meta = json.loads(open("runs/_runs.json").read())
            >>> Run.from_manifest(meta["runs"][0])
        """
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
    """The runs of one ``run_script``: awaitable, and filled in as they finish.

    ``run_script`` returns it at once: ``await runs`` waits in the same cell, or read it in a
    later cell (the runner also moves on between cells). ``runs.turns()`` is the table,
    ``runs.summary()`` the statistics per variant, ``runs.runs`` the runs themselves. A set
    saved with ``to_parquet`` comes back with ``Runs.read_parquet`` and answers the same
    questions, without a session.

    Attributes worth knowing: ``script``, ``variants``, ``repeat``, ``conditions``, ``runs``
    (each :class:`Run`), ``cancelled``, ``error`` (the runner's own failure, if it had one),
    ``wall_ms`` (the whole grid, kernel clock) and ``judged`` (every judge's rows so far).

    Args:
        script: What the runs play: a ``Script``, or any ``TurnSource`` (a ``Caller``'s).
        variants: The session variants by name, each the session fields it sets.
        repeat: How many times each variant (under each condition) plays the script.
        delivery: How the session gets the page's messages while a cell awaits (``None`` for
            a set read back from files).
        conditions: The grid's other axis: condition name to ``Condition`` (or ``None`` for
            the audio as it is).

    Example:
        >>> runs = await w.run_script(
        ...     Script(["Hello!", "Anything vegetarian?"]),
        ...     variants={"Clive": {"voice": "Clive"}, "fast": {"speed": 1.3}},
        ...     repeat=3,
        ... )
        >>> runs.turns()      # one row per turn
        >>> runs.summary()    # per variant: completion, latency p50/p95, audio
        >>> runs.to_parquet("runs/")
    """

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
        """Follow the task that plays these runs; these become ``Runs.last()``.

        They are done when the task ends, and ``stop`` (the runner's) is what ``cancel()``
        calls.
        """
        self._stop = stop
        _LATEST[:] = [self]
        task.add_done_callback(lambda _task: self._finish())

    async def wait(self, timeout: float | None = None) -> Any:
        """Wait until every run has finished; ``await runs`` is the same.

        An interrupted wait (a cell stopped with the interrupt button) cancels the runs; what
        finished stays.

        Args:
            timeout: Seconds to wait at most; ``None`` waits as long as the runs take.

        Returns:
            These runs.

        Raises:
            MidCellDeliveryError: When the host cannot deliver the page's messages while a cell
                awaits; the runs go on between cells, and ``Runs.last()`` in a later cell has
                them.
            TimeoutError: When ``timeout`` passes first.

        Example:
            >>> runs = w.run_script(script, repeat=2)
            >>> await runs.wait(timeout=600)
        """
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
        """Stop after the current turn is cut short; the finished runs stay.

        The cut turn is a ``cancelled`` row. The progress bar's Stop button and an interrupted
        ``await`` do the same; with many calls at once, every call hangs up.

        Example:
            >>> runs = w.run_script(script, repeat=10)
            >>> runs.cancel()
        """
        if self._stop is not None:
            self._stop()

    @classmethod
    def last(cls) -> Runs | None:
        """The runs most recently started in this kernel.

        For when the handle was lost: an interrupted ``await``, or a host that cannot deliver
        messages during a cell. The latest grid is kept until the next one starts.

        Returns:
            The latest ``Runs``, or ``None`` when none was started.

        Example:
            >>> from realtime_widget import Runs
            >>> runs = Runs.last()
        """
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
        """The variants' names in grid order (from the runs themselves when none were given)."""
        return list(self.variants) or list(dict.fromkeys(r.variant for r in self.runs))

    def turns(self) -> pd.DataFrame:
        """One row per turn of every finished run, with typed columns.

        The columns are those of ``realtime_widget.experiments.COLUMNS``, in order: who played
        it (``variant``, ``condition``, ``repeat``, ``turn``, ``run``, ``seed``), what it was
        (``kind``, ``prompt``), what came back (``status``, ``error``, ``text``,
        ``transcript``, ``heard``, tools, tokens), the four latencies of
        ``EventLog.turns()`` of the turn's first response, and each turn kind's own figures.

        Returns:
            A pandas DataFrame.

        Raises:
            ImportError: When pandas is not installed.

        Example:
            >>> t = runs.turns()
            >>> t.groupby("variant").to_first_output_ms.median()
        """
        return storage.frame(self.rows)

    def summary(self) -> pd.DataFrame:
        """Statistics per variant (per variant and condition when the grid has conditions).

        Columns: ``runs``, ``turns``, ``completed``, ``completion_rate``, ``<latency>_p50``
        and ``<latency>_p95`` for each of ``LATENCY_COLUMNS``, the agent's audio seconds
        (``audio_s``, ``audio_s_per_turn``) and the turns' own time (``turn_s``). With
        conditions or turn-taking turns it gains ``cut_off_rate``, ``end_of_turn_ms_p50``,
        ``false_turns_per_min``, ``stop_ms_p50``, ``stop_ms_p95`` and ``heard_ms_p50``; after
        ``judge()``, each judge's ``<name>_score`` and ``<name>_pass_rate``.

        Returns:
            A pandas DataFrame indexed by ``variant`` (or by ``variant`` and ``condition``).

        Raises:
            ImportError: When pandas is not installed.

        Example:
            >>> runs.summary()[["completion_rate", "to_first_output_ms_p50"]]
        """
        return _judging().with_scores(summarize(self.rows, self.variant_names), self.judged)

    def timing(self) -> dict[str, float | None]:
        """The grid's wall time against the sum of its turns' own durations (seconds).

        A ratio near 1 means the runner added little beyond the turns themselves.

        Returns:
            ``{"wall_s": ..., "turns_s": ..., "ratio": ...}``; ``wall_s`` and ``ratio`` are
            ``None`` while the grid's wall time is unknown.

        Example:
            >>> runs.timing()
            {'wall_s': 71.3, 'turns_s': 70.4, 'ratio': 1.0127...}
        """
        return timing(self.rows, self.wall_ms)

    # -- pictures and sound -----------------------------------------------------------------

    def plot(self, what: str | None = None, *, columns: Sequence[str] = LATENCY_COLUMNS) -> Any:
        """Draw the latency distributions per variant, or a turn-taking trade-off.

        By default: one panel per latency (and the agent's audio per turn), a box per variant,
        each turn a point coloured by turn. ``plot("cut_off")`` draws the eagerness trade-off
        instead: the cut-off rate of the pauses turns against the median
        ``to_first_output_ms`` of the spoken turns, one point per variant x condition. Needs
        matplotlib (the ``plot`` extra).

        Args:
            what: ``None`` for the latency panels, or ``"cut_off"`` for the trade-off.
            columns: The latency columns to draw (panels with no value are left out).

        Returns:
            The matplotlib Figure.

        Raises:
            ValueError: When ``what`` is neither ``None`` nor ``"cut_off"``.
            ImportError: When matplotlib is not installed.

        Example:
            >>> runs.plot()
            >>> runs.plot(columns=["to_first_output_ms"])
            >>> runs.plot("cut_off")
        """
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
        """The recordings of one turn, one player per variant side by side.

        Each variant's player holds what the service heard and what the user heard in that
        turn, with its reply's text, status and latency; a variant with no clip says why.
        Needs ``record=True`` on the widget or session.

        Args:
            turn: The turn, from 1.
            repeat: Which repeat of each variant, from 1.
            condition: The condition to hear, by name; ``None`` picks the grid's first.
            pad_ms: Extra audio kept before and after the turn, in ms.

        Returns:
            The players; a notebook cell shows them, and ``.clips`` maps each variant to its
            ``Recording`` (or ``None``).

        Raises:
            ValueError: When ``condition`` is not one of the grid's.

        Example:
            >>> runs.listen(turn=2)
            >>> runs.listen(turn=2, repeat=3, condition="cafe").clips["fast"].to_wav("t2.wav")
        """
        name = self._condition(condition)
        if name is None and self.conditions:
            name = next(iter(self.conditions))
        return players(self.runs, self.variant_names, turn, repeat, pad_ms, name)

    def _condition(self, condition: str | None) -> str | None:
        """``condition`` checked against the grid's condition names.

        None stands for every condition.
        """
        if condition is not None and condition not in self.conditions:
            allowed = list(self.conditions) or "none: these runs have no conditions"
            raise ValueError(f"condition must be one of {allowed}; got {condition!r}")
        return condition

    # -- files ------------------------------------------------------------------------------

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write the set as Parquet: one file per run, partitioned by variant.

        Files go under ``variant=<name>/`` (the name URL-quoted), as ``repeat-001.parquet``
        (``repeat-001-<condition>.parquet`` in a grid with conditions), with each run's event
        log beside them (``_logs/``, JSONL), the judged rows (``_judged.parquet``) and a
        manifest (``_runs.json``: the script, the variants, the conditions, each run's seed
        and session). ``pandas.read_parquet(dir)`` or DuckDB's
        ``read_parquet('dir/**/*.parquet', hive_partitioning=true)`` read the set;
        ``Runs.read_parquet(dir)`` gets all of it back. Needs pyarrow (the ``parquet`` extra).

        Args:
            path: The folder to write into (made if missing).

        Returns:
            The folder.

        Example:
            >>> runs.to_parquet("runs/")
            PosixPath('runs')
            >>> pd.read_parquet("runs/")
        """
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
        """Load a set written by ``to_parquet``: rows, seeds, sessions, event logs, judgements.

        The result is ready for ``turns()``, ``summary()``, ``plot()``, ``conversations()``
        and ``expect()`` (in pytest, say). Its script holds ``SavedTurn`` s: what each turn
        said, not its audio, so it cannot be played again; recordings are not saved.

        Args:
            path: The folder ``to_parquet`` wrote.

        Returns:
            The runs, already finished.

        Example:
            >>> runs = Runs.read_parquet("runs/")
            >>> runs.expect(turn=2).contains("vegetarian").within_ms(1200)
        """
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
        """Export these runs as one OpenTelemetry trace, with their own times.

        The trace is ``run_script`` > ``experiment_run {variant}`` (variant, condition,
        repeat, seed) > each run's user turns, responses and tools from its log, and the
        judges' ``chat`` spans linked to the turns they scored (see docs/tracing.md). Works
        on a live set and on one read back. Needs the ``otel`` extra.

        Args:
            tracer_provider: The OpenTelemetry ``TracerProvider`` to export to; ``None`` uses the
                global one.
            capture_content: Whether spans carry message text and transcripts. ``None`` follows
                ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``; off by default.

        Returns:
            How many spans were made.

        Example:
            >>> Runs.read_parquet("runs/").to_otel(provider)
            120
        """
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
        """Score every turn (``per="turn"``) or run (``per="run"``) with a judge.

        The rows are keyed by run and turn (join them to ``turns()``), kept in ``judged``
        (judging again with the same judge replaces its rows) and saved by ``to_parquet``;
        ``summary()`` gains the judge's score and pass rate. Answers are cached, so judging
        the same runs twice sends nothing. Works on a live set and on one read back. Needs the
        ``evaluate`` extra.

        Args:
            judge: The ``Judge`` to score with.
            base_url: The OpenAI-compatible service to ask; else the judge's own, else the
                widget's service (a live set), else ``INWORLD_BASE_URL``.
            api_key: The key for ``base_url``; a URL always needs its own key (the widget's key
                goes only to the widget's service).
            client: A model client to use as it is, in place of one made from the URL and key.

        Returns:
            One row per judgement: ``variant``, ``repeat``, ``condition``, ``run``, ``turn``
            (NA for ``per="run"``), ``judge``, ``per``, ``score``, ``passed``, ``reason``,
            ``model``, ``cached``, ``latency_ms`` and ``error``.

        Raises:
            TypeError: When ``judge`` is not a ``Judge``.

        Example:
            >>> judge = Judge("The agent offers a vegetarian option.", name="vegetarian")
            >>> scores = await runs.judge(judge)
            >>> runs.turns().merge(scores, on=["run", "turn"], suffixes=("", "_judged"))
        """
        return await _judging().judge_runs(
            self, judge, base_url=base_url, api_key=api_key, client=client
        )

    def conversations(self) -> pd.DataFrame:
        """One row per run: how the conversation went, and its transcript both ways.

        Columns: ``variant``, ``repeat``, ``condition``, ``run``, ``turns``, ``goal_met``,
        ``ended_by`` (``goal``, ``max_turns``, ``error``, ``cancelled``; ``script`` for a
        fixed script), ``error`` and ``transcript`` (``caller: ...`` / ``agent: ...``, one
        line each, with what the service heard when it differs). Works on a set read back
        with ``read_parquet`` too (from its logs).

        Returns:
            A pandas DataFrame, one row per run.

        Example:
            >>> runs = await w.run_script(caller, repeat=3)
            >>> runs.conversations()[["goal_met", "ended_by"]]
        """
        return _judging().conversations(self)

    def expect(
        self,
        turn: int,
        *,
        variant: str | None = None,
        repeat: int | None = None,
        condition: str | None = None,
    ) -> Expectation:
        """Assertions over one turn's rows, in every run or in some of them.

        The checks (``contains``, ``within_ms``, ``called``, ``completed``, ``judged``) chain
        and raise a plain ``AssertionError`` listing each failing run, so they work in pytest
        over a set read back with ``read_parquet``.

        Args:
            turn: The turn, from 1.
            variant: Only this variant's runs; ``None`` for all.
            repeat: Only this repeat; ``None`` for all.
            condition: Only the runs under this condition (by name); ``None`` for all.

        Returns:
            The expectation, to chain checks on.

        Raises:
            ValueError: When ``condition`` is not one of the grid's.

        Example:
            >>> runs.expect(turn=2).contains("vegetarian").within_ms(1200).called("get_menu")
            >>> runs.expect(turn=1, variant="fast").completed()
        """
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
