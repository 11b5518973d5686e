"""The simulated caller against a fake chat endpoint: its prompt, the opening, how it ends
(goal, max_turns, error), the seed passed on, and its speech."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from realtime_widget.experiments.caller import CALLER_MARKER, Caller
from realtime_widget.experiments.models import ModelClient
from tests.unit.fake_chat import SENTINEL_KEY, FakeChat, fake_chat

__all__ = ["fake_chat"]

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
