"""Where the emulator meets Inworld's documented shapes: the built-in web_search tool, a
non-fatal SESSION_RESOURCES_EXHAUSTED, back-channel ids and reasons, string audio formats,
calls to any tool name, the session fields the service documents, cumulative transcription
deltas and the voice models loaded when the emulator starts.

Most run one call without WebRTC (the stand-in channel of test_emu_call.py): deterministic and
fast. One test runs the web_search path over real WebRTC.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from test_emu_call import LOUD, QUIET, SERVER_VAD, FakeChannel, feed

from realtime_widget.emulator import (
    Emulator,
    Knobs,
    ResponseContext,
    TextReply,
    ToolCall,
    _stt,
    _vad,
    default_responder,
    default_transcriber,
)
from realtime_widget.emulator.__main__ import build_parser
from realtime_widget.emulator._call import EXHAUSTED_MESSAGE, EmulatedCall
from tests.helpers.emu_checks import FAST, Connect, user_text
from tests.helpers.protocol_checks import check_stream

pytestmark = pytest.mark.netns

TEXT = {"output_modalities": ["text"]}
WEB_SEARCH = {
    "type": "web_search",
    "providerData": {"engine": "google", "max_results": 3, "max_steps": 1},
}
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
MakeCall = Callable[..., EmulatedCall]


@pytest.fixture
async def make_call() -> AsyncIterator[MakeCall]:
    """``make_call(responder=..., transcriber=..., **knobs)``: an open call on a stand-in
    channel; every event it sent is checked against the schema at the end."""
    made: list[EmulatedCall] = []

    def make(responder: Any = None, transcriber: Any = None, **knobs: Any) -> EmulatedCall:
        call = EmulatedCall(
            lambda: Knobs(**{**FAST, **knobs}),
            responder or default_responder,
            transcriber or default_transcriber,
        )
        call.channel = FakeChannel(call)  # type: ignore[assignment]
        call.state = "open"
        made.append(call)
        return call

    yield make
    for call in made:
        await call.close()
        check_stream(list(call.events_out.recent))


def ch(call: EmulatedCall) -> FakeChannel:
    assert isinstance(call.channel, FakeChannel)
    return call.channel


async def send(call: EmulatedCall, event: dict[str, Any]) -> dict[str, Any]:
    """Send one client event; return the last server event it produced."""
    await call.handle(json.dumps(event))
    return ch(call).sent[-1][1]


async def respond(call: EmulatedCall, **response: Any) -> dict[str, Any]:
    """``response.create`` and wait for its ``response.done``; returns the response."""
    seen = len(ch(call).of_type("response.done"))
    await send(call, {"type": "response.create", **({"response": response} if response else {})})
    runner = call.active
    if runner is not None and runner.task is not None:
        await runner.task
    done = ch(call).of_type("response.done")
    assert len(done) == seen + 1, ch(call).types()
    result: dict[str, Any] = done[-1]["response"]
    return result


def reply_text(response: dict[str, Any]) -> str:
    item = response["output"][-1]
    assert item["type"] == "message", response["output"]
    return str(item["content"][0]["text"])


# --- the built-in web_search tool -------------------------------------------------------------


async def test_a_session_may_carry_web_search_beside_function_tools(make_call: MakeCall) -> None:
    call = make_call()
    updated = await send(
        call, {"type": "session.update", "session": {**TEXT, "tools": [WEB_SEARCH, WEATHER_TOOL]}}
    )
    assert updated["type"] == "session.updated", updated
    assert updated["session"]["tools"] == [WEB_SEARCH, WEATHER_TOOL]
    # The default responder searches when the user names the tool, then reads the stand-in.
    await send(call, user_text("Please use web search for the weather in Paris"))
    response = await respond(call)
    assert response["status"] == "completed"
    said = reply_text(response)
    assert said.startswith("The web search tool returned: [emulator stand-in: no web search")
    assert '"weather in Paris"' in said
    # The service runs the search itself: the client gets no call to answer.
    assert [item["type"] for item in response["output"]] == ["message"]
    assert not [t for t in ch(call).types() if t.startswith("response.function_call")]
    kinds = [e["item"]["type"] for e in ch(call).of_type("conversation.item.added")]
    assert "function_call" not in kinds and "function_call_output" not in kinds
    # A function tool of the same session is still the client's to run.
    await send(call, user_text("use get weather for Oslo"))
    called = await respond(call)
    assert called["output"][0]["type"] == "function_call"
    assert called["output"][0]["name"] == "get_weather"


async def test_a_responder_reads_the_stand_in_result_within_max_steps(
    make_call: MakeCall,
) -> None:
    asked: list[list[dict[str, Any]]] = []

    def searcher(ctx: ResponseContext) -> TextReply | ToolCall:
        asked.append(ctx.items)
        last = ctx.last_item or {}
        if last.get("type") == "function_call_output" and len(asked) < 3:
            call = ctx.call_for(str(last["call_id"]))
            assert call is not None and call["name"] == "web_search"
            return TextReply(f"read {json.loads(call['arguments'])['query']}: {last['output']}")
        return ToolCall("web_search", {"query": "realtime emulators"})

    call = make_call(responder=searcher)
    await send(call, {"type": "session.update", "session": {**TEXT, "tools": [WEB_SEARCH]}})
    response = await respond(call)
    assert reply_text(response) == (
        'read realtime emulators: [emulator stand-in: no web search was made] "realtime '
        'emulators": no real results.'
    )
    assert len(asked) == 2 and len(asked[1]) == len(asked[0]) + 2  # the call and its output
    # Neither is a conversation item: only the reply is.
    assert [item["type"] for item in call.conversation.items] == ["message"]
    # A responder that keeps searching is stopped at max_steps: that response fails.
    asked.clear()
    many = {**WEB_SEARCH, "providerData": {"max_steps": 2}}
    await send(call, {"type": "session.update", "session": {"tools": [many]}})
    call.responder = lambda ctx: (asked.append(ctx.items), ToolCall("web_search", "{}"))[1]
    failed = await respond(call)
    assert failed["status"] == "failed" and len(asked) == 3
    assert "max_steps (2)" in failed["status_details"]["error"]["message"]


async def test_a_responder_may_call_a_tool_the_session_does_not_have(
    make_call: MakeCall,
) -> None:
    call = make_call(responder=lambda ctx: ToolCall("launch_rocket", {"stage": 1}))
    await send(call, {"type": "session.update", "session": {**TEXT, "tools": [WEATHER_TOOL]}})
    response = await respond(call)
    assert response["status"] == "completed"
    item = response["output"][0]
    assert (item["type"], item["name"], item["arguments"]) == (
        "function_call",
        "launch_rocket",
        '{"stage":1}',
    )
    done = ch(call).of_type("response.function_call_arguments.done")[-1]
    assert done["name"] == "launch_rocket" and done["call_id"] == item["call_id"]
    # Without the built-in tool in the session, "web_search" is just another unknown name.
    call.responder = lambda ctx: ToolCall("web_search", {"query": "x"})
    unknown = await respond(call, tool_choice="none")
    assert unknown["output"][0]["name"] == "web_search"


async def test_web_search_over_webrtc(connect: Connect) -> None:
    client = await connect()
    client.send({"type": "session.update", "session": {**TEXT, "tools": [WEB_SEARCH]}})
    updated = await client.wait_for("session.updated")
    assert updated["session"]["tools"] == [WEB_SEARCH]
    client.send(user_text("web search the opening hours of the Louvre"))
    client.send({"type": "response.create"})
    done = (await client.wait_for("response.done"))["response"]
    assert '"opening hours of the Louvre"' in reply_text(done)  # leading "the" dropped
    assert "[emulator stand-in" in reply_text(done)


# --- SESSION_RESOURCES_EXHAUSTED ---------------------------------------------------------------


async def test_session_resources_exhausted_is_not_fatal_by_default(make_call: MakeCall) -> None:
    call = make_call(exhaust_after=1)
    await send(call, {"type": "session.update", "session": TEXT})
    sent = [e for _, e in ch(call).sent]
    assert sent[1] == EXHAUSTED_MESSAGE and "type" not in sent[1]
    # The call goes on: events keep coming and a response completes.
    await send(call, user_text("still there?"))
    response = await respond(call)
    assert response["status"] == "completed" and reply_text(response).startswith("You said:")
    assert call.state == "open" and not call.finished
    assert ch(call).readyState == "open"
    assert sum(1 for e in call.events_out.recent if "errorType" in e) == 1
    assert "the call goes on" in call.faults[0]


async def test_exhaust_ends_call_knob_and_flags() -> None:
    args = build_parser().parse_args(
        ["--exhaust-ends-call", "true", "--transcription-deltas", "cumulative"]
    )
    assert (args.exhaust_ends_call, args.transcription_deltas) == (True, "cumulative")
    assert build_parser().parse_args(["--preload-voice", "off"]).preload_voice is False
    assert Emulator().knobs.exhaust_ends_call is False
    with pytest.raises(ValueError, match="transcription_deltas must be one of"):
        Emulator(transcription_deltas="whole")


# --- back-channel ---------------------------------------------------------------------------------


async def backchannel_turn(call: EmulatedCall, **backchannel: Any) -> list[dict[str, Any]]:
    td = {**SERVER_VAD, "create_response": False}
    provider = {"backchannel": {"enabled": True, **backchannel}}
    session = {**TEXT, "audio": {"input": {"turn_detection": td}}, "providerData": provider}
    await send(call, {"type": "session.update", "session": session})
    feed(call, QUIET, 0.2)
    feed(call, LOUD, 6.5)  # onset at 200 ms: evaluations every 800 ms from 1700 ms
    feed(call, QUIET, 0.5)
    return [e for _, e in ch(call).sent if e.get("type", "").startswith("response.backchannel.")]


async def test_backchannel_events_carry_one_backchannel_id_per_attempt(
    make_call: MakeCall,
) -> None:
    events = await backchannel_turn(make_call())
    assert events and all(e["backchannel_id"].startswith("bc_") for e in events)
    done = [e for e in events if e["type"] == "response.backchannel.audio.done"]
    assert len(done) == 2  # at 1700 and 5700 ms; min_gap_ms (4000) holds the ones between
    for attempt in done:
        mine = [e for e in events if e["backchannel_id"] == attempt["backchannel_id"]]
        assert [e["type"] for e in mine[:-1]] == ["response.backchannel.audio.delta"] * (
            len(mine) - 1
        )
        assert mine[-1] is attempt and len(mine) > 2
    assert len({e["backchannel_id"] for e in done}) == 2
    # Only Inworld's reasons: nothing is reported as skipped for a gap or a playing reply.
    assert not [e for e in events if e["type"] == "response.backchannel.skipped"]


async def test_a_missed_hard_deadline_is_skipped_as_deadline_missed(make_call: MakeCall) -> None:
    events = await backchannel_turn(make_call(), hard_deadline_ms=100, max_per_turn=1)
    assert {e["type"] for e in events} == {"response.backchannel.skipped"}
    assert {e["reason"] for e in events} == {"deadline_missed"}
    assert len(events) == 7  # every evaluation from 1700 to 6500 ms: misses do not count
    assert len({e["backchannel_id"] for e in events}) == len(events)
    assert all(set(e) == {"type", "event_id", "backchannel_id", "reason"} for e in events)


# --- audio formats and the session fields the service documents --------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("pcm16", {"type": "audio/pcm", "rate": 24000}),
        ("g711_ulaw", {"type": "audio/pcmu"}),
        ("g711_alaw", {"type": "audio/pcma"}),
        ("audio/pcmu", {"type": "audio/pcmu"}),
        ({"type": "audio/pcm", "rate": 24000}, {"type": "audio/pcm", "rate": 24000}),
    ],
)
async def test_string_audio_formats_are_accepted(
    make_call: MakeCall, sent: Any, stored: dict[str, Any]
) -> None:
    call = make_call()
    audio = {"input": {"format": sent}, "output": {"format": sent}}
    updated = await send(call, {"type": "session.update", "session": {"audio": audio}})
    assert updated["type"] == "session.updated", updated
    assert updated["session"]["audio"]["input"]["format"] == stored
    assert updated["session"]["audio"]["output"]["format"] == stored


@pytest.mark.parametrize(
    ("audio", "param", "words"),
    [
        ({"input": {"format": "mp3"}}, "session.audio.input.format", "g711_ulaw"),
        (
            {"output": {"format": {"type": "audio/pcm", "rate": 16000}}},
            "session.audio.output.format.rate",
            "24000",
        ),
        (
            {"input": {"format": {"type": "audio/pcm", "rate": 96000}}},
            "session.audio.input.format.rate",
            "48000",
        ),
    ],
)
async def test_invalid_audio_formats_name_the_field(
    make_call: MakeCall, audio: dict[str, Any], param: str, words: str
) -> None:
    call = make_call()
    error = await send(call, {"type": "session.update", "session": {"audio": audio}})
    assert error["type"] == "error" and error["error"]["param"] == param
    assert words in error["error"]["message"]


async def test_documented_session_fields_are_accepted(make_call: MakeCall) -> None:
    call = make_call()
    td = {"type": "server_vad", "idle_timeout_ms": 6000, "silence_duration_ms": 300}
    audio = {
        "input": {
            "format": {"type": "audio/pcm", "rate": 16000},  # Inworld takes 8-48 kHz input PCM
            "transcription": {"language": "en", "prompt": "Names: Inworld, Clive."},
            "noise_reduction": {"type": "near_field"},
            "turn_detection": td,
        }
    }
    updated = await send(call, {"type": "session.update", "session": {"audio": audio}})
    assert updated["type"] == "session.updated", updated
    audio_in = updated["session"]["audio"]["input"]
    assert audio_in["format"] == {"type": "audio/pcm", "rate": 16000}
    assert audio_in["turn_detection"]["idle_timeout_ms"] == 6000
    # No model: the service's default recognizer, as Inworld documents.
    assert audio_in["transcription"] == {
        "language": "en",
        "prompt": "Names: Inworld, Clive.",
        "model": "inworld/inworld-stt-1",
    }


# --- transcription deltas ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "deltas"),
    [
        ("incremental", ["I want a table"]),
        ("cumulative", ["I", "I want", "I want a", "I want a table"]),
    ],
)
async def test_transcription_deltas_knob(make_call: MakeCall, mode: str, deltas: list[str]) -> None:
    call = make_call(transcriber=lambda req: "I want a table", transcription_deltas=mode)
    td = {**SERVER_VAD, "create_response": False}
    audio = {"input": {"transcription": {"model": "inworld/inworld-stt-1"}, "turn_detection": td}}
    await send(call, {"type": "session.update", "session": {"audio": audio}})
    feed(call, LOUD, 0.5)
    feed(call, QUIET, 0.4)
    kind = "conversation.item.input_audio_transcription."
    for _ in range(200):
        if ch(call).of_type(kind + "completed"):
            break
        await asyncio.sleep(0.005)
    assert [e["delta"] for e in ch(call).of_type(kind + "delta")] == deltas
    assert ch(call).of_type(kind + "completed")[0]["transcript"] == "I want a table"


def test_recognizer_words_become_cumulative_deltas() -> None:
    words = [" Book", " a", " table."]
    assert _stt.transcription_deltas(words, "incremental") == words
    assert _stt.transcription_deltas(words, "cumulative") == ["Book", "Book a", "Book a table."]
    assert _stt.transcription_deltas([], "cumulative") == [""]


# --- voice models load when the emulator starts ---------------------------------------------------


def test_voice_models_load_in_the_background_when_the_emulator_starts() -> None:
    assert _vad.silero_missing() is None and _stt.missing() is None, "needs [voice]"
    model = _stt.resolve_model("auto")
    with _vad._POOL_LOCK:
        _vad._POOL.clear()
    _stt._MODELS.pop(str(model), None)
    emu = Emulator(**{**FAST, "vad": "auto", "stt_model": "auto"})
    try:
        emu.start()  # returns at once: the load runs in its own thread
        assert emu.wait_voice_ready(120)
        assert str(model) in _stt._MODELS
        with _vad._POOL_LOCK:
            assert len(_vad._POOL) >= 2
    finally:
        emu.stop()
    # Turned off, nothing is started (calls load on first use, as before).
    off = Emulator(**{**FAST, "vad": "auto", "preload_voice": False}).start()
    try:
        assert off._preload is None and off.wait_voice_ready(0)
    finally:
        off.stop()
