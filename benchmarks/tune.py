"""``tune()`` against a planted optimum, side by side with random search.

The emulator answers each turn with the settings it ran with (a responder), after a delay that
depends on them (the latency), and its judge (a chat responder) scores the answer by the same
settings, so the best score within the latency budget is known in advance:

    score   = 40 + 20 [Ashley] + {low 0, medium 8, high 15}[eagerness] + 30 - 150 (speed - 1.25)^2
    latency = 150 + 150 [Ashley] + {low 0, medium 100, high 200}[eagerness] + 300 (speed - 0.8) ms

The space: speed 0.8-1.4 in steps of 0.05 (13 values) x eagerness (3) x voice (2): a full grid
at that resolution is 78 runs. ``tune()`` gets a third of them (26 trials, one run each, 4 at
once); its best trial's planted score is compared with the optimum's (target: within 5 %),
and so is random search's with the same budget, over several seeds.

    scripts/in-netns .venv/bin/python benchmarks/tune.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import re
import time
from typing import Any

import optuna

from realtime_widget import Judge, RealtimeSession
from realtime_widget.emulator import Emulator, ResponseContext
from tests.headless.conftest import FAST

EAGER_SCORE = {"low": 0, "medium": 8, "high": 15}
EAGER_MS = {"low": 0, "medium": 100, "high": 200}
BUDGET_MS = 600.0
SPEEDS = [round(0.8 + 0.05 * i, 2) for i in range(13)]
SPACE: dict[str, Any] = {
    "speed": (0.8, 1.4, 0.05),
    "turn_detection.eagerness": ["low", "medium", "high"],
    "voice": ["Clive", "Ashley"],
}


def planted_score(speed: float, eagerness: str, voice: str) -> float:
    return 40 + 20 * (voice == "Ashley") + EAGER_SCORE[eagerness] + 30 - 150 * (speed - 1.25) ** 2


def planted_ms(speed: float, eagerness: str, voice: str) -> float:
    return 150 + 150 * (voice == "Ashley") + EAGER_MS[eagerness] + 300 * (speed - 0.8)


def settings(session: dict[str, Any]) -> tuple[float, str, str]:
    audio = session.get("audio", {})
    out, td = audio.get("output", {}), audio.get("input", {}).get("turn_detection") or {}
    return float(out.get("speed", 1.0)), td.get("eagerness", "medium"), out.get("voice", "Clive")


async def responder(ctx: ResponseContext) -> str:
    speed, eagerness, voice = settings(ctx.session)
    await asyncio.sleep(planted_ms(speed, eagerness, voice) / 1000)
    return f"settings speed={speed} eagerness={eagerness} voice={voice}"


def judge_responder(messages: list[dict[str, Any]], _request: dict[str, Any]) -> str:
    judged = messages[-1]["content"].split("## Judged")[-1]
    found = re.search(r"speed=([\d.]+) eagerness=(\w+) voice=(\w+)", judged)
    if found is None:
        return json.dumps({"score": 0, "reason": "no answer"})
    score = planted_score(float(found[1]), found[2], found[3])
    return json.dumps({"score": round(score), "reason": "planted"})


def optimum() -> tuple[float, tuple[float, str, str]]:
    grid = itertools.product(SPEEDS, EAGER_SCORE, ("Clive", "Ashley"))
    feasible = [p for p in grid if planted_ms(*p) <= BUDGET_MS]
    best = max(feasible, key=lambda p: planted_score(*p))
    return planted_score(*best), best


async def search(s: RealtimeSession, sampler: str, seed: int, trials: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    tuning = await s.tune(
        ["Which settings are these?"], space=SPACE,
        judge=Judge("The settings are good.", scale=(0, 100), cache=False),
        latency_budget_ms=BUDGET_MS, trials=trials, concurrency=4, seed=seed,
        sampler=sampler, progress=False,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    best = tuning.best_trial
    if best is None:
        return {"score": float("nan"), "wall": wall, "runs": len(tuning.runs.runs)}
    p = best.params
    point = (float(p["speed"]), p["turn_detection.eagerness"], p["voice"])
    return {
        "score": planted_score(*point), "point": point, "wall": wall,
        "runs": len(tuning.runs.runs), "measured_ms": best.user_attrs.get("latency_ms"),
    }  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("realtime_widget").setLevel(logging.ERROR)
    best_score, best_point = optimum()
    grid_runs = len(SPEEDS) * 3 * 2
    trials = grid_runs // 3
    print(
        f"planted optimum within {BUDGET_MS:.0f} ms: score {best_score:.1f} at {best_point} "
        f"(latency {planted_ms(*best_point):.0f} ms); full grid {grid_runs} runs, budget "
        f"{trials} trials"
    )
    fast = {**FAST, "max_calls": 64}
    with Emulator(**fast, responder=responder, chat_responder=judge_responder) as emu:
        async with RealtimeSession(base_url=emu.base_url, api_key=emu.api_key, mic=False) as s:
            rows = []
            for seed in range(args.seeds):
                for sampler in ("tpe", "random"):
                    got = await search(s, sampler, seed, trials)
                    share = got["score"] / best_score
                    rows.append((sampler, share))
                    print(
                        f"seed {seed} {sampler:6}: best {got['score']:.1f} ({share:.1%} of the "
                        f"optimum) at {got.get('point')} measured p95 "
                        f"{got.get('measured_ms') or float('nan'):.0f} ms; {got['runs']} runs, "
                        f"{got['wall']:.1f} s"
                    )
            for sampler in ("tpe", "random"):
                shares = [v for k, v in rows if k == sampler]
                hits = sum(v >= 0.95 for v in shares)
                print(
                    f"{sampler}: mean {sum(shares) / len(shares):.1%} of the optimum, worst "
                    f"{min(shares):.1%}; within 5 % in {hits}/{len(shares)} seeds"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
