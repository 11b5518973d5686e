"""Judging throughput: 100 turns at concurrency 8 against a chat endpoint that answers in 200 ms.

Prints the wall time of the first judging against the ideal (100 / 8 x 200 ms = 2.5 s; the
target is <= 1.3x), and the requests a second judging of the same turns sends (target: 0, all
from the cache). The endpoint is the emulator's /v1/chat/completions with ``chat_delay_ms=200``,
answered by its stand-in judge, in a process of its own (as a remote endpoint would be: its
work does not share the judging kernel's interpreter; ``--in-process`` runs it on a thread
instead). No peer connection is opened, but it is an emulator: run it in the loopback-only
namespace like the other benchmarks:

    scripts/in-netns .venv/bin/python benchmarks/judge.py [--turns 100] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from realtime_widget.emulator import Emulator
from realtime_widget.experiments.judge import Judge, judge_turns
from realtime_widget.experiments.models import ModelClient

RUBRIC = "The agent offers a vegetarian option and asks at most one question."
REPLIES = (
    "We have a vegetarian lasagne tonight. Would you like a table?",
    "Our menu has steak and fish.",
    "Yes, there is a vegetarian option; any other question?",
)


def turns_table(n: int) -> pd.DataFrame:
    rows = []
    for i in range(n):
        run, turn = i // 5 + 1, i % 5 + 1
        rows.append(
            {
                "variant": "Clive" if run % 2 else "Ashley",
                "repeat": (run + 1) // 2,
                "run": run,
                "turn": turn,
                "kind": "text",
                "prompt": f"Question {turn} of run {run}",
                "text": REPLIES[i % len(REPLIES)],
                "tools": [],
                "status": "completed",
            }
        )
    return pd.DataFrame(rows)


async def measure(base_url: str, key: str, n: int, concurrency: int, delay_ms: float) -> None:
    turns = turns_table(n)
    judge = Judge(RUBRIC, concurrency=concurrency)
    with tempfile.TemporaryDirectory() as cache:
        client = ModelClient(base_url, key, concurrency=concurrency, cache=cache)
        # one request first, outside the timing: the SDK's lazy imports and its HTTP client
        warm = ModelClient(base_url, key, cache=False)
        await warm.chat_json([{"role": "user", "content": "warm up"}], model=judge.model)
        await warm.aclose()
        load = os.getloadavg()[0]
        t0, cpu0 = time.perf_counter(), time.process_time()
        first = await judge_turns(judge, turns, None, client)
        wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
        sent_first = client.requests
        t1 = time.perf_counter()
        again = await judge_turns(judge, turns, None, client)
        again_s = time.perf_counter() - t1
        sent_again = client.requests - sent_first
        await client.aclose()
    ideal_s = n / concurrency * delay_ms / 1000
    errors = int(first["error"].notna().sum())
    print(f"judged {n} turns at concurrency {concurrency}, endpoint answering in {delay_ms:g} ms")
    print(
        f"  first judging: {wall_s:.2f} s wall vs ideal {ideal_s:.2f} s -> {wall_s / ideal_s:.2f}x "
        f"(target <= 1.3x); {sent_first} requests, {errors} error rows"
    )
    print(
        f"  judging again: {again_s * 1000:.0f} ms, {sent_again} requests "
        f"({int(again['cached'].sum())}/{len(again)} rows cached; target 0 requests)"
    )
    print(
        f"  per request: {first['latency_ms'].median():.0f} ms p50 / "
        f"{first['latency_ms'].quantile(0.95):.0f} ms p95 seen by the client, "
        f"{cpu_s / n * 1000:.1f} ms of the kernel's CPU; load average {load:.1f} "
        f"on {os.cpu_count()} cores"
    )
    print(
        f"  scores: { ({int(k): int(v) for k, v in sorted(first['score'].value_counts().items())}) }"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--delay-ms", type=float, default=200.0)
    parser.add_argument("--in-process", action="store_true", help="the emulator on a thread")
    args = parser.parse_args()
    figures = (args.turns, args.concurrency, args.delay_ms)
    if args.in_process:
        with Emulator(chat_delay_ms=args.delay_ms, vad="energy", stt_model="none") as emu:
            asyncio.run(measure(emu.base_url, emu.api_key, *figures))
        return
    key = secrets.token_urlsafe(24)
    emulator = subprocess.Popen(
        [sys.executable, "-m", "realtime_widget.emulator", "--api-key", key,
         "--chat-delay-ms", str(args.delay_ms), "--vad", "energy", "--stt-model", "none"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert emulator.stdout is not None
        line = emulator.stdout.readline()
        if "listening on " not in line:
            raise SystemExit(f"the emulator did not start: {line!r}")
        asyncio.run(measure(line.rsplit(" ", 1)[1].strip(), key, *figures))
    finally:
        emulator.terminate()
        emulator.wait(15)


if __name__ == "__main__":
    main()
