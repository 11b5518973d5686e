"""A grid's runs at once, and on a Dask cluster, against the emulator (kernel-held calls).

1. One run of a 2-turn typed script on a session of its own (``concurrency=2`` with one run:
   the connect is part of it, as it is for each run at once), then 8 such runs at
   ``concurrency=8``: the ratio of the wall times (target <= 1.5x: the calls wait on the
   service, not on the CPU). The kernel's CPU time per run (process time, the emulator's
   thread included, so an upper bound) is printed beside it.
2. 16 runs on a 2-worker ``LocalCluster`` (processes, 4 threads each, tcp on 127.0.0.1),
   against the same grid at ``concurrency=8`` in the kernel.
3. ``--limit``: what limits concurrency on this machine: 8, 16, 32 and 64 runs at once, the
   wall time against one run's and the CPU per run.

    scripts/in-netns .venv/bin/python benchmarks/scale.py [--limit] [--no-dask]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from typing import Any

from realtime_widget import RealtimeSession, Script
from realtime_widget.emulator import Emulator
from tests.headless.conftest import FAST

SCRIPT = Script(["Hello there.", "What is on the menu today?"])


def variants(n: int) -> dict[str, dict[str, Any]]:
    return {f"v{i}": {} for i in range(n)}


async def timed(s: RealtimeSession, n: int, **kw: Any) -> tuple[float, float, int]:
    """(wall s, process CPU s, completed runs) of n runs."""
    t0, c0 = time.perf_counter(), time.process_time()
    runs = await s.run_script(SCRIPT, variants(n), progress=False, **kw)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, sum(r.status == "completed" for r in runs.runs)


async def main(args: argparse.Namespace) -> None:
    with Emulator(**FAST, max_calls=256) as emu:
        async with RealtimeSession(base_url=emu.base_url, api_key=emu.api_key, mic=False) as s:
            await timed(s, 2, concurrency=2)  # warm: the first calls pay imports
            ones = [await timed(s, 1, concurrency=2) for _ in range(3)]
            one = sorted(w for w, _, _ in ones)[1]
            eights = [await timed(s, 8, concurrency=8) for _ in range(3)]
            eight = sorted(w for w, _, _ in eights)[1]
            cpu8 = sorted(c for _, c, _ in eights)[1] / 8
            ok = min(k for _, _, k in eights)
            print(f"one run on its own session: {one * 1000:.0f} ms (median of 3)")
            print(
                f"8 runs at concurrency=8: {eight * 1000:.0f} ms, {eight / one:.2f}x one run's "
                f"(target <= 1.5x); {ok}/8 completed; kernel CPU per run {cpu8 * 1000:.0f} ms"
            )
            if args.limit:
                for n in (16, 32, 64):
                    wall, cpu, k = await timed(s, n, concurrency=n)
                    print(
                        f"{n} runs at concurrency={n}: {wall * 1000:.0f} ms, {wall / one:.2f}x "
                        f"one run's; {k}/{n} completed; kernel CPU per run {cpu / n * 1000:.0f} ms"
                    )
            if not args.no_dask:
                from distributed import Client, LocalCluster

                cluster = LocalCluster(
                    n_workers=2, threads_per_worker=8, processes=True, host="127.0.0.1",
                    dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR,
                )  # fmt: skip
                client = Client(cluster)
                try:
                    await timed(s, 2, executor=client)  # warm the workers' imports
                    wall, cpu, k = await timed(s, 16, executor=client)
                    local, lcpu, lk = await timed(s, 16, concurrency=8)
                    print(
                        f"16 runs on a 2-worker LocalCluster: {wall * 1000:.0f} ms ({k}/16 "
                        f"completed; kernel CPU per run {cpu / 16 * 1000:.0f} ms); the same in "
                        f"the kernel at concurrency=8: {local * 1000:.0f} ms ({lk}/16; "
                        f"{lcpu / 16 * 1000:.0f} ms CPU per run)"
                    )
                finally:
                    client.close()
                    cluster.close()
    print(f"cores: {os.cpu_count()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", action="store_true", help="also 16, 32, 64 runs at once")
    parser.add_argument("--no-dask", action="store_true", help="skip the LocalCluster")
    asyncio.run(main(parser.parse_args()))
