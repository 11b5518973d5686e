"""The emulator's OpenAI-compatible endpoints: POST /v1/chat/completions (its stand-in judge and
caller, the chat_responder hook, the chat_delay_ms knob) and POST /v1/audio/speech. No peer
connection is opened; run them in the namespace anyway, as every emulator test."""

from __future__ import annotations

import asyncio
import io
import json
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from realtime_widget.emulator import Emulator
from realtime_widget.emulator._chat import (
    CALLER_DONE,
    CALLER_MARKER,
    JUDGE_MARKER,
    goal_steps,
    stand_in_judgement,
)
from realtime_widget.evaluate import _caller as caller_module
from realtime_widget.evaluate import _judge as judge_module
from realtime_widget.evaluate._caller import Caller
from realtime_widget.evaluate._judge import Judge, judge_turns
from realtime_widget.evaluate._models import ModelClient
from tests.helpers.emu_checks import FAST

RUBRIC = "The agent offers a vegetarian option and asks at most one question."


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(**FAST) as emulator:
        yield emulator


def post(emu: Emulator, path: str, body: Any, *, auth: str | None = "Bearer") -> httpx.Response:
    headers = {"Authorization": f"{auth} {emu.api_key}"} if auth else {}
    return httpx.post(f"{emu.base_url}{path}", json=body, headers=headers, timeout=30)


def chat(model: str = "openai/gpt-4.1-mini", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Hello there"}], **extra}


def test_the_markers_are_the_products_own() -> None:
    # the stand-in recognises the judge's and caller's prompts by their first line
    assert JUDGE_MARKER == judge_module.JUDGE_MARKER
    assert CALLER_MARKER == caller_module.CALLER_MARKER


def test_chat_completions_answer_in_openais_shape(emu: Emulator) -> None:
    for scheme in ("Bearer", "Basic"):
        r = post(emu, "/v1/chat/completions", chat(), auth=scheme)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "chat.completion" and body["model"] == "openai/gpt-4.1-mini"
        choice = body["choices"][0]
        assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "stop"
        assert choice["message"]["content"] == "Emulated reply to: Hello there"
        assert body["usage"]["total_tokens"] > 0


def test_chat_requires_the_key(emu: Emulator) -> None:
    assert post(emu, "/v1/chat/completions", chat(), auth=None).status_code == 401
    r = httpx.post(
        f"{emu.base_url}/v1/chat/completions", json=chat(), headers={"Authorization": "Bearer no"}
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        (chat(stream=True), "stream"),
        (chat(response_format={"type": "xml"}), "response_format"),
        (chat(response_format={"type": "json_schema"}), "response_format.json_schema"),
        (chat(n=2), "n"),
    ],
)
def test_bad_chat_requests_name_the_field(emu: Emulator, body: Any, param: str) -> None:
    r = post(emu, "/v1/chat/completions", body)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param


def test_structured_output_gets_the_schemas_shape(emu: Emulator) -> None:
    schema = {
        "type": "object",
        "properties": {
            "label": {"type": "string"},
            "n": {"type": "integer"},
            "ok": {"type": "boolean"},
        },
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    r = post(emu, "/v1/chat/completions", chat(response_format=fmt))
    assert json.loads(r.json()["choices"][0]["message"]["content"]) == {
        "label": "emulated",
        "n": 0,
        "ok": False,
    }


def test_the_stand_in_judge_scores_the_rubrics_words() -> None:
    prompt = (
        f"## Rubric\n{RUBRIC}\n\n## Scale\n1 to 5\n\n## Earlier in the conversation\n"
        "user: hi\nagent: any question at all\n\n## Judged: turn 2\nuser: vegetarian?\n"
        "agent: We have a vegetarian option."
    )
    verdict = stand_in_judgement(prompt)
    # vegetarian and option found in the judged agent line; "question" only in the context
    assert verdict["score"] == 1 + round(4 * 2 / 3)
    assert "found 'vegetarian', 'option'" in verdict["reason"]
    assert "missing 'question'" in verdict["reason"]
    assert "not a judgement" in verdict["reason"]
    assert stand_in_judgement(prompt.replace("We have a vegetarian option.", "No."))["score"] == 1


async def test_a_judge_runs_end_to_end_on_the_emulator(emu: Emulator, tmp_path: Path) -> None:
    turns = pd.DataFrame(
        [
            {"variant": "A", "repeat": 1, "run": 1, "turn": 1, "kind": "text", "prompt": "Hi",
             "text": "Hello! Any question about our vegetarian option?", "tools": []},
            {"variant": "B", "repeat": 1, "run": 2, "turn": 1, "kind": "text", "prompt": "Hi",
             "text": "We serve steak.", "tools": []},
        ]
    )  # fmt: skip
    client = ModelClient(emu.base_url, emu.api_key, cache=tmp_path)
    scores = await judge_turns(Judge(RUBRIC), turns, None, client)
    again = await judge_turns(Judge(RUBRIC), turns, None, client)
    await client.aclose()
    assert list(scores["score"]) == [5, 1]
    assert list(scores["passed"]) == [True, False]
    assert scores["error"].isna().all()
    assert client.requests == 2 and again["cached"].all()
    assert emu_chat_requests(emu) == 2
    per_run = ModelClient(emu.base_url, emu.api_key, cache=False)
    whole = await judge_turns(Judge(RUBRIC, per="run"), turns, None, per_run)
    await per_run.aclose()
    assert list(whole["score"]) == [5, 1] and whole["turn"].isna().all()


def emu_chat_requests(emu: Emulator) -> int:
    server = emu._server
    assert server is not None
    return server.chat.requests


async def test_the_stand_in_caller_works_through_its_goal(emu: Emulator, tmp_path: Path) -> None:
    goal = "Book a table for two at 8 pm at a vegetarian place."
    assert goal_steps(goal) == ["Book a table for two.", "At 8 pm.", "At a vegetarian place."]
    caller = Caller("A hurried traveller.", goal, opening="Hi, I need dinner.", max_turns=6)
    client = ModelClient(emu.base_url, emu.api_key, cache=False)
    history: list[tuple[str, str]] = []
    lines = []
    for _ in range(8):
        turn = await caller.next_turn(history, client=client)
        lines.append(turn.text)
        if turn.done:
            break
        history += [("caller", turn.text), ("agent", "Sure.")]
    await client.aclose()
    assert lines == ["Hi, I need dinner.", *goal_steps(goal), CALLER_DONE]
    assert turn.done and turn.goal_met and turn.ended_by == "goal"


async def test_a_caller_with_too_few_turns_ends_at_max_turns(emu: Emulator) -> None:
    caller = Caller("Someone.", "Book a table for two at 8 pm.", max_turns=2)
    client = ModelClient(emu.base_url, emu.api_key, cache=False)
    history: list[tuple[str, str]] = []
    for _ in range(4):
        turn = await caller.next_turn(history, client=client)
        if turn.done:
            break
        history += [("caller", turn.text), ("agent", "Mm?")]
    await client.aclose()
    assert turn.ended_by == "max_turns" and len(history) == 4


def test_the_chat_responder_hook(tmp_path: Path) -> None:
    seen: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []

    def responder(messages: list[dict[str, Any]], request: dict[str, Any]) -> str:
        seen.append((messages, request))
        return f"{len(messages)} message(s) for {request['model']}"

    with Emulator(chat_responder=responder, **FAST) as emu:
        r = post(emu, "/v1/chat/completions", chat(model="local/x", temperature=0))
    assert r.json()["choices"][0]["message"]["content"] == "1 message(s) for local/x"
    assert seen[0][0] == [{"role": "user", "content": "Hello there"}]
    assert seen[0][1]["temperature"] == 0

    async def slow(messages: list[dict[str, Any]], request: dict[str, Any]) -> str:
        await asyncio.sleep(0.01)
        return "async answer"

    with Emulator(chat_responder=slow, **FAST) as emu:
        r = post(emu, "/v1/chat/completions", chat())
    assert r.json()["choices"][0]["message"]["content"] == "async answer"

    with Emulator(chat_responder=lambda m, r: 42, **FAST) as emu:  # type: ignore[arg-type,return-value]
        r = post(emu, "/v1/chat/completions", chat())
    assert r.status_code == 500 and "returned int, not str" in r.json()["error"]["message"]


def test_chat_delay_ms_holds_each_answer() -> None:
    with pytest.raises(ValueError, match="chat_delay_ms"):
        Emulator(chat_delay_ms=-1)
    with Emulator(chat_delay_ms=400, **FAST) as emu:
        post(emu, "/v1/chat/completions", chat())  # the first request also opens a connection
        t0 = time.perf_counter()
        post(emu, "/v1/chat/completions", chat())
        held = time.perf_counter() - t0
        emu.configure(chat_delay_ms=0)
        t0 = time.perf_counter()
        post(emu, "/v1/chat/completions", chat())
        plain = time.perf_counter() - t0
    assert held >= 0.4 and plain < held - 0.2


def speech(**extra: Any) -> dict[str, Any]:
    return {
        "model": "inworld-tts-1",
        "input": "Table for two at eight.",
        "voice": "Dennis",
        **extra,
    }


@pytest.mark.parametrize("tts", ["espeak", "formant"])
def test_speech_is_a_wav_or_raw_pcm_at_24_khz(tts: str) -> None:
    with Emulator(**{**FAST, "tts": tts, "speech_rate": 15.0}) as emu:
        wav = post(emu, "/v1/audio/speech", speech())
        pcm = post(emu, "/v1/audio/speech", speech(response_format="pcm"))
        other = post(emu, "/v1/audio/speech", speech(voice="Ashley"))
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(wav.content)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24_000)
        frames = w.readframes(w.getnframes())
        assert 0.5 < w.getnframes() / 24_000 < 5  # a short sentence
    assert pcm.headers["content-type"] == "audio/pcm" and len(pcm.content) % 2 == 0
    assert abs(len(pcm.content) - len(frames)) <= 0.05 * len(frames)  # the same line, raw
    assert (
        max(
            abs(int.from_bytes(frames[i : i + 2], "little", signed=True))
            for i in range(0, len(frames), 2)
        )
        > 1000
    )
    assert other.content != wav.content  # another voice sounds different


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (speech(input=""), "input"),
        (speech(input="x" * 5000), "input"),
        (speech(model=""), "model"),
        (speech(voice=""), "voice"),
        (speech(response_format="mp3"), "response_format"),
        (speech(speed=9), "speed"),
    ],
)
def test_bad_speech_requests_name_the_field(emu: Emulator, body: Any, param: str) -> None:
    r = post(emu, "/v1/audio/speech", body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_speech_requires_the_key(emu: Emulator) -> None:
    assert post(emu, "/v1/audio/speech", speech(), auth=None).status_code == 401


async def test_a_callers_line_is_spoken_by_the_emulator(emu: Emulator, tmp_path: Path) -> None:
    client = ModelClient(emu.base_url, emu.api_key, cache=tmp_path)
    audio = await Caller("Someone.", "Dinner.").audio("Table for two, please.", client)
    await client.aclose()
    with wave.open(io.BytesIO(audio)) as w:
        assert w.getframerate() == 24_000 and w.getnframes() > 0
