"""Judges against a fake chat endpoint: the rows and their join to runs.turns(), pass_at, per="run",
the cache (judging again sends nothing), unreadable answers as error rows, what the judge is
shown (heard speech, tool calls with results, the session), and the key scrubbed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from realtime_widget.evaluate._judge import (
    JUDGE_COLUMNS,
    JUDGE_MARKER,
    Judge,
    judge_turns,
    run_context,
)
from realtime_widget.evaluate._models import ModelClient
from realtime_widget.experiments import COLUMNS, Run, Runs, Script
from tests.helpers.fake_chat import SENTINEL_KEY, FakeChat, fake_chat, widget

__all__ = ["fake_chat", "widget"]

RUBRIC = "The agent offers a vegetarian option."


def columns() -> list[str]:
    return list(tuple(COLUMNS))  # the real table's columns


def turn(run: int, n: int, text: str, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(columns())
    variant = "A" if run % 2 else "B"
    row.update(
        variant=variant, repeat=(run + 1) // 2, run=run, turn=n, seed=run, call_number=1,
        kind="text", prompt=f"question {n}", status="completed", text=text, transcript=None,
        responses=1, tool_calls=0, tools=[],
    )  # fmt: skip
    row.update(kw)
    return row


def table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns())


def judged_prompt(body: dict[str, Any]) -> str:
    return body["messages"][1]["content"]


def scorer(body: dict[str, Any], attempt: int) -> str:
    """Scores 5 when the judged part's agent line says 'vegetarian', else 2."""
    judged = judged_prompt(body).split("## Judged", 1)[1]
    agent = " ".join(line for line in judged.splitlines() if line.startswith("agent:"))
    good = "vegetarian" in agent
    return json.dumps({"score": 5 if good else 2, "reason": "vegetarian named" if good else "no"})


def client(server: FakeChat, tmp_path: Path, **kw: Any) -> ModelClient:
    return ModelClient(server.base_url, SENTINEL_KEY, cache=tmp_path / "cache", **kw)


async def test_turn_rows_join_the_turns_table(fake_chat: FakeChat, tmp_path: Path) -> None:
    fake_chat.answer = scorer
    turns = table(
        [
            turn(1, 1, "Hello, how can I help?"),
            turn(1, 2, "We have a vegetarian lasagne."),
            turn(2, 1, "Hi."),
            turn(2, 2, "We have steak."),
        ]
    )
    c = client(fake_chat, tmp_path)
    scores = await judge_turns(Judge(RUBRIC, name="veg"), turns, None, c)
    await c.aclose()
    assert list(scores.columns) == list(JUDGE_COLUMNS)
    assert len(scores) == 4 and fake_chat.requests == 4
    joined = turns.merge(scores, on=["run", "turn"], suffixes=("", "_judged"))
    assert len(joined) == 4
    by = {(r.run, r.turn): r for r in joined.itertuples()}
    assert (
        by[(1, 2)].score == 5
        and bool(by[(1, 2)].passed)
        and by[(1, 2)].reason_judged == "vegetarian named"
    )
    assert by[(2, 2)].score == 2 and not bool(by[(2, 2)].passed)
    assert set(scores["judge"]) == {"veg"} and set(scores["per"]) == {"turn"}
    assert set(scores["model"]) == {"openai/gpt-4.1-mini"}
    assert scores["error"].isna().all() and not scores["cached"].any()
    assert (scores["latency_ms"] > 0).all()
    # run 1's turn 2 request shows turn 1 as context, and judges turn 2 (requests run
    # concurrently: find it by its words, not its place)
    prompt = next(
        judged_prompt(b)
        for b in fake_chat.bodies
        if "## Judged: turn 2" in judged_prompt(b) and "vegetarian lasagne" in judged_prompt(b)
    )
    assert "## Earlier in the conversation" in prompt
    assert prompt.index("Hello, how can I help?") < prompt.index("## Judged: turn 2")
    assert fake_chat.bodies[0]["messages"][0]["content"].startswith(JUDGE_MARKER)
    assert fake_chat.bodies[0]["temperature"] == 0


async def test_judging_again_sends_nothing(fake_chat: FakeChat, tmp_path: Path) -> None:
    fake_chat.answer = scorer
    turns = table([turn(r, n, f"reply {r}.{n}") for r in (1, 2) for n in (1, 2, 3)])
    judge = Judge(RUBRIC)
    c = client(fake_chat, tmp_path)
    first = await judge_turns(judge, turns, None, c)
    assert fake_chat.requests == 6
    again = await judge_turns(judge, turns, None, client(fake_chat, tmp_path))
    assert fake_chat.requests == 6  # 0 more
    assert again["cached"].all()
    when = ["cached", "started_ms", "ended_ms"]  # (when it was asked differs, by nature)
    pd.testing.assert_frame_equal(
        first.drop(columns=when), again.drop(columns=when), check_exact=True
    )
    # another rubric is another request
    await judge_turns(Judge("The agent is brief."), turns.head(1), None, c)
    await c.aclose()
    assert fake_chat.requests == 7


async def test_per_run_judges_each_whole_run(fake_chat: FakeChat, tmp_path: Path) -> None:
    fake_chat.answer = lambda body, attempt: json.dumps({"score": 4, "reason": "booked"})
    turns = table([turn(r, n, f"reply {r}.{n}") for r in (1, 2, 3) for n in (1, 2)])
    c = client(fake_chat, tmp_path)
    scores = await judge_turns(Judge("The booking was confirmed.", per="run"), turns, None, c)
    await c.aclose()
    assert fake_chat.requests == 3
    assert list(scores["run"]) == [1, 2, 3]
    assert scores["turn"].isna().all() and set(scores["per"]) == {"run"}
    prompt = judged_prompt(fake_chat.bodies[0])
    assert "## Judged: the whole conversation (2 turns)" in prompt
    assert "reply 1.1" in prompt and "reply 1.2" in prompt and "reply 2.1" not in prompt
    assert scores["passed"].all()  # 4 >= the default pass_at on 1-5


async def test_unreadable_or_wrong_answers_are_error_rows(
    fake_chat: FakeChat, tmp_path: Path
) -> None:
    answers = {
        "r1": "It is pretty good I think.",
        "r2": json.dumps({"score": 9, "reason": "too high"}),
        "r3": json.dumps({"score": "four", "reason": "words"}),
        "r4": json.dumps({"score": 3.0, "reason": "a float that is an integer"}),
    }

    def answer(body: dict[str, Any], attempt: int) -> str:
        judged = judged_prompt(body).split("## Judged", 1)[1]
        return next(v for k, v in answers.items() if f"agent: {k}" in judged)

    fake_chat.answer = answer
    turns = table([turn(1, n, f"r{n}") for n in (1, 2, 3, 4)])
    c = client(fake_chat, tmp_path)
    scores = await judge_turns(Judge(RUBRIC), turns, None, c)
    await c.aclose()
    errors = list(scores["error"])
    assert "no JSON object" in errors[0]
    assert "outside the scale 1-5" in errors[1] and scores["reason"][1] == "too high"
    assert "no integer score" in errors[2]
    assert pd.isna(errors[3]) and scores["score"][3] == 3 and not scores["passed"][3]
    assert scores["score"][:3].isna().all() and scores["passed"][:3].isna().all()


async def test_the_key_is_scrubbed_from_rows_and_exports(
    fake_chat: FakeChat, tmp_path: Path
) -> None:
    fake_chat.answer = lambda body, attempt: json.dumps(
        {"score": 1, "reason": f"the key {SENTINEL_KEY} leaked"}
    )
    c = client(fake_chat, tmp_path)
    scores = await judge_turns(Judge(RUBRIC), table([turn(1, 1, "hi")]), None, c)
    await c.aclose()
    assert scores["reason"][0] == "the key [redacted] leaked"
    scores.to_parquet(tmp_path / "scores.parquet")
    scores.to_csv(tmp_path / "scores.csv")
    for path in (tmp_path / "scores.parquet", tmp_path / "scores.csv"):
        assert SENTINEL_KEY.encode() not in path.read_bytes()
    assert SENTINEL_KEY not in repr(Judge(RUBRIC, api_key=SENTINEL_KEY, base_url="http://x"))


async def test_the_judge_sees_speech_tools_and_session(fake_chat: FakeChat, tmp_path: Path) -> None:
    rows = [
        turn(1, 1, "It is sunny in Paris.", kind="audio", prompt="[audio: 1.2 s]",
             heard="what's the weather in paris", tools=["get_weather"], tool_calls=1,
             started_ms=100.0, ended_ms=900.0),
    ]  # fmt: skip

    class FakeRun:
        session = {"instructions": "You are a weather bot.", "voice": "Clive",
                   "tools": [{"type": "function", "name": "get_weather"}]}  # fmt: skip
        events = [
            {"direction": "server", "t_ms": 400.0, "event": {"type": "response.done", "response": {
                "id": "r1", "output": [{"type": "function_call", "name": "get_weather",
                                        "call_id": "c1", "arguments": '{"city":"Paris"}'}]}}},
            {"direction": "client", "t_ms": 410.0, "event": {"type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": "c1",
                         "output": '{"sky":"sunny"}'}}},
            {"direction": "server", "t_ms": 5000.0, "event": {"type": "response.done", "response": {
                "id": "r9", "output": [{"type": "function_call", "name": "later",
                                        "call_id": "c9", "arguments": "{}"}]}}},
        ]  # fmt: skip

    FakeRun.rows = rows  # type: ignore[attr-defined]
    meta = run_context(FakeRun())
    assert meta["tools"] == {
        1: [{"name": "get_weather", "arguments": '{"city":"Paris"}', "output": '{"sky":"sunny"}'}]
    }
    c = client(fake_chat, tmp_path)
    await judge_turns(Judge(RUBRIC), table(rows), {1: meta}, c)
    await c.aclose()
    prompt = judged_prompt(fake_chat.bodies[0])
    assert "user (spoken; the service heard): what's the weather in paris" in prompt
    assert 'tool call: get_weather({"city":"Paris"}) -> {"sky":"sunny"}' in prompt
    assert "agent: It is sunny in Paris." in prompt
    assert "instructions: You are a weather bot." in prompt and "voice: Clive" in prompt
    assert "tools: get_weather" in prompt and "later" not in prompt


async def test_a_set_read_back_from_parquet_is_judged_the_same(
    fake_chat: FakeChat, tmp_path: Path
) -> None:
    fake_chat.answer = scorer
    runs = Runs(Script(["question 1", "question 2"]), {"A": {}, "B": {}}, 1)
    for index, variant in ((1, "A"), (2, "B")):
        run = Run(variant=variant, repeat=1, index=index, seed=index, fields={},
                     session={"voice": variant}, status="completed")  # fmt: skip
        run.rows = [
            turn(index, n, "vegetarian" if n == 2 else "hi", variant=variant) for n in (1, 2)
        ]
        runs.runs.append(run)
    runs.to_parquet(tmp_path / "set")
    back = Runs.read_parquet(tmp_path / "set")
    meta = {r.index: run_context(r) for r in back.runs}
    assert meta[1]["session"] == {"voice": "A"}
    c = client(fake_chat, tmp_path)
    await judge_turns(Judge(RUBRIC), runs.turns(), {r.index: run_context(r) for r in runs.runs}, c)
    read = await judge_turns(Judge(RUBRIC), back.turns(), meta, c)
    await c.aclose()
    assert fake_chat.requests == 4 and read["cached"].all()  # the very same requests
    assert list(read["score"]) == [2, 5, 2, 5]


async def test_concurrency_bound_holds_across_a_table(fake_chat: FakeChat, tmp_path: Path) -> None:
    fake_chat.delay_s = 0.03
    turns = table([turn(r, 1, f"reply {r}") for r in range(1, 21)])
    c = client(fake_chat, tmp_path, concurrency=4)
    await judge_turns(Judge(RUBRIC), turns, None, c)
    await c.aclose()
    assert fake_chat.max_in_flight == 4 and fake_chat.requests == 20


async def test_the_judge_uses_its_own_endpoint(fake_chat: FakeChat, tmp_path: Path) -> None:
    judge = Judge(RUBRIC, base_url=fake_chat.base_url, api_key=SENTINEL_KEY, cache=False)
    scores = await judge_turns(judge, table([turn(1, 1, "hi")]))
    assert fake_chat.requests == 1 and scores["score"][0] == 4
    with pytest.raises(ValueError, match="the judge has no endpoint"):
        await judge_turns(Judge(RUBRIC), table([turn(1, 1, "hi")]))


def test_pass_at_defaults_to_three_quarters_up_the_scale() -> None:
    assert Judge(RUBRIC).pass_at == 4
    assert Judge(RUBRIC, scale=(1, 10)).pass_at == 8
    assert Judge(RUBRIC, scale=(0, 1)).pass_at == 1
    assert Judge(RUBRIC, pass_at=3).pass_at == 3


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"scale": (5, 1)}, "scale"),
        ({"scale": (1, 2, 3)}, "scale"),
        ({"pass_at": 6}, "pass_at"),
        ({"per": "call"}, "per"),
        ({"model": ""}, "model"),
        ({"concurrency": 0}, "concurrency"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Judge(RUBRIC, **kwargs)


def test_a_table_without_the_turns_columns_is_refused() -> None:
    with pytest.raises(ValueError, match="run, turn"):
        asyncio.run(judge_turns(Judge(RUBRIC), pd.DataFrame({"variant": ["A"], "repeat": [1]})))


# --- runs.judge(): on a live set (the widget's endpoint and key), on a set read back, saved
# with the set, in the summary and in expect() ------------------------------------------------


def judge_or_call(body: dict[str, Any], attempt: int) -> str:
    """The fake model: a caller that says two lines and is done; a judge that scores 5 when
    the agent's words hold 'line 2' (else 2) and quotes the key, which must be scrubbed."""
    system = body["messages"][0]["content"]
    if system.startswith(JUDGE_MARKER):
        judged = judged_prompt(body).split("## Judged", 1)[1]
        good = "line 2" in judged
        why = "said line 2" if good else "no line 2"
        return json.dumps({"score": 5 if good else 2, "reason": f"{why} ({SENTINEL_KEY})"})
    said = sum(1 for m in body["messages"] if m["role"] == "assistant")
    if said >= 2:
        return json.dumps({"say": "Bye.", "goal_met": True})
    return json.dumps({"say": f"line {said + 1}", "goal_met": False})


async def caller_runs(widget: Any, tmp_path: Path) -> Runs:
    from realtime_widget import Caller

    caller = Caller("A regular.", "Ask twice.", speak=False, cache=tmp_path / "cache")
    # the variants differ in instructions, which the judge is shown: no two requests are alike
    variants = {"A": {"instructions": "Be brief."}, "B": {"instructions": "Be kind."}}
    return await widget.run_script(caller, variants=variants, progress=False)


async def test_runs_judge_uses_the_widgets_endpoint_and_keeps_the_rows(
    fake_chat: FakeChat, widget: Any, tmp_path: Path
) -> None:
    from realtime_widget import Judge as TopJudge

    assert TopJudge is Judge
    fake_chat.answer = judge_or_call
    runs = await caller_runs(widget, tmp_path)
    asked = fake_chat.requests
    per_turn = Judge(RUBRIC, name="line2", cache=tmp_path / "cache")
    scores = await runs.judge(per_turn)
    assert fake_chat.requests == asked + 4 and fake_chat.auth[-1] == f"Bearer {SENTINEL_KEY}"
    assert list(scores.columns) == list(JUDGE_COLUMNS)
    assert scores.score.tolist() == [2, 5, 2, 5] and scores.passed.tolist() == [False, True] * 2
    assert all(SENTINEL_KEY not in r and "[redacted]" in r for r in scores.reason)
    joined = runs.turns().merge(scores, on=["run", "turn"], suffixes=("", "_judged"))
    assert joined.said.tolist() == ["line 1", "line 2"] * 2
    whole = await runs.judge(Judge("The run said line 2.", per="run", name="run", cache=False))
    assert whole.turn.isna().all() and whole.score.tolist() == [5, 5]
    # judging again sends nothing and replaces the judge's rows rather than adding to them
    asked = fake_chat.requests
    again = await runs.judge(per_turn)
    assert fake_chat.requests == asked and again.cached.all()
    assert sorted(runs.judged.judge.value_counts().items()) == [("line2", 4), ("run", 2)]
    summary = runs.summary()
    assert summary.loc["A", "line2_score"] == pytest.approx(3.5)
    assert summary.loc["A", "line2_pass_rate"] == pytest.approx(0.5)
    assert summary.loc["B", "run_score"] == 5 and "line2_errors" not in summary
    runs.expect(turn=2).judged(per_turn).judged("run", at_least=5)
    with pytest.raises(AssertionError) as failed:
        runs.expect(turn=1).judged(per_turn, at_least=4)
    message = str(failed.value)
    assert "judged('line2', at_least=4): 2 of 2 run(s) failed" in message
    assert "variant='A' repeat=1 turn=1: score=2 reason='no line 2 ([redacted])'" in message
    with pytest.raises(AssertionError, match="no judgement by 'other'"):
        runs.expect(turn=1).judged("other")


async def test_judged_rows_are_saved_with_the_set_and_a_read_back_set_is_judged(
    fake_chat: FakeChat, widget: Any, tmp_path: Path
) -> None:
    fake_chat.answer = judge_or_call
    runs = await caller_runs(widget, tmp_path)
    judge = Judge(RUBRIC, name="line2", cache=tmp_path / "cache")
    await runs.judge(judge)
    saved = runs.to_parquet(tmp_path / "set")
    back = Runs.read_parquet(saved)
    pd.testing.assert_frame_equal(back.judged, runs.judged)
    assert back.summary().loc["B", "line2_pass_rate"] == pytest.approx(0.5)
    back.expect(turn=2).judged(judge)
    # a set read back has no widget: the judge needs an endpoint, and says so
    with pytest.raises(ValueError, match="base_url= and api_key="):
        await back.judge(Judge(RUBRIC, name="fresh", cache=False))
    with pytest.raises(ValueError, match="without its api_key"):
        await back.judge(Judge(RUBRIC, cache=False), base_url=fake_chat.base_url)
    asked = fake_chat.requests
    read = await back.judge(judge, base_url=fake_chat.base_url, api_key=SENTINEL_KEY)
    assert fake_chat.requests == asked and read.cached.all()  # the same requests as before
    # the key is in no file of the set, nor in any export of the judged rows
    for path in saved.rglob("*"):
        if path.is_file():
            assert SENTINEL_KEY.encode() not in path.read_bytes(), path
    runs.judged.to_csv(tmp_path / "judged.csv")
    assert SENTINEL_KEY not in (tmp_path / "judged.csv").read_text()


async def test_an_unreadable_judgement_fails_expect_with_its_error(
    fake_chat: FakeChat, widget: Any, tmp_path: Path
) -> None:
    fake_chat.answer = judge_or_call
    runs = await caller_runs(widget, tmp_path)
    fake_chat.answer = lambda body, attempt: "I would rather not say."
    judge = Judge(RUBRIC, name="shy", cache=False)
    scores = await runs.judge(judge)
    assert scores.score.isna().all() and scores.error.str.contains("no JSON object").all()
    assert runs.summary().loc["A", "shy_errors"] == 2
    with pytest.raises(
        AssertionError, match="score=none reason='' error=\"the model's reply holds no JSON object"
    ):
        runs.expect(turn=1).judged(judge)


async def test_a_grid_with_conditions_is_judged_per_variant_and_condition(
    fake_chat: FakeChat, tmp_path: Path
) -> None:
    """Judged rows carry the run's condition, and the summary's judge columns are per variant x
    condition; ``expect()`` and ``listen()`` pick a condition by name."""
    fake_chat.answer = scorer
    grid = {"clean": None, "cafe": None}
    runs = Runs(Script(["a"]), {"A": {}, "B": {}}, 1, conditions=grid)
    said = {("A", "clean"): "vegetarian risotto", ("A", "cafe"): "steak"}
    for i, (v, c) in enumerate([(v, c) for v in ("A", "B") for c in grid], 1):
        run = Run(v, 1, i, 0, {}, condition=c)
        run.rows = [turn(i, 1, said.get((v, c), "vegetarian soup"), variant=v, condition=c)]
        runs.runs.append(run)
    runs._finish()
    scores = await runs.judge(Judge(RUBRIC, name="veg"), client=client(fake_chat, tmp_path))
    assert scores.condition.tolist() == ["clean", "cafe", "clean", "cafe"]
    summary = runs.summary()
    assert summary.loc[("A", "clean"), "veg_score"] == 5
    assert summary.loc[("A", "cafe"), "veg_score"] == 2
    assert summary.loc[("A", "cafe"), "veg_pass_rate"] == 0.0
    assert summary.loc[("B", "cafe"), "veg_pass_rate"] == 1.0
    runs.expect(turn=1, condition="clean").judged("veg", at_least=5)
    with pytest.raises(AssertionError) as failed:
        runs.expect(turn=1, variant="A").judged("veg", at_least=5)
    assert "1 of 2 run(s) failed" in str(failed.value)
    assert "variant='A' repeat=1 condition='cafe' turn=1" in str(failed.value)
    with pytest.raises(ValueError, match=r"condition must be one of \['clean', 'cafe'\]; got 'x'"):
        runs.expect(turn=1, condition="x")
    with pytest.raises(ValueError, match="condition must be one of"):
        runs.listen(condition="noisy")
    assert runs.listen().condition == "clean"  # the grid's first, by default
    assert runs.listen(condition="cafe").condition == "cafe"
