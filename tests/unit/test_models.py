"""The model client: concurrency bound, the SDK's retries, the disk cache, structured output
and its fallback, tolerant parsing, speech, and the key scrubbed (against a fake endpoint)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from realtime_widget.evaluate._models import ModelClient, ModelError, first_json_object
from tests.helpers.fake_chat import SENTINEL_KEY, FakeChat, failure, fake_chat

__all__ = ["fake_chat"]  # the fixture, imported for pytest

SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer"}},
    "required": ["score"],
    "additionalProperties": False,
}


def client(server: FakeChat, tmp_path: Path, **kw: Any) -> ModelClient:
    kw.setdefault("cache", tmp_path / "cache")
    return ModelClient(server.base_url, SENTINEL_KEY, **kw)


def ask(n: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"question {n}"}]


async def test_requests_run_concurrently_under_the_bound(
    fake_chat: FakeChat, tmp_path: Path
) -> None:
    fake_chat.delay_s = 0.05
    c = client(fake_chat, tmp_path, concurrency=3)
    replies = await asyncio.gather(*(c.chat_json(ask(i), model="m") for i in range(12)))
    await c.aclose()
    assert fake_chat.requests == 12
    assert fake_chat.max_in_flight == 3  # the bound is reached and never passed
    assert all(r.error is None and r.data == {"score": 4, "reason": "fine"} for r in replies)


async def test_429_and_500_are_retried_with_backoff(fake_chat: FakeChat, tmp_path: Path) -> None:
    def answer(body: dict[str, Any], attempt: int) -> Any:
        if attempt == 0:
            return failure(429, "slow down")
        if attempt == 1:
            return failure(500, "oops")
        return json.dumps({"score": 5})

    fake_chat.answer = answer
    c = client(fake_chat, tmp_path, max_retries=3)
    reply = await c.chat_json(ask(1), model="m")
    await c.aclose()
    assert reply.error is None and reply.data == {"score": 5}
    assert fake_chat.requests == 3  # 429, 500, then the answer: the SDK retried twice
    assert c.requests == 1  # one request of ours


async def test_a_failure_past_the_retries_is_an_error_reply(
    fake_chat: FakeChat, tmp_path: Path
) -> None:
    fake_chat.answer = lambda body, attempt: failure(503, "the model is overloaded")
    c = client(fake_chat, tmp_path, max_retries=1)
    reply = await c.chat_json(ask(1), model="m")
    await c.aclose()
    assert fake_chat.requests == 2
    assert reply.data is None and reply.text is None
    assert reply.error is not None and "HTTP 503" in reply.error and "overloaded" in reply.error
    # a failure is not cached: asking again goes out again
    c2 = client(fake_chat, tmp_path, max_retries=0)
    await c2.chat_json(ask(1), model="m")
    await c2.aclose()
    assert fake_chat.requests == 3


async def test_the_cache_answers_the_same_request_with_no_request(
    fake_chat: FakeChat, tmp_path: Path
) -> None:
    c = client(fake_chat, tmp_path)
    first = await c.chat_json(ask(1), model="m", params={"temperature": 0})
    again = await c.chat_json(ask(1), model="m", params={"temperature": 0})
    await c.aclose()
    fresh = client(fake_chat, tmp_path)  # a new client (a new kernel) reads the same files
    third = await fresh.chat_json(ask(1), model="m", params={"temperature": 0})
    assert fake_chat.requests == 1
    assert (first.cached, again.cached, third.cached) == (False, True, True)
    assert third.data == first.data and third.latency_ms == first.latency_ms
    # another model, other params, other messages: each is its own entry
    await fresh.chat_json(ask(1), model="other")
    await fresh.chat_json(ask(1), model="m", params={"temperature": 1})
    await fresh.chat_json(ask(2), model="m", params={"temperature": 0})
    await fresh.aclose()
    assert fake_chat.requests == 4
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 4


async def test_cache_false_asks_every_time(fake_chat: FakeChat, tmp_path: Path) -> None:
    c = ModelClient(fake_chat.base_url, SENTINEL_KEY, cache=False)
    for _ in range(2):
        assert not (await c.chat_json(ask(1), model="m")).cached
    await c.aclose()
    assert fake_chat.requests == 2


async def test_identical_requests_in_flight_share_one_answer(
    fake_chat: FakeChat, tmp_path: Path
) -> None:
    fake_chat.delay_s = 0.05
    c = client(fake_chat, tmp_path)
    replies = await asyncio.gather(*(c.chat_json(ask(1), model="m") for _ in range(5)))
    await c.aclose()
    assert fake_chat.requests == 1
    assert sorted(r.cached for r in replies) == [False, True, True, True, True]


async def test_structured_output_is_asked_for(fake_chat: FakeChat, tmp_path: Path) -> None:
    c = client(fake_chat, tmp_path)
    reply = await c.chat_json(ask(1), model="m", schema=SCHEMA, schema_name="judgement")
    await c.aclose()
    fmt = fake_chat.bodies[0]["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "judgement" and fmt["json_schema"]["schema"] == SCHEMA
    assert reply.structured


async def test_an_endpoint_without_structured_output_is_asked_plainly(
    fake_chat: FakeChat, tmp_path: Path
) -> None:
    def answer(body: dict[str, Any], attempt: int) -> Any:
        if "response_format" in body:
            return failure(400, "response_format json_schema is not supported by this model")
        return 'Sure! Here it is:\n```json\n{"score": 3}\n```'

    fake_chat.answer = answer
    c = client(fake_chat, tmp_path)
    first = await c.chat_json(ask(1), model="m", schema=SCHEMA)
    second = await c.chat_json(ask(2), model="m", schema=SCHEMA)
    await c.aclose()
    assert first.data == {"score": 3} and second.data == {"score": 3}
    assert not first.structured
    # one refused request, then plain ones only: the client remembers
    assert ["response_format" in b for b in fake_chat.bodies] == [True, False, False]


async def test_another_400_is_not_retried_plainly(fake_chat: FakeChat, tmp_path: Path) -> None:
    fake_chat.answer = lambda body, attempt: failure(400, "unknown model 'm'")
    c = client(fake_chat, tmp_path)
    reply = await c.chat_json(ask(1), model="m", schema=SCHEMA)
    await c.aclose()
    assert fake_chat.requests == 1
    assert reply.error is not None and "HTTP 400" in reply.error and "unknown model" in reply.error


async def test_an_unreadable_reply_is_an_error_not_an_exception(
    fake_chat: FakeChat, tmp_path: Path
) -> None:
    fake_chat.answer = lambda body, attempt: "I would give it a four, honestly."
    c = client(fake_chat, tmp_path)
    reply = await c.chat_json(ask(1), model="m")
    await c.aclose()
    assert reply.data is None
    assert reply.text == "I would give it a four, honestly."
    assert reply.error is not None and "no JSON object" in reply.error


async def test_an_unreachable_endpoint_is_an_error_reply(tmp_path: Path) -> None:
    c = ModelClient("http://127.0.0.1:9", SENTINEL_KEY, cache=False, max_retries=0, timeout=5)
    reply = await c.chat_json(ask(1), model="m")
    await c.aclose()
    assert reply.error is not None and "could not reach http://127.0.0.1:9/v1" in reply.error


async def test_the_key_is_scrubbed_from_replies_errors_and_the_cache(
    fake_chat: FakeChat, tmp_path: Path
) -> None:
    def answer(body: dict[str, Any], attempt: int) -> Any:
        if body["messages"][0]["content"] == "fail":
            return failure(
                401, f"Invalid API key {SENTINEL_KEY} (escaped: {json.dumps(SENTINEL_KEY)})"
            )
        return json.dumps({"score": 1, "reason": f"your key is {SENTINEL_KEY}"})

    fake_chat.answer = answer
    c = client(fake_chat, tmp_path)
    ok = await c.chat_json(ask(1), model="m")
    bad = await c.chat_json([{"role": "user", "content": "fail"}], model="m")
    await c.aclose()
    assert fake_chat.auth[0] == f"Bearer {SENTINEL_KEY}"  # it was sent, and is nowhere else
    assert ok.data == {"score": 1, "reason": "your key is [redacted]"}
    assert bad.error is not None and "HTTP 401" in bad.error
    for text in (ok.text, bad.error, repr(ok), repr(bad), repr(c)):
        assert SENTINEL_KEY not in str(text)
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert SENTINEL_KEY.encode() not in path.read_bytes()


async def test_basic_auth_sends_the_key_as_inworld_does(
    fake_chat: FakeChat, tmp_path: Path
) -> None:
    c = client(fake_chat, tmp_path, auth_scheme="Basic")
    await c.chat_json(ask(1), model="m")
    await c.aclose()
    assert fake_chat.auth == [f"Basic {SENTINEL_KEY}"]


async def test_speech_returns_the_audio_and_is_cached(fake_chat: FakeChat, tmp_path: Path) -> None:
    c = client(fake_chat, tmp_path)
    first = await c.speech("Hello there", voice="Dennis", model="tts")
    second = await c.speech("Hello there", voice="Dennis", model="tts")
    other = await c.speech("Hello there", voice="Ashley", model="tts")
    await c.aclose()
    assert first == second == b"RIFFHello there" == other
    assert fake_chat.speech_requests == 2  # Dennis once (then cached), Ashley once


async def test_a_speech_failure_raises_a_scrubbed_model_error(tmp_path: Path) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return failure(404, f"no speech here for {SENTINEL_KEY}", retry_after_ms=None)

    app = web.Application()
    app.router.add_post("/v1/audio/speech", refuse)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    c = ModelClient(url, SENTINEL_KEY, cache=False)
    try:
        with pytest.raises(ModelError) as caught:
            await c.speech("Hi", voice="Dennis", model="tts")
    finally:
        await c.aclose()
        await runner.cleanup()
    assert "HTTP 404" in str(caught.value) and SENTINEL_KEY not in str(caught.value)


def test_bad_arguments_name_the_field() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        ModelClient("http://127.0.0.1:1", "k", concurrency=0)
    with pytest.raises(ValueError, match="base_url"):
        ModelClient("127.0.0.1:1", "k")
    with pytest.raises(ValueError, match="api_key"):
        ModelClient("http://127.0.0.1:1", "")
    with pytest.raises(ValueError, match="auth_scheme"):
        ModelClient("http://127.0.0.1:1", "k", auth_scheme="Token")


def test_the_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)  # import openai now fails
    with pytest.raises(ImportError, match=r"realtime-widget\[evaluate\]"):
        ModelClient("http://127.0.0.1:1", "k")


def test_the_cache_dir_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REALTIME_WIDGET_CACHE", str(tmp_path))
    assert ModelClient("http://127.0.0.1:1", "k").cache_dir == tmp_path / "judge"
    assert ModelClient("http://127.0.0.1:1", "k", cache=False).cache_dir is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"score": 2}', {"score": 2}),
        (
            'Here: {"score": 3, "reason": "a {brace} inside"} done',
            {"score": 3, "reason": "a {brace} inside"},
        ),
        ('```json\n{"score": 4}\n```', {"score": 4}),
        ('{not json} then {"score": 5}', {"score": 5}),
        ("[1, 2]", None),
        ("no json at all", None),
    ],
)
def test_first_json_object(text: str, expected: Any) -> None:
    assert first_json_object(text) == expected


def test_the_widgets_endpoint_hands_over_its_key_without_showing_it() -> None:
    import pickle

    from realtime_widget import RealtimeWidget
    from realtime_widget.evaluate._models import ModelEndpoint

    w = RealtimeWidget(api_key=SENTINEL_KEY, base_url="http://127.0.0.1:9")
    try:
        endpoint = w.model_endpoint()
        assert isinstance(endpoint, ModelEndpoint) and endpoint.base_url == w.base_url
        assert SENTINEL_KEY not in repr(endpoint) and SENTINEL_KEY not in str(endpoint)
        assert "model_endpoint" not in w.trait_names()
        client = endpoint.client(cache=False)
        assert SENTINEL_KEY not in repr(client)
        with pytest.raises(TypeError):  # a Secret refuses to be pickled into a file
            pickle.dumps(endpoint)
    finally:
        w.close()


def test_a_url_is_never_sent_the_widgets_key() -> None:
    from realtime_widget.evaluate._models import ModelEndpoint, pick_endpoint

    widget = ModelEndpoint("http://127.0.0.1:9", SENTINEL_KEY)
    assert pick_endpoint("the judge", (None, None), default=widget) is widget
    own = pick_endpoint("the judge", ("http://127.0.0.1:7", "other-key"), default=widget)
    assert own.base_url == "http://127.0.0.1:7" and own is not widget
    with pytest.raises(ValueError, match=r"the judge: base_url='http://x\.test' was given without"):
        pick_endpoint("the judge", ("http://x.test", None), default=widget)
    with pytest.raises(ValueError, match="without its base_url"):
        pick_endpoint("the judge", (None, "other-key"), default=widget)
    with pytest.raises(ValueError, match="the caller has no endpoint to ask"):
        pick_endpoint("the caller", (None, None), default=None)
    with pytest.raises(ValueError, match="auth_scheme"):
        ModelEndpoint("http://127.0.0.1:9", SENTINEL_KEY, auth_scheme="Token")
