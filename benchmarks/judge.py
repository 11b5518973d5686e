"""Judging throughput, and the simulated caller's gap.

1. Judging 100 turns at concurrency 8 against a chat endpoint that answers in 200 ms: the wall
   time of the first judging against the ideal (100 / 8 x 200 ms = 2.5 s; the target is
   <= 1.3x), and the requests a second judging of the same turns sends (target: 0, all from the
   cache). The endpoint is the emulator's /v1/chat/completions with ``chat_delay_ms=200``,
   answered by its stand-in judge, in a process of its own (as a remote endpoint would be: its
   work does not share the judging kernel's interpreter; ``--in-process`` runs it on a thread
   instead). No peer connection is opened.
2. The caller's gap, in JupyterLab + Chromium (the widget's call is the browser's WebRTC; the
   emulator runs in the notebook's kernel, as the notebooks run it): a spoken caller against two
   variants, its model answering in ``--caller-delay-ms`` (the stand-in caller behind
   ``chat_delay_ms``) and its voice from the emulator's /v1/audio/speech (espeak-ng), with no
   cache so every line is asked for and spoken anew. The gap is the agent's audio
   stopping (``output_audio_buffer.stopped``) -> the caller's next clip starting in the page
   (``say.started``), both on the page's clock; the target is p50 <= the model's time + the
   speech endpoint's time + 50 ms, each measured for the same lines (``caller_ms``,
   ``speech_ms``).

Both open sockets on 127.0.0.1 only; part 2 opens WebRTC connections. Run it in the loopback-only
namespace like the other benchmarks:

    scripts/in-netns .venv/bin/python benchmarks/judge.py [--turns 100] [--concurrency 8]
    scripts/in-netns .venv/bin/python benchmarks/judge.py --gap-only [--caller-delay-ms 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from realtime_widget.emulator import Emulator
from realtime_widget.evaluate._judge import Judge, judge_turns
from realtime_widget.evaluate._models import ModelClient

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


# The gap, in a notebook: each cell's source (the emulator runs in the kernel, as notebooks run it).
GAP_SETUP = """
import json
from realtime_widget import Caller, Emulator, RealtimeWidget
emu = Emulator(stt_model="none", chat_delay_ms=CALLER_DELAY_MS).start()
w = RealtimeWidget(base_url=emu.base_url, api_key=emu.api_key, mic=False)
w
"""
GAP_RUN = """
w.connect()
await w.ready(timeout=30)
caller = Caller("A regular at the station.",
                "Book a table for two, at 8 pm, at a vegetarian place, with a window seat, "
                "near the door",
                max_turns=8, speak=True, cache=False)
runs = await w.run_script(caller, variants={"Clive": {"voice": "Clive"},
                                            "Ashley": {"voice": "Ashley"}}, repeat=REPEAT)

def gaps():
    out = []
    for run in runs.runs:
        # when each response's audio stopped playing (on the page's clock)
        stopped = {r["event"].get("response_id"): r["t_ms"] for r in run.events
                   if r["type"] == "output_audio_buffer.stopped"}
        rows = sorted(run.rows, key=lambda r: r["turn"])
        for before, row in zip(rows, rows[1:]):
            stop = stopped.get(before["response_id"])
            if stop is None or row["started_ms"] is None:
                out.append({"gap_ms": None, "run": run.index, "turn": row["turn"]})
                continue
            out.append({"gap_ms": row["started_ms"] - stop, "caller_ms": row["caller_ms"],
                        "speech_ms": row["speech_ms"], "run": run.index, "turn": row["turn"]})
    return out

cached = [r["event"]["cached"] for r in w.events.of_type("caller.turn")]
out = {"gaps": gaps(), "cached": cached, "ended": list(runs.conversations().ended_by),
       "turns": len(runs.turns()), "completed": int((runs.turns().status == "completed").sum())}
"""


def caller_gap(caller_delay_ms: float, repeat: int) -> dict[str, Any]:
    from _rig import lab_session

    setup = GAP_SETUP.replace("CALLER_DELAY_MS", repr(caller_delay_ms))
    with lab_session(
        [setup, GAP_RUN.replace("REPEAT", str(repeat))], prefix="rtw-bench-judge-"
    ) as rig:
        rig.book.run_cell(1, timeout=900)
        text = rig.book.kernel_eval("print('BENCH', json.dumps(out))")
        got: dict[str, Any] = json.loads(text.split("BENCH", 1)[1])
        rig.book.kernel_eval("w.close(); emu.stop()")
    return got


def print_gap(got: dict[str, Any], caller_delay_ms: float) -> None:
    from _rig import pct

    missing = [g for g in got["gaps"] if g["gap_ms"] is None]
    gaps = [g for g in got["gaps"] if g["gap_ms"] is not None]
    gap = [g["gap_ms"] for g in gaps]
    model = [g["caller_ms"] for g in gaps]
    speech = [g["speech_ms"] for g in gaps]
    bound = pct(model, 0.5) + pct(speech, 0.5) + 50.0
    over = [g["gap_ms"] - g["caller_ms"] - g["speech_ms"] for g in gaps]
    print(
        f"the caller's gap in JupyterLab + Chromium (emulator in the kernel; the caller's model "
        f"answering in {caller_delay_ms:g} ms, its speech from the emulator's espeak-ng):"
    )
    print(
        f"  {got['completed']}/{got['turns']} turns completed, runs ended by "
        f"{sorted(set(got['ended']))}; {sum(got['cached'])} of {len(got['cached'])} lines "
        "from the cache (target 0: each line asked and spoken anew)"
    )
    print(
        f"  gap (agent's audio stops -> the caller's next clip starts), n={len(gap)}: "
        f"p50 {pct(gap, 0.5):.0f} ms, p95 {pct(gap, 0.95):.0f} ms, min {min(gap):.0f} ms "
        f"(< 0: the caller spoke over the agent); {len(missing)} lines without both times"
    )
    print(
        f"  the model's time p50 {pct(model, 0.5):.0f} ms + the speech endpoint's p50 "
        f"{pct(speech, 0.5):.0f} ms + 50 ms = {bound:.0f} ms -> gap p50 "
        f"{'<=' if pct(gap, 0.5) <= bound else '>'} bound"
    )
    print(
        f"  per line, gap - model - speech: p50 {pct(over, 0.5):.0f} ms, p95 {pct(over, 0.95):.0f} "
        f"ms; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--delay-ms", type=float, default=200.0)
    parser.add_argument("--in-process", action="store_true", help="the emulator on a thread")
    parser.add_argument("--gap-only", action="store_true", help="only the caller's gap")
    parser.add_argument("--judging-only", action="store_true", help="skip the caller's gap")
    parser.add_argument("--caller-delay-ms", type=float, default=200.0)
    parser.add_argument("--repeat", type=int, default=2, help="repeats of the caller's grid")
    parser.add_argument("--verbose", action="store_true", help="print each line's gap")
    args = parser.parse_args()
    if not args.judging_only:
        # first, before asyncio.run(): Playwright's sync driver refuses a running loop
        gap = caller_gap(args.caller_delay_ms, args.repeat)
    if not args.gap_only:
        judging(args)
    if not args.judging_only:
        print_gap(gap, args.caller_delay_ms)
        if args.verbose:
            for g in gap["gaps"]:
                print("   ", {k: round(v) if isinstance(v, float) else v for k, v in g.items()})


def judging(args: argparse.Namespace) -> None:
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
