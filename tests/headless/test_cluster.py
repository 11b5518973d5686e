"""A grid's runs on a Dask cluster (``run_script(executor=client)``) against the emulator: the
rows come back as one Runs, the key is in no task key, repr or log line, and a worker lost
mid-run plays its run once more, then fails it while the grid goes on."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import pytest
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import SchedulerPlugin

from realtime_widget import Script
from realtime_widget.experiments import TextTurn, TurnContext
from realtime_widget.experiments._cluster import RemoteRun
from tests.conftest import SENTINEL_KEY
from tests.helpers.headless import MakeEmulator, Open

SCRIPT = Script(["Hello there.", "What is on the menu?"])
SAME = ["variant", "condition", "repeat", "run", "seed", "turn", "kind", "prompt", "status", "text"]


class Seen(SchedulerPlugin):
    """Every task key the scheduler handled, and each task's repr."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.reprs: list[str] = []

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        self.keys.append(str(key))
        ts = self.scheduler.tasks.get(key) if hasattr(self, "scheduler") else None
        if ts is not None:
            self.reprs.append(repr(ts) + repr(getattr(ts, "run_spec", None)))

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler


@pytest.fixture(scope="module")
def threads() -> Iterator[tuple[LocalCluster, Client]]:
    """Two workers in this process (tcp on 127.0.0.1, the dashboard on a free loopback port)."""
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=4, processes=False, protocol="tcp://",
        host="127.0.0.1", dashboard_address="127.0.0.1:0",
    )  # fmt: skip
    client = Client(cluster)
    yield cluster, client
    client.close()
    cluster.close()


async def test_runs_on_a_cluster_come_back_as_one_runs_without_the_key(
    session: Open, emu_with: MakeEmulator, threads: tuple[LocalCluster, Client],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    cluster, client = threads
    seen = Seen()
    cluster.scheduler.add_plugin(seen)
    emu = emu_with(api_key=SENTINEL_KEY)
    s = session(emu, mic=False, api_key=SENTINEL_KEY)
    await s.connect()
    variants = {"fast": {"speed": 1.3}, "Ashley": {"voice": "Ashley"}}
    one = await s.run_script(SCRIPT, variants, repeat=2, seed=5, progress=False)
    with caplog.at_level(logging.DEBUG):
        many = await s.run_script(
            SCRIPT, variants, repeat=2, seed=5, progress=False, executor=client
        )
    assert [r.status for r in many.runs] == ["completed"] * 4
    assert one.turns()[SAME].equals(many.turns()[SAME])
    assert all(r.events is not None and len(r.events) > 0 for r in many.runs)
    assert [r.confirmed["audio"]["output"]["voice"] for r in many.runs] == ["Clive", "Ashley"] * 2
    assert seen.keys and all(k.startswith("realtime-run-") for k in seen.keys if "run" in k)
    task = RemoteRun(s.settings(), SCRIPT, {}, 1, {}, many.runs[0], 60.0)
    texts = [*seen.keys, *seen.reprs, caplog.text, repr(task), repr(many), repr(s.settings())]
    assert not any(SENTINEL_KEY in t for t in texts)


class DiesOnAWorker(TextTurn):
    """Kills its worker's process: once for the variant "once" (a marker file remembers),
    every time for "always" (each variant its own marker); never for "fine"."""

    def __init__(self, text: str, marker: str) -> None:
        super().__init__(text)
        self.marker = marker

    async def play(self, ctx: TurnContext) -> None:
        marker = Path(f"{self.marker}-{ctx.run.variant}")
        dies = ctx.run.variant == "always" or (ctx.run.variant == "once" and not marker.exists())
        if dies:
            marker.write_text("died")
            os._exit(1)
        await super().play(ctx)


async def test_a_lost_worker_plays_its_run_once_more_then_fails_it(
    session: Open, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the scheduler's own retries off: a lost worker shows at once, and the grid retries once
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL,
        )  # fmt: skip
    client = Client(cluster)
    try:
        s = session(mic=False)
        await s.connect()
        script = Script([DiesOnAWorker("Hello?", str(tmp_path / "died"))])
        with caplog.at_level(logging.WARNING, logger="realtime_widget.experiments"):
            runs = await s.run_script(
                script, {"once": {}, "fine": {}}, progress=False, executor=client, timeout=30
            )
            # alone in its grid: a run on a dying worker takes the tasks queued there with it
            lost = await s.run_script(script, {"always": {}}, progress=False, executor=client)
        by = {r.variant: r for r in [*runs.runs, *lost.runs]}
        assert by["once"].status == "completed" and by["once"].rows[0]["status"] == "completed"
        assert by["fine"].status == "completed"
        assert by["always"].status == "failed" and "worker was lost twice" in by["always"].error
        assert by["always"].rows[0]["status"] == "error"  # as a run that could not start
        assert runs.done and lost.done and not lost.cancelled
        assert sum("its worker was lost" in r.getMessage() for r in caplog.records) == 2
    finally:
        client.close()
        cluster.close()
