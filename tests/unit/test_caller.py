"""The simulated caller against a fake chat endpoint: its prompt, the opening, how it ends
(goal, max_turns, error), the seed passed on, and its speech."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from realtime_widget.evaluate._caller import CALLER_MARKER, Caller
from realtime_widget.evaluate._models import ModelClient
from tests.helpers.fake_chat import SENTINEL_KEY, FakeChat, fake_chat, widget

__all__ = ["fake_chat", "widget"]

PERSONA = "A hurried traveller at the station, polite but short."
GOAL = "Book a table for two at 8 pm at a vegetarian place."


def client(server: FakeChat, tmp_path: Path) -> ModelClient:
    return ModelClient(server.base_url, SENTINEL_KEY, cache=tmp_path / "cache")


async def test_each_turn_comes_from_the_model_given_the_conversation(
    fake_chat: FakeChat, tmp_path: Path
) -> None:
    fake_chat.answer = lambda body, attempt: json.dumps(
        {"say": "For two, please.", "goal_met": False}
    )
    caller = Caller(PERSONA, GOAL, seed=7)
    c = client(fake_chat, tmp_path)
    history = [("caller", "Hi, dinner near the station?"), ("agent", "Sure. For how many?")]
    turn = await caller.next_turn(history, client=c)
    await c.aclose()
    assert (turn.text, turn.done, turn.ended_by) == ("For two, please.", False, None)
    body = fake_chat.bodies[0]
    system = body["messages"][0]["content"]
    assert system.startswith(CALLER_MARKER) and PERSONA in system and f"Goal: {GOAL}" in system
    # the model plays the user: its own lines are "assistant", the agent's are "user"
    assert [m["role"] for m in body["messages"][1:]] == ["user", "assistant", "user"]
    assert body["messages"][-1]["content"] == "Sure. For how many?"
    assert body["seed"] == 7 and body["response_format"]["type"] == "json_schema"


async def test_the_opening_and_max_turns_need_no_model(fake_chat: FakeChat, tmp_path: Path) -> None:
    caller = Caller(PERSONA, GOAL, opening="Hi, I need dinner.", max_turns=2)
    first = await caller.next_turn([])
    assert (first.text, first.done) == ("Hi, I need dinner.", False)
    history = [{"role": "caller", "text": "a"}, {"role": "agent", "text": "b"}] * 2
    last = await caller.next_turn(history)
    assert last.done and last.ended_by == "max_turns" and not last.goal_met
    assert fake_chat.requests == 0


async def test_it_ends_when_the_model_says_the_goal_is_met(
    fake_chat: FakeChat, tmp_path: Path
) -> None:
    fake_chat.answer = lambda body, attempt: json.dumps({"say": "Thanks, bye.", "goal_met": True})
    c = client(fake_chat, tmp_path)
    turn = await Caller(PERSONA, GOAL).next_turn([("agent", "Booked for 8 pm.")], client=c)
    await c.aclose()
    assert turn.done and turn.goal_met and turn.ended_by == "goal" and turn.text == "Thanks, bye."


@pytest.mark.parametrize(
    "answer", ["I am not sure what to say.", json.dumps({"say": "  ", "goal_met": False})]
)
async def test_an_unusable_answer_ends_it_with_an_error(
    fake_chat: FakeChat, tmp_path: Path, answer: str
) -> None:
    fake_chat.answer = lambda body, attempt: answer
    c = client(fake_chat, tmp_path)
    turn = await Caller(PERSONA, GOAL).next_turn([], client=c)
    await c.aclose()
    assert turn.done and turn.ended_by == "error" and turn.error


async def test_a_repeat_with_the_same_seed_asks_the_same_thing(
    fake_chat: FakeChat, tmp_path: Path
) -> None:
    fake_chat.answer = lambda body, attempt: json.dumps({"say": "Hello.", "goal_met": False})
    caller = Caller(PERSONA, GOAL)
    c = client(fake_chat, tmp_path)
    a = await caller.next_turn([], client=c, seed=11)
    b = await caller.next_turn([], client=c, seed=11)
    await caller.next_turn([], client=c, seed=12)
    await c.aclose()
    assert not a.cached and b.cached and fake_chat.requests == 2
    assert [body["seed"] for body in fake_chat.bodies] == [11, 12]


async def test_its_lines_are_spoken_through_the_speech_endpoint(
    fake_chat: FakeChat, tmp_path: Path
) -> None:
    c = client(fake_chat, tmp_path)
    audio = await Caller(PERSONA, GOAL, voice="Ashley").audio("Table for two.", c)
    await c.aclose()
    assert audio == b"RIFFTable for two." and fake_chat.speech_requests == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"persona": ""}, "persona"),
        ({"goal": " "}, "goal"),
        ({"max_turns": 0}, "max_turns"),
        ({"opening": ""}, "opening"),
        ({"seed": "x"}, "seed"),
        ({"temperature": 3}, "temperature"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"persona": PERSONA, "goal": GOAL, **kwargs}
    with pytest.raises(ValueError, match=field):
        Caller(args.pop("persona"), args.pop("goal"), **args)


async def test_history_entries_are_checked() -> None:
    with pytest.raises(ValueError, match=r"history\[0\]: role"):
        await Caller(PERSONA, GOAL).next_turn([("narrator", "x")])
    with pytest.raises(ValueError, match="the caller has no endpoint"):
        await Caller(PERSONA, GOAL).next_turn([("agent", "Hello")])


# --- the caller played by run_script (a scripted page answers; the fake endpoint is the
# widget's own service, so the widget's endpoint and key are what the caller uses) ---------


def caller_answer(lines: int, *, leak: str = "") -> Any:
    """A stand-in caller model: ``line 1`` ... ``line <lines>``, then the goal is met."""

    def answer(body: dict[str, Any], attempt: int) -> str:
        said = sum(1 for m in body["messages"] if m["role"] == "assistant")
        if said >= lines:
            return json.dumps({"say": "Thanks, that is all.", "goal_met": True})
        return json.dumps({"say": f"line {said + 1}{leak}", "goal_met": False})

    return answer


async def test_a_typed_caller_talks_to_each_variant_until_its_goal_is_met(
    fake_chat: FakeChat, widget: Any, tmp_path: Path
) -> None:
    fake_chat.answer = caller_answer(2)
    caller = Caller(PERSONA, GOAL, speak=False, cache=tmp_path / "cache")
    runs = await widget.run_script(
        caller, variants={"A": {"speed": 1.0}, "B": {"speed": 1.2}}, progress=False
    )
    assert runs.error is None and not runs.cancelled, runs.error
    df = runs.turns()
    assert len(df) == 4 and set(df.kind) == {"caller"} and set(df.status) == {"completed"}
    assert df.said.tolist() == ["line 1", "line 2"] * 2
    assert df.text.tolist() == ["You said: line 1", "You said: line 2"] * 2
    assert df.caller_ms.notna().all() and df.speech_ms.isna().all()  # typed: no speech
    # each line came from the model given what the agent said (its transcript)
    second = fake_chat.bodies[1]["messages"]
    assert second[-2:] == [
        {"role": "assistant", "content": "line 1"},
        {"role": "user", "content": "You said: line 1"},
    ]
    # the run's seed goes with every request; the widget's own key was used
    seeds = {r.index: r.seed for r in runs.runs}
    assert [b["seed"] for b in fake_chat.bodies] == [seeds[1]] * 3 + [seeds[2]] * 3
    assert fake_chat.auth == [f"Bearer {SENTINEL_KEY}"] * 6
    conv = runs.conversations()
    assert conv.ended_by.tolist() == ["goal", "goal"] and conv.goal_met.all()
    assert conv.turns.tolist() == [2, 2] and conv.error.isna().all()
    assert conv.transcript[0] == (
        "caller: line 1\nagent: You said: line 1\ncaller: line 2\nagent: You said: line 2"
    )
    # the caller's lines are local records of the log
    said = widget.events.of_type("caller.turn", direction="local")
    assert [r["event"]["text"] for r in said] == ["line 1", "line 2"] * 2
    ended = widget.events.of_type("caller.ended", direction="local")
    assert [r["event"]["ended_by"] for r in ended] == ["goal", "goal"]
    assert ended[0]["event"]["closing"] == "Thanks, that is all."
    assert "caller" in repr(runs.script).lower() and SENTINEL_KEY not in repr(runs.script)


async def test_a_caller_stops_at_max_turns_or_on_an_error(
    fake_chat: FakeChat, widget: Any, tmp_path: Path
) -> None:
    from tests.helpers.fake_chat import failure

    fake_chat.answer = caller_answer(10)
    caller = Caller(PERSONA, GOAL, speak=False, max_turns=3, cache=tmp_path / "cache")
    runs = await widget.run_script(caller, progress=False)
    conv = runs.conversations()
    assert conv.ended_by.tolist() == ["max_turns"] and conv.turns.tolist() == [3]
    assert not conv.goal_met[0] and len(runs.turns()) == 3

    fake_chat.answer = lambda body, attempt: failure(
        400, f"no such model (key {SENTINEL_KEY})", retry_after_ms=None
    )
    runs = await widget.run_script(
        Caller(PERSONA, GOAL, speak=False, opening="Hi there.", cache=False), progress=False
    )
    conv = runs.conversations()
    assert conv.ended_by.tolist() == ["error"] and conv.turns.tolist() == [1]
    assert "HTTP 400" in conv.error[0] and SENTINEL_KEY not in conv.error[0]
    assert runs.turns().said.tolist() == ["Hi there."]  # the opening needs no model
    logged = json.dumps([r["event"] for r in widget.events])
    assert SENTINEL_KEY not in logged


async def test_a_repeat_of_the_grid_asks_the_model_the_same_things(
    fake_chat: FakeChat, widget: Any, tmp_path: Path
) -> None:
    fake_chat.answer = caller_answer(1)
    caller = Caller(PERSONA, GOAL, speak=False, cache=tmp_path / "cache")
    first = await widget.run_script(caller, variants={"A": {}}, repeat=2, progress=False)
    sent = fake_chat.requests
    again = await widget.run_script(caller, variants={"A": {}}, repeat=2, progress=False)
    assert sent == 4 and fake_chat.requests == sent  # the same seeds: all from the cache
    assert again.turns().said.tolist() == first.turns().said.tolist() == ["line 1"] * 2
    cached = [r["event"]["cached"] for r in widget.events.of_type("caller.turn")]
    assert cached == [False, False, True, True]
    # repeats differ in seed, so each asked the model itself
    assert len({r.seed for r in first.runs}) == 2


async def test_a_caller_set_reads_back_with_its_lines_and_endings(
    fake_chat: FakeChat, widget: Any, tmp_path: Path
) -> None:
    from realtime_widget import Runs

    fake_chat.answer = caller_answer(2)
    runs = await widget.run_script(Caller(PERSONA, GOAL, speak=False, cache=False), progress=False)
    back = Runs.read_parquet(runs.to_parquet(tmp_path / "set"))
    assert back.turns().said.tolist() == ["line 1", "line 2"]
    assert back.conversations().drop(columns=[]).equals(runs.conversations())
    manifest = json.loads((tmp_path / "set" / "_runs.json").read_text())
    assert manifest["script"][0]["kind"] == "caller"
    assert manifest["script"][0]["caller"]["goal"] == GOAL
    assert SENTINEL_KEY not in (tmp_path / "set" / "_runs.json").read_text()


async def test_without_a_speech_endpoint_the_lines_are_spoken_by_espeak(
    fake_chat: FakeChat, widget: Any, tmp_path: Path
) -> None:
    fake_chat.answer = caller_answer(5)
    fake_chat.no_speech = True
    caller = Caller(PERSONA, GOAL, speak=True, max_turns=2, cache=False)
    # the scripted page plays no audio, so each spoken turn times out: its row says so
    runs = await widget.run_script(caller, timeout=0.5, progress=False)
    fallback = widget.events.of_type("caller.speech_fallback", direction="local")
    assert len(fallback) == 1 and "HTTP 404" in fallback[0]["event"]["reason"]
    assert fake_chat.speech_requests == 1  # given up for the grid after the first failure
    lines = widget.events.of_type("caller.turn", direction="local")
    assert [r["event"]["speech"] for r in lines] == ["espeak-ng", "espeak-ng"]
    df = runs.turns()
    assert df.prompt.tolist() == ["(spoken) line 1", "(spoken) line 2"]
    assert df.speech_ms.isna().all() and df.error.notna().all()
    assert runs.conversations().ended_by.tolist() == ["max_turns"]


def test_the_agents_words_are_final_once_a_response_ends_without_a_tool_call() -> None:
    from realtime_widget.evaluate._caller import AgentWords

    heard: list[str] = []
    words = AgentWords(2, heard.append)
    tool_call = {"type": "function_call", "name": "get_menu", "call_id": "c1"}
    for event, call in [
        ({"type": "response.output_audio_transcript.delta", "response_id": "r0", "delta": "x"}, 1),
        ({"type": "response.output_audio_transcript.delta", "response_id": "r1", "delta": "Let"}, 2),
        (
            {"type": "response.done", "response": {"id": "r1", "status": "completed",
                                                   "output": [tool_call]}},
            2,
        ),  # a tool's answer comes next: not final yet
        ({"type": "response.output_text.delta", "response_id": "r2", "delta": "Soup."}, 2),
        ({"type": "response.done", "response": {"id": "r2", "status": "completed"}}, 2),
        ({"type": "response.output_text.delta", "response_id": "r3", "delta": "late"}, 2),
    ]:  # fmt: skip
        words.hear("server", event, 0.0, call)
    assert heard == ["Let Soup."] and words.final == "Let Soup."


async def test_the_next_line_is_asked_for_while_the_agents_reply_still_plays(
    fake_chat: FakeChat, widget: Any, tmp_path: Path
) -> None:
    from tests.helpers.service_page import ServicePage

    ServicePage(widget, threaded=True, delay_s=0.01)  # records arrive from another thread
    fake_chat.answer = caller_answer(2)
    runs = await widget.run_script(
        Caller(PERSONA, GOAL, speak=False, cache=False), variants={"A": {}, "B": {}},
        progress=False,
    )  # fmt: skip
    # asked ahead, each line still saw the agent's whole answer, and nothing was asked twice
    assert fake_chat.requests == 6
    for body in fake_chat.bodies[1::3]:
        assert body["messages"][-1] == {"role": "user", "content": "You said: line 1"}
    assert runs.turns().said.tolist() == ["line 1", "line 2"] * 2
    assert runs.conversations().ended_by.tolist() == ["goal", "goal"]


async def test_a_stopped_grid_says_its_runs_were_cancelled(
    fake_chat: FakeChat, widget: Any, tmp_path: Path
) -> None:
    import asyncio

    from tests.helpers.service_page import ServicePage

    ServicePage(widget, silent=("line 2",))  # the agent never answers the second line
    fake_chat.answer = caller_answer(3)
    runs = widget.run_script(Caller(PERSONA, GOAL, speak=False, cache=False), progress=False)
    while len(widget.events.of_type("caller.turn")) < 2:
        await asyncio.sleep(0.01)
    runs.cancel()
    await runs
    conv = runs.conversations()
    assert conv.ended_by.tolist() == ["cancelled"] and conv.goal_met.isna().all()
    assert runs.turns().status.tolist() == ["completed", "cancelled"]
    assert not widget.events.of_type("caller.ended")


def test_a_spoken_line_plays_under_the_runs_condition() -> None:
    """A spoken line goes through the run's condition, as a script's spoken turns do: the speech
    endpoint's audio, or espeak-ng's; a typed line and a clean run are left as they are."""
    from types import SimpleNamespace

    import numpy as np

    from realtime_widget._audio import ESPEAK_VOICE, array_wav, synthesize
    from realtime_widget.evaluate._caller import CallerLine
    from realtime_widget.media._conditions import Condition, conditioned_clip

    asked: list[dict[str, Any]] = []
    w = SimpleNamespace(ask=lambda *a, **kw: asked.append({"args": a, **kw}))
    cafe = Condition(noise="white", snr_db=10, name="cafe")
    ctx = SimpleNamespace(session=w, timeout=5.0, run=SimpleNamespace(seed=7), condition=cafe)
    tone = (0.3 * np.sin(np.arange(16_000) * 0.05)).astype(np.float32)
    wav = array_wav(tone, 16_000)
    CallerLine("Table for two.", speak=True, audio=wav).send(ctx)  # type: ignore[arg-type]
    assert asked[-1]["audio"] == conditioned_clip(cafe, wav, "audio/wav")[0] != wav
    clean = SimpleNamespace(session=w, timeout=5.0, run=SimpleNamespace(seed=7), condition=None)
    CallerLine("Table for two.", speak=True, audio=wav).send(clean)  # type: ignore[arg-type]
    assert asked[-1]["audio"] == wav
    CallerLine("Table for two.", speak=False).send(ctx)  # type: ignore[arg-type]
    assert asked[-1]["args"] == ("Table for two.",) and "audio" not in asked[-1]
    CallerLine("Table for two.", speak=True).send(ctx)  # type: ignore[arg-type]
    spoken = synthesize("Table for two.", voice=ESPEAK_VOICE)  # espeak-ng: the same every time
    assert asked[-1]["audio"] == conditioned_clip(cafe, spoken, "audio/wav")[0]
    CallerLine("Table for two.", speak=True).send(clean)  # type: ignore[arg-type]
    assert asked[-1]["spoken"] is True  # no condition: the widget speaks it itself
