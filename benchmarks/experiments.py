"""What ``run_script`` costs over a bare ``ask()``, and how long a grid takes against its turns.

1. In the kernel (no browser): a scripted page answers every turn after a fixed delay from a
   timer thread (as comm handlers on a kernel subshell do). The cycle of a turn is the kernel
   time from one turn's ``send`` to the next's. Its p50 with the runner, less its p50 with a
   bare ``await w.ask(...)`` loop, is the runner's overhead per turn (target <= 5 ms). The
   first turn of each run also carries the run's set-up (one ``session.update`` and the
   conversation's deletion, each a round trip): reported apart.
2. In JupyterLab + Chromium against the emulator (inside ``scripts/in-netns``): the same gap
   measured on a real host (the turn's last record reaching the kernel -> the next turn's
   ``send`` leaving it), bare and with the runner; and a 3 turns x 2 variants x 3 repeats grid,
   whose wall time is compared with the sum of its turns' own durations (target <= 1.2x).

    .venv/bin/python benchmarks/experiments.py --kernel-only
    scripts/in-netns .venv/bin/python benchmarks/experiments.py
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from typing import Any

from _rig import lab_session, pct
from realtime_widget import RealtimeWidget, Script
from tests.conftest import pretend_live
from tests.unit.experiments.service_page import ServicePage

DELAY_S = 0.02


def cycles(sends: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(sends)]


def widget_with_page() -> tuple[RealtimeWidget, ServicePage, list[float]]:
    w = RealtimeWidget(api_key="bench-key", base_url="http://127.0.0.1:9")
    page = ServicePage(w, threaded=True, delay_s=DELAY_S)
    sends: list[float] = []
    post = page.on_post

    def timed_post(message: dict[str, Any]) -> None:
        if message["kind"] == "send" and any(
            e["type"] == "response.create" for e in message["events"]
        ):
            sends.append(time.perf_counter() * 1000.0)
        post(message)

    w._post = timed_post  # type: ignore[method-assign]
    pretend_live(w)
    return w, page, sends


async def in_kernel(turns: int, per_run: int) -> dict[str, Any]:
    prompts = [f"Question number {i}." for i in range(per_run)]
    w, _page, sends = widget_with_page()
    for i in range(turns):
        await w.ask(prompts[i % per_run])
    bare = cycles(sends)
    w.close()

    w, _page, sends = widget_with_page()
    runs = await w.run_script(
        Script(prompts), variants={"a": {"speed": 1.0}, "b": {"speed": 1.2}},
        repeat=turns // per_run // 2, progress=False,
    )  # fmt: skip
    assert set(runs.turns().status) == {"completed"}, runs.turns().status.value_counts()
    every = cycles(sends)
    # a cycle that ends on a run's first turn also holds that run's set-up
    firsts = {i for i in range(len(every)) if (i + 1) % per_run == 0}
    within = [c for i, c in enumerate(every) if i not in firsts]
    setup = [c for i, c in enumerate(every) if i in firsts]
    w.close()
    return {
        "bare_p50": pct(bare, 0.5),
        "bare_p95": pct(bare, 0.95),
        "runner_p50": pct(within, 0.5),
        "runner_p95": pct(within, 0.95),
        "overhead_p50": pct(within, 0.5) - pct(bare, 0.5),
        "first_turn_p50": pct(setup, 0.5),
        "n": (len(bare), len(within), len(setup)),
    }


SETUP = """
from realtime_widget import Emulator, RealtimeWidget, Script
import time, json, asyncio
emu = Emulator().start()
w = RealtimeWidget(base_url=emu.base_url, api_key=emu.api_key, mic=False)
sends = []
_post = w._post
def _timed(message):
    if message.get("kind") == "send" and any(
            e["type"] == "response.create" for e in message["events"]):
        sends.append(time.time() * 1000.0)
    _post(message)
w._post = _timed
w
"""
BENCH = """
w.connect()
await w.ready(timeout=30)
prompts = ["Hi.", "Hello there.", "Thanks."]

def gaps(since):
    # the turn's last record reaching the kernel -> the next turn's send leaving it
    ends = [r["t_kernel_ms"] for r in list(w.events)[since:]
            if r["type"] in ("output_audio_buffer.stopped", "output_audio_buffer.cleared")]
    mine = sends[-len(ends):]
    return [s - e for e, s in zip(ends, mine[1:])]

sends.clear(); since = len(w.events)
for i in range(6):
    stopped = w.wait_for("output_audio_buffer.stopped", timeout=60)
    await w.ask(prompts[i % 3])
    await stopped
bare = gaps(since)

sends.clear(); since = len(w.events)
t0 = time.perf_counter()
runs = await w.run_script(Script(prompts),
                          variants={"Clive": {"voice": "Clive"}, "Ashley": {"voice": "Ashley"}},
                          repeat=3)
wall = time.perf_counter() - t0
df = runs.turns()
ends = [r["t_kernel_ms"] for r in list(w.events)[since:]
        if r["type"] in ("output_audio_buffer.stopped", "output_audio_buffer.cleared")]
within = [s - e for k, (e, s) in enumerate(zip(ends, sends[1:])) if (k + 1) % 3]
out = {"bare": bare, "within": within, "wall_s": wall, "timing": runs.timing(),
       "completed": int((df.status == "completed").sum()), "turns": len(df),
       "turn_s": df.turn_ms.sum() / 1000.0}
print("BENCH", json.dumps(out))
"""


def in_browser() -> dict[str, Any]:
    with lab_session([SETUP, BENCH], widget_cell=0, prefix="rtw-bench-exp-") as rig:
        rig.book.run_cell(1, timeout=600)
        text = rig.book.kernel_eval("print('BENCH', json.dumps(out))")
        got: dict[str, Any] = json.loads(text.split("BENCH", 1)[1])
        rig.book.kernel_eval("w.close(); emu.stop()")
        return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kernel-only", action="store_true", help="skip the browser part")
    parser.add_argument("--turns", type=int, default=200)
    args = parser.parse_args()
    k = asyncio.run(in_kernel(args.turns, per_run=10))
    print(
        f"in the kernel, scripted page answering after {DELAY_S * 1000:.0f} ms "
        f"(turns bare/runner/run-firsts: {k['n']}):\n"
        f"  turn cycle, bare ask():  p50 {k['bare_p50']:.2f} ms, p95 {k['bare_p95']:.2f} ms\n"
        f"  turn cycle, run_script:  p50 {k['runner_p50']:.2f} ms, p95 {k['runner_p95']:.2f} ms\n"
        f"  runner overhead per turn: p50 {k['overhead_p50']:.2f} ms (target <= 5 ms)\n"
        f"  a run's first turn (with the session.update and the deletions): "
        f"p50 {k['first_turn_p50']:.2f} ms"
    )
    if args.kernel_only:
        return
    b = in_browser()
    bare, within = b["bare"], b["within"]
    t = b["timing"]
    print(
        "in JupyterLab + Chromium, emulator (kernel gap: turn's last record in -> next send "
        "out):\n"
        f"  bare ask() loop:  p50 {pct(bare, 0.5):.2f} ms, p95 {pct(bare, 0.95):.2f} ms "
        f"(n={len(bare)})\n"
        f"  run_script:       p50 {pct(within, 0.5):.2f} ms, p95 {pct(within, 0.95):.2f} ms "
        f"(n={len(within)})\n"
        f"  overhead p50: {pct(within, 0.5) - pct(bare, 0.5):.2f} ms\n"
        f"  3x2x3 grid: {b['completed']}/{b['turns']} turns completed; wall {b['wall_s']:.2f} s, "
        f"sum of the turns' own durations {b['turn_s']:.2f} s, ratio "
        f"{b['wall_s'] / b['turn_s']:.3f} (target <= 1.2; runs.timing() says "
        f"{t['ratio']:.3f})"
    )


if __name__ == "__main__":
    main()
