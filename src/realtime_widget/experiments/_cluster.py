"""A grid's runs on a Dask cluster: ``run_script(..., executor=client)``.

Each run is one task (``play_remote``): on a worker it opens a session of its own with the
grid's settings plus the run's variant, plays the run as the one-at-a-time grid does
(``parallel.play_fresh``: the same rows, and the same backoff on a 429), hangs up, and sends
back plain data (the run, its rows and its log's records); the kernel folds them into one
``Runs``. ``concurrency`` (when > 1) caps the runs in flight; otherwise the cluster's threads do.

The key: a worker uses its own ``INWORLD_API_KEY`` when the grid's key came from that variable
and the worker has it; otherwise the key travels only inside the pickled task, as a
:class:`Secret` (its repr is redacted). Task keys are ``realtime-run-<grid>-<run>-<attempt>``,
a task's repr names its run, and what a worker sends back is scrubbed of the key, errors too;
so the key is in no task key, repr, log line, dashboard page or exception.

A worker lost mid-run (its process died, the cluster lost it: Dask's ``KilledWorker``) plays
that run once more; lost twice, the run is recorded failed and the grid goes on. (The
scheduler's own ``distributed.scheduler.allowed-failures`` retries come first: set it to 0 for
exactly one retry.) Cancelling cancels the tasks; a run already playing on a worker plays to
its end there (Dask cannot stop a running task), and its result is dropped.

Why Dask rather than Ray: ``distributed`` is pure Python on pip (no native runtime to match
across machines), a ``LocalCluster`` is one line in a notebook and the same ``Client`` reaches
a real cluster (Kubernetes, HPC, Coiled), its dashboard is the one notebook users already
know, and it is what the PyData stack (pandas, xarray, Optuna's own Dask storage) scales
with. Ray would add a second object store and a heavier install for what is here I/O-bound
work: a run waits on the service, not on the CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._log import EventLog
from .._secrets import Scrubber
from ._parallel import ParallelPlayer, failed_rows, play_fresh
from ._runs import Run, Runs

if TYPE_CHECKING:
    from .._headless import SessionSettings
    from ._script import TurnSource

log = logging.getLogger("realtime_widget.experiments")

ATTEMPTS = 2  # a run whose worker is lost plays once more


@dataclass
class RemoteRun:
    """One run as a task: what a worker needs to play it (the key is a Secret inside)."""

    settings: SessionSettings = field(repr=False)
    source: Any = field(repr=False)
    variants: dict[str, dict[str, Any]] = field(repr=False)
    repeat: int
    conditions: dict[str, Any] = field(repr=False)
    run: Run = field(repr=False)
    timeout: float

    def __repr__(self) -> str:
        run = self.run
        return f"<RemoteRun run {run.index} ({run.variant!r}, repeat {run.repeat})>"


def play_remote(task: RemoteRun) -> dict[str, Any]:
    """On a worker: play the run on a session of its own, and send plain data back.

    What comes back is scrubbed of the key (a failure too: no exception leaves with the key in
    it).
    """
    scrub = Scrubber(lambda: [task.settings.key(), task.settings.api_key.reveal()])
    try:
        run = asyncio.run(_play(task))
    except BaseException as exc:  # a worker's own failure, in words without the key
        return {"error": scrub.text(f"{type(exc).__name__}: {exc}")}
    events, run.events, run.recording = run.events, None, None  # not sent: live objects
    records = [
        (r["direction"], r["event"], r["t_ms"], r["t_kernel_ms"], r["call_number"])
        for r in (events or ())
    ]
    run.rows = scrub.value(run.rows)
    run.error = scrub.text(run.error) if run.error else run.error
    return {"run": run, "records": records}


async def _play(task: RemoteRun) -> Run:
    runs = Runs(task.source, task.variants, task.repeat, conditions=task.conditions)
    await play_fresh(task.settings, runs, task.run, task.source, task.timeout)
    return task.run


class ClusterPlayer(ParallelPlayer):
    """Plays a grid's runs as tasks on a Dask cluster (``client``)."""

    def __init__(
        self,
        settings: SessionSettings,
        runs: Runs,
        source: TurnSource,
        concurrency: int,
        timeout: float,
        seed: int,
        client: Any,
    ) -> None:
        super().__init__(settings, runs, source, concurrency, timeout, seed)
        self.client = client
        self.grid = secrets.token_hex(4)  # task keys: realtime-run-<grid>-<run>-<attempt>
        self.futures: set[Any] = set()
        self.keys: list[str] = []

    async def play_all(self) -> None:
        in_flight = self.concurrency if self.concurrency > 1 else max(1, len(self.order))
        slots = asyncio.Semaphore(in_flight)
        tasks = [asyncio.ensure_future(self.one_remote(run, slots)) for run in self.order]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                self.client.cancel(list(self.futures))
            raise

    def remote(self, run: Run) -> RemoteRun:
        runs = self.runs
        return RemoteRun(
            self.settings, self.source, runs.variants, runs.repeat, dict(runs.conditions),
            Run(run.variant, run.repeat, run.index, run.seed, dict(run.fields),
                condition=run.condition),
            self.timeout,
        )  # fmt: skip

    async def one_remote(self, run: Run, slots: asyncio.Semaphore) -> None:
        async with slots:
            self.runs.runs.append(run)
            self.running += 1
            run.status = "running"
            self.show()
            try:
                for attempt in range(1, ATTEMPTS + 1):
                    key = f"realtime-run-{self.grid}-{run.index}-{attempt}"
                    self.keys.append(key)
                    future = self.client.submit(play_remote, self.remote(run), key=key, pure=False)
                    self.futures.add(future)
                    try:
                        result = await self.result(future)
                    except asyncio.CancelledError:
                        with contextlib.suppress(Exception):
                            self.client.cancel([future])
                        raise
                    except Exception as exc:  # the worker was lost (KilledWorker), or Dask's own
                        why = type(exc).__name__
                        if attempt < ATTEMPTS:
                            log.warning(
                                "run %d (%s, repeat %d): its worker was lost (%s); playing it "
                                "again",
                                run.index, run.variant, run.repeat, why,
                            )  # fmt: skip
                            self.retries += 1
                            continue
                        failed_rows(run, self.runs.script, f"its worker was lost twice ({why})")
                        break
                    finally:
                        self.futures.discard(future)
                    self.take(run, result)
                    break
            except asyncio.CancelledError:
                run.status = "cancelled"
                raise
            finally:
                self.running -= 1
                self.show()

    async def result(self, future: Any) -> Mapping[str, Any]:
        """A task's result, awaited on this loop (a synchronous client's future included)."""
        if getattr(self.client, "asynchronous", False):
            return await future
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle() -> None:
            if not done.done():
                done.set_result(None)

        def wake(_f: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                loop.call_soon_threadsafe(settle)

        future.add_done_callback(wake)
        await done
        return await loop.run_in_executor(None, future.result)

    def take(self, run: Run, result: Mapping[str, Any]) -> None:
        """A worker's result into ``run`` (the one in the grid's list)."""
        if "error" in result:
            failed_rows(run, self.runs.script, f"the worker failed: {result['error']}")
            return
        back: Run = result["run"]
        for name in ("status", "error", "rows", "spans", "seq", "session", "confirmed",
                     "call_number", "fresh_call", "started_ms", "ended_ms"):  # fmt: skip
            setattr(run, name, getattr(back, name))
        events = EventLog()
        events._extend(result["records"])
        run.events = events
