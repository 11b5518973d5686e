"""A grid's runs at once on sessions of their own, and tune() on them, against the emulator:
the same rows and seeds as one at a time, a 429 met with backoff, a cancel that hangs up every
call, the key nowhere, and a search that resumes, repeats itself and records failed trials."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from pathlib import Path
from typing import Any

import optuna
import pytest

from realtime_widget import Judge, Runs, Script
from realtime_widget.emulator import Emulator, ResponseContext
from tests.conftest import SENTINEL_KEY
from tests.helpers.headless import MakeEmulator, Open, until

SCRIPT = Script(["Hello there.", "What is on the menu?"])
SAME = ["variant", "condition", "repeat", "run", "seed", "turn", "kind", "prompt", "status", "text"]


def live(emu: Emulator) -> list[dict[str, Any]]:
    return [c for c in emu.calls if c["ended_at"] is None]


async def test_runs_at_once_have_the_rows_seeds_and_files_of_one_at_a_time(
    session: Open, tmp_path: Path
) -> None:
    s = session(mic=False)
    await s.connect()
    variants = {"fast": {"speed": 1.3}, "Ashley": {"voice": "Ashley"}}
    one = await s.run_script(SCRIPT, variants, repeat=2, seed=7, progress=False)
    many = await s.run_script(SCRIPT, variants, repeat=2, seed=7, progress=False, concurrency=4)
    a, b = one.turns(), many.turns()
    assert list(a.columns) == list(b.columns)
    assert a[SAME].equals(b[SAME]) and (b["status"] == "completed").all()
    assert [r.index for r in many.runs] == [1, 2, 3, 4]
    assert all(r.fresh_call and r.status == "completed" for r in many.runs)
    # each run played on its own session with the variant's fields
    assert [r.session["audio"]["output"]["voice"] for r in many.runs] == ["Clive", "Ashley"] * 2
    assert [r.confirmed["audio"]["output"]["speed"] for r in many.runs] == [1.3, 1.0] * 2
    assert all(r.events is not None and len(r.events) > 0 for r in many.runs)
    back = Runs.read_parquet(many.to_parquet(tmp_path / "many"))
    assert back.turns()[SAME].equals(b[SAME])
    manifest = json.loads((tmp_path / "many" / "_runs.json").read_text())
    assert [e["seed"] for e in manifest["runs"]] == [r.seed for r in one.runs]
    assert s.status == "connected"  # the grid's own call is left as it was


async def test_a_429_waits_with_backoff_and_no_run_is_lost(
    session: Open, emu_with: MakeEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu = emu_with(max_calls=2)  # the grid's own call holds one: one run at a time gets in
    s = session(emu, mic=False, api_key=emu.api_key)
    await s.connect()
    with caplog.at_level(logging.WARNING, logger="realtime_widget.experiments"):
        runs = await s.run_script(
            SCRIPT, {"a": {}, "b": {}, "c": {}}, progress=False, concurrency=3
        )
    assert [r.status for r in runs.runs] == ["completed"] * 3
    assert (runs.turns()["status"] == "completed").all()
    waits = [r.getMessage() for r in caplog.records if "HTTP 429" in r.getMessage()]
    assert waits and "playing it again in" in waits[0]
    refused = [c for c in emu.calls if c["transport"] == "websocket"]
    assert len(refused) >= 4  # the grid's own call and three runs' (the refused never counted)


async def test_cancelling_the_runs_hangs_up_every_call(
    session: Open, emu_with: MakeEmulator
) -> None:
    emu = emu_with(first_delta_delay_ms=20_000.0)  # replies that never come in time
    s = session(emu, mic=False)
    await s.connect()
    runs = s.run_script(SCRIPT, {"a": {}, "b": {}, "c": {}}, progress=False, concurrency=3)
    await until(lambda: len(live(emu)) == 4)  # the grid's own call and three runs'
    waiting = asyncio.ensure_future(runs.wait())
    await asyncio.sleep(0.2)
    waiting.cancel()  # as an interrupted cell does
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await runs.settled()
    assert runs.cancelled and all(r.status == "cancelled" for r in runs.runs)
    await until(lambda: len(live(emu)) == 1, timeout=5.0)  # only the grid's own call is left
    assert [c["end_reason"] for c in emu.calls[1:]]


async def test_the_key_is_nowhere_in_runs_at_once(
    session: Open, emu_with: MakeEmulator, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    emu = emu_with(api_key=SENTINEL_KEY, max_calls=2)
    s = session(emu, mic=False, api_key=SENTINEL_KEY)
    await s.connect()
    with caplog.at_level(logging.DEBUG):
        runs = await s.run_script(SCRIPT, {"a": {}, "b": {}}, progress=False, concurrency=2)
    assert [r.status for r in runs.runs] == ["completed"] * 2
    out = runs.to_parquet(tmp_path / "set")
    seen = [repr(runs), repr(s.settings()), runs.turns().to_csv(), caplog.text]
    seen += [repr(r) + str(r.manifest()) for r in runs.runs]
    seen += [p.read_bytes().decode("latin-1") for p in out.rglob("*") if p.is_file()]
    assert not any(SENTINEL_KEY in text for text in seen)


# -- tune() ------------------------------------------------------------------------------------


def by_speed(ctx: ResponseContext) -> str:
    """A reply that says the session's speed and voice (what the judge below scores)."""
    out = ctx.session.get("audio", {}).get("output", {})
    return f"speed {out.get('speed')} voice {out.get('voice')}"


def speed_judge(messages: list[dict[str, Any]], _request: dict[str, Any]) -> str:
    """Scores a reply by the speed it names: 10 x speed, rounded."""
    judged = messages[-1]["content"].split("## Judged")[-1]
    if "speed " not in judged:
        return json.dumps({"score": 0, "reason": "no reply"})
    speed = float(judged.split("speed ")[1].split()[0])
    return json.dumps({"score": round(10 * speed), "reason": "by speed"})


async def slow_voice(ctx: ResponseContext) -> str:
    out = ctx.session.get("audio", {}).get("output", {})
    if out.get("voice") == "Ashley":
        await asyncio.sleep(0.4)  # over the budget
    if out.get("voice") == "Hades":
        raise RuntimeError("this voice breaks the service")
    return by_speed(ctx)


@pytest.fixture
def planted(emu_with: MakeEmulator) -> Emulator:
    return emu_with(responder=slow_voice, chat_responder=speed_judge)


JUDGE = Judge("The agent is fast.", scale=(0, 20), cache=False)


async def test_tune_finds_the_best_within_the_budget_and_applies_it(
    session: Open, planted: Emulator
) -> None:
    s = session(planted, mic=False)
    await s.connect()
    tuning = await s.tune(
        ["Hello?"], space={"speed": [0.8, 1.0, 1.2], "voice": ["Clive", "Ashley"]},
        judge=JUDGE, latency_budget_ms=250, trials=6, concurrency=3, sampler="random",
        progress=False,
    )  # fmt: skip
    table = tuning.trials()
    assert len(table) == 6 and (table["state"] == "complete").all()
    assert (table["feasible"] == (table["voice"] == "Clive")).all()
    best = tuning.best_trial
    assert best is not None and best.params["voice"] == "Clive"
    assert best.value == table[table["feasible"]]["score"].max()  # the best it asked for
    assert tuning.best == {"type": "realtime", "audio": {"output": tuning.best["audio"]["output"]}}
    assert set(tuning.runs.turns()["variant"]) == {f"trial {n}" for n in range(6)}
    assert (tuning.pareto()["to_first_output_ms_p95"].diff().dropna() > 0).all()
    s.apply_session(tuning.best)  # the winner on a live session
    await until(lambda: s.server_session["audio"]["output"]["speed"] == s.speed)


async def test_the_same_seed_asks_for_the_same_trials(session: Open) -> None:
    s = session(mic=False)
    await s.connect()
    space = {"speed": (0.8, 1.4), "temperature": (0.6, 1.0), "voice": ["Clive", "Ashley"]}

    async def asked(seed: int) -> list[dict[str, Any]]:
        tuning = await s.tune(
            ["Hi"], space=space, score=lambda turns: float(turns["text"].str.len().sum()),
            trials=6, seed=seed, progress=False,
        )  # fmt: skip
        return [t.params for t in tuning.study.trials]

    first = await asked(3)
    assert first == await asked(3)
    assert first != await asked(4)


async def test_a_stored_tuning_resumes_where_it_stopped(session: Open, tmp_path: Path) -> None:
    s = session(mic=False)
    await s.connect()
    storage = f"sqlite:///{tmp_path / 'tuning.db'}"
    options: dict[str, Any] = {
        "space": {"speed": (0.8, 1.4)}, "score": lambda turns: 1.0, "storage": storage,
        "study_name": "concierge", "progress": False,
    }  # fmt: skip
    first = await s.tune(["Hi"], trials=2, **options)
    assert len(first.runs.runs) == 2
    # a kernel that died mid-trial leaves it running in the store
    study = optuna.load_study(study_name="concierge", storage=storage)
    stale = study.ask({"speed": optuna.distributions.FloatDistribution(0.8, 1.4)})
    second = await s.tune(["Hi"], trials=4, **options)
    assert len(second.runs.runs) == 2  # two more: the stale trial's point asked again, and one
    table = second.trials()
    assert len(table) == 4 and (table["state"] == "complete").all()
    assert stale.number not in table.index
    assert stale.params["speed"] in set(table["speed"])


async def test_a_trial_whose_calls_fail_is_recorded_and_the_search_goes_on(
    session: Open, planted: Emulator
) -> None:
    s = session(planted, mic=False)
    await s.connect()
    tuning = await s.tune(
        ["Hello?"], space={"voice": ["Clive", "Hades"], "speed": [1.0, 1.2]}, judge=JUDGE,
        trials=4, sampler=optuna.samplers.GridSampler({"voice": ["Clive", "Hades"], "speed": [1.0, 1.2]}, seed=0), progress=False,
    )  # fmt: skip
    table = tuning.trials()
    failed = table[table["voice"] == "Hades"]
    assert len(failed) == 2 and (failed["state"] == "fail").all()
    assert failed["error"].str.contains("no turn completed").all()
    assert (table[table["voice"] == "Clive"]["state"] == "complete").all()
    assert tuning.best_fields == {"voice": "Clive", "speed": 1.2}
    assert math.isnan(failed["score"].iloc[0])
