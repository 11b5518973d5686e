"""A grid's runs at once: ``run_script(..., concurrency=N)`` on a :class:`RealtimeSession`.

Each run plays on a session of its own (``RealtimeSession.settings().open(**variant)``: the
grid's service, key, auth, fields and tools, plus the run's variant), with up to N calls open at
a time. A run plays exactly as one of the one-at-a-time grid does (the same ``Runner.run_one``,
so the same rows, seeds and Parquet set); its index and seed are those the grid's order gives
it, whichever order the runs finish in.

A service that refuses a new session for a concurrency or rate limit (HTTP 429 at the
handshake, or an ``error`` event with a rate-limit code during the run) is met with a backoff
(doubling from ``FIRST_BACKOFF_S`` to ``MAX_BACKOFF_S``, with jitter) and the run is played
again from its start, logged (``realtime_widget.experiments``) and counted in the progress;
only a service that keeps refusing for ``RATE_LIMIT_WAIT_S`` fails the run. Cancelling the
runs (their Stop button, ``runs.cancel()``, an interrupted cell or a cancelled task) hangs up
every call. ``play_fresh`` is also what a cluster's worker runs (``cluster.py``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._provider import ProviderError
from ._progress import RunsProgress
from ._rows import turn_rows
from ._runner import cancel_grid, run_seed
from ._runs import Run, Runs

if TYPE_CHECKING:
    from .._core import SessionCore
    from .._headless import SessionSettings
    from .._log import EventLog
    from ._script import TurnSource

log = logging.getLogger("realtime_widget.experiments")

FIRST_BACKOFF_S = 0.25
MAX_BACKOFF_S = 8.0
RATE_LIMIT_WAIT_S = 300.0  # how long a run waits for a service that keeps refusing
# the error codes a service sends for a concurrency or rate limit (Inworld's, OpenAI's, ours)
RATE_LIMIT_CODES = frozenset(
    {
        "rate_limit_exceeded",
        "rate_limited",
        "too_many_requests",
        "too_many_calls",
        "too_many_sessions",
        "concurrency_limit_exceeded",
        "session_limit_exceeded",
        "resource_exhausted",
    }
)


def check_apart(session: SessionCore, executor: Any) -> None:
    """Refuse runs at once (or on a cluster) where they cannot be.

    Each run needs a session of its own, which only a session the kernel holds can make.
    """
    from .._headless import RealtimeSession

    if not isinstance(session, RealtimeSession):
        raise TypeError(
            f"run_script(concurrency>1) and run_script(executor=...) play each run on a "
            f"session of its own, held by the kernel; a {type(session).__name__}'s page holds "
            "one call. Make a RealtimeSession with the same arguments (no page) for runs at "
            "once, or use concurrency=1 here."
        )
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError(
            f"executor must be a dask.distributed Client (Client(LocalCluster(...)) or a "
            f"cluster's); got {type(executor).__name__}"
        )


def player(
    session: SessionCore,
    runs: Runs,
    source: TurnSource,
    concurrency: int,
    executor: Any,
    *,
    timeout: float,
    seed: int,
) -> ParallelPlayer:
    """The player of a grid's runs apart: on this machine, or on ``executor``'s cluster."""
    settings = session.settings()  # type: ignore[attr-defined]
    if executor is not None:
        from ._cluster import ClusterPlayer

        return ClusterPlayer(settings, runs, source, concurrency, timeout, seed, executor)
    return ParallelPlayer(settings, runs, source, concurrency, timeout, seed)


def grid_order(runs: Runs, seed: int) -> list[Run]:
    """Every run of the grid, in the one-at-a-time grid's order, with its index and seed."""
    conditions: list[str | None] = list(runs.conditions) or [None]
    order = [
        (v, c, r) for r in range(1, runs.repeat + 1) for v in runs.variants for c in conditions
    ]
    return [
        Run(v, r, i, run_seed(seed, v, r), dict(runs.variants[v]), condition=c)
        for i, (v, c, r) in enumerate(order, 1)
    ]


def rate_limit_code(event: Mapping[str, Any]) -> str | None:
    """The rate-limit code of a server ``error`` event, or None when it is another error."""
    err = event.get("error")
    err = err if isinstance(err, Mapping) else {}
    for value in (err.get("code"), err.get("type"), event.get("code")):
        if isinstance(value, str) and (value in RATE_LIMIT_CODES or "rate_limit" in value):
            return value
    return None


def limited_during(events: EventLog, since: int = 0) -> str | None:
    """The first rate-limit ``error`` the service sent from record ``since`` on, in words."""
    for rec in events.of_type("error", direction="server"):
        if rec["seq"] >= since:
            code = rate_limit_code(rec["event"])
            if code is not None:
                return f"an error event with code {code!r}"
    return None


def reset(run: Run) -> None:
    """A run played again from its start (after a rate limit)."""
    run.status, run.error, run.rows, run.spans = "pending", None, [], []
    run.events, run.recording, run.seq = None, None, (0, 0)


def failed_rows(run: Run, script: Any, error: str) -> None:
    """A run whose call never started: one row per turn of a script, with the error.

    As the one-at-a-time grid records a run whose variant could not be applied.
    """
    run.status, run.error = "failed", error
    turns = list(getattr(script, "turns", ()) or ())
    run.rows = turn_rows([], [(0, 0, error)] * len(turns), turns, run.meta) if turns else []


async def play_fresh(
    settings: SessionSettings,
    runs: Runs,
    run: Run,
    source: TurnSource,
    timeout: float,
    *,
    wait_s: float = RATE_LIMIT_WAIT_S,
    on_retry: Callable[[Run, int, float, str], None] | None = None,
) -> None:
    """Play ``run`` of ``runs`` on a new session (``settings`` plus its fields).

    The call is hung up when the run ends (or is cancelled); a rate limit waits and plays it
    again.
    """
    from ._feature import experiments_of

    delay = FIRST_BACKOFF_S
    deadline = time.monotonic() + wait_s
    attempt = 0
    while True:
        attempt += 1
        limited: str | None = None
        child = settings.open(**run.fields)
        try:
            try:
                await child.connect()
            except ProviderError as exc:
                if exc.status != 429:
                    failed_rows(run, runs.script, f"the call did not start: {exc}")
                    return
                limited = "HTTP 429"
            else:
                reset(run)
                await experiments_of(child).play_one(runs, run, source, timeout)
                run.fresh_call = True
                if run.status == "completed":
                    return
                limited = limited_during(child.events)
                if limited is None:
                    return  # a failure of its own: its rows say what
        finally:
            await child.aclose()  # the call is hung up, also when the run was cancelled
        if time.monotonic() + delay > deadline:
            failed_rows(
                run,
                runs.script,
                f"the service refused a new session for {wait_s:g} s ({limited}: a concurrency "
                "or rate limit)",
            )
            return
        wait = delay * random.uniform(0.75, 1.25)
        log.warning(
            "run %d (%s, repeat %d): the service refused the session (%s, a concurrency or "
            "rate limit); playing it again in %.2f s (attempt %d)",
            run.index,
            run.variant,
            run.repeat,
            limited,
            wait,
            attempt + 1,
        )
        if on_retry is not None:
            on_retry(run, attempt, wait, limited)
        await asyncio.sleep(wait)
        delay = min(delay * 2, MAX_BACKOFF_S)


class ParallelPlayer:
    """Plays a grid's runs, up to ``concurrency`` at once, each on a session of its own."""

    def __init__(
        self,
        settings: SessionSettings,
        runs: Runs,
        source: TurnSource,
        concurrency: int,
        timeout: float,
        seed: int,
    ) -> None:
        self.settings = settings
        self.runs = runs
        self.source = source
        self.concurrency = concurrency
        self.timeout = timeout
        self.order = grid_order(runs, seed)
        # a barge-in is measured from the recording: record both tracks for such scripts
        ahead = getattr(runs.script, "turns", ())
        if any(getattr(t, "interrupts", False) for t in ahead):
            settings.record = True
        self.task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.progress: RunsProgress | None = None
        self.running = 0
        self.retries = 0

    def cancel(self) -> None:
        cancel_grid(self.runs, self.task, self.loop)

    def start(self, loop: asyncio.AbstractEventLoop, progress: bool) -> asyncio.Task[None]:
        if progress:
            self.progress = RunsProgress.shown(len(self.order), self.cancel)
            if self.progress is not None and self.progress.box is not None:
                self.runs.progress = self.progress.box
        self.loop = loop
        self.task = loop.create_task(self.main())
        return self.task

    def show(self) -> None:
        if self.progress is not None:
            runs = self.runs.runs
            self.progress.show(
                done=sum(r.status == "completed" for r in runs),
                running=self.running,
                failed=sum(r.status in ("failed", "cancelled") for r in runs),
                retries=self.retries,
            )

    def retried(self, _run: Run, _attempt: int, _wait: float, _why: str) -> None:
        self.retries += 1
        self.show()

    async def main(self) -> None:
        runs = self.runs
        t0 = time.perf_counter()
        try:
            await self.play_all()
        except asyncio.CancelledError:
            runs.cancelled = True
        except Exception as exc:  # the player's own bug
            runs.error = f"{type(exc).__name__}: {exc}"
        finally:
            runs.runs.sort(key=lambda r: r.index)
            runs.wall_ms = (time.perf_counter() - t0) * 1000.0
            runs._finish()
            if self.progress is not None:
                self.show()
                self.progress.close(repr(runs))

    async def play_all(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        tasks = [asyncio.ensure_future(self.one(run, slots)) for run in self.order]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # every call hung up
            raise

    async def one(self, run: Run, slots: asyncio.Semaphore) -> None:
        async with slots:
            self.runs.runs.append(run)
            self.running += 1
            run.status = "running"
            self.show()
            try:
                await play_fresh(
                    self.settings, self.runs, run, self.source, self.timeout,
                    on_retry=self.retried,
                )  # fmt: skip
            except asyncio.CancelledError:
                run.status = "cancelled"
                raise
            finally:
                self.running -= 1
                self.show()
