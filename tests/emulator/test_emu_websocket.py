"""The server-side WebSocket transport: Inworld's ``/api/v1/realtime/session?key=&protocol=realtime``
and OpenAI's ``/v1/realtime?model=``, with events and audio both on the socket and the same turn
engine as a WebRTC call.

Loopback WebSockets only: no peer connection, so no network namespace, except the one test that
counts a WebRTC call and a WebSocket session together (marked ``netns``).
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import pytest
import websockets

from realtime_widget.emulator import Emulator, _tts
from realtime_widget.emulator._audio import speech_duration_s, synthesize
from realtime_widget.emulator._socket import Decimator, alaw_to_pcm16, ulaw_to_pcm16
from tests.helpers.emu_checks import FAST, VOICE, Connect, user_text
from tests.helpers.emu_client import RealtimeClient
from tests.helpers.emu_ws_client import OUT_RATE, SocketClient, auth, inworld_url, to_24k
from tests.helpers.protocol_checks import check_stream

SERVER_VAD = {"type": "server_vad", "silence_duration_ms": 300, "prefix_padding_ms": 100}
TRANSCRIBE = {"model": "inworld/inworld-stt-1", "language": "en"}
SLOW = {**FAST, "speech_rate": 20.0}  # replies of a few seconds: time to cut them

Open = Callable[..., Awaitable[SocketClient]]


@pytest.fixture
async def open_ws(emulator: Emulator) -> AsyncIterator[Open]:
    """``await open_ws(emu=..., scheme=..., openai_model=...)`` gives an open session; every
    event it received is checked against the schema, and against the emulator's own record of
    what it sent, when the test ends."""
    made: list[tuple[SocketClient, Emulator]] = []

    async def make(
        emu: Emulator | None = None, scheme: str = "Basic", openai_model: str | None = None
    ) -> SocketClient:
        emu = emu or emulator
        if openai_model is None:
            key = str(uuid.uuid4())
            client = SocketClient(inworld_url(emu, key), auth(emu, scheme), key)
        else:
            url = f"{emu.openai_websocket_base_url}/realtime?model={openai_model}"
            client = SocketClient(url, auth(emu, scheme))
        made.append((client, emu))
        await client.connect()
        await client.wait_for("session.created")
        return client

    yield make
    for client, _ in made:
        await client.close()
    for client, emu in made:
        check_stream(client.events)
        if emu.running and client.key is not None:
            snap = next(c for c in emu.calls if c["key"] == client.key)
            recorded = [e.get("event_id") for e in snap["events_out"]]
            received = [e.get("event_id") for e in client.events]
            assert received == recorded[: len(received)]


async def handshake_status(url: str, headers: dict[str, str]) -> tuple[int, str]:
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(url, additional_headers=headers):
            pass
    response = info.value.response
    return response.status_code, response.body.decode() if response.body else ""


async def update(client: SocketClient, **session: Any) -> dict[str, Any]:
    seen = len(client.events)
    await client.send({"type": "session.update", "session": session})
    return await client.wait_for("session.updated", after=seen)


async def typed_turn(client: SocketClient, text: str) -> None:
    await client.send(user_text(text))
    await client.send({"type": "response.create"})


# --- the handshake ---------------------------------------------------------------------------


def test_websocket_url_is_the_base_url_with_ws_and_the_session_path(emulator: Emulator) -> None:
    # What a client derives from an http base URL: http -> ws, plus /api/v1/realtime/session.
    derived = emulator.base_url.replace("http", "ws", 1) + "/api/v1/realtime/session"
    assert emulator.websocket_url == derived
    assert emulator.websocket_url.startswith("ws://127.0.0.1:")
    assert emulator.openai_websocket_base_url == emulator.base_url.replace("http", "ws", 1) + "/v1"


@pytest.mark.parametrize("scheme", ["Basic", "Bearer"])
async def test_session_created_first_then_update_answers_updated(
    open_ws: Open, emulator: Emulator, scheme: str
) -> None:
    client = await open_ws(scheme=scheme)
    assert client.events[0]["type"] == "session.created"
    updated = await update(client, instructions="Be brief.", output_modalities=["text"])
    assert updated["session"]["instructions"] == "Be brief."
    assert updated["session"]["output_modalities"] == ["text"]
    [snap] = emulator.calls
    assert snap["transport"] == "websocket" and snap["key"] == client.key
    assert snap["state"] == "open"


async def test_a_refused_update_is_an_error_and_changes_nothing(open_ws: Open) -> None:
    client = await open_ws()
    await client.send(
        {
            "type": "session.update",
            "session": {"instructions": "X", "audio": {"output": {"speed": 9}}},
        }
    )
    error = await client.wait_for("error")
    assert error["error"]["param"] == "session.audio.output.speed"
    updated = await update(client, temperature=0.7)  # the socket is still open
    assert updated["session"]["instructions"] == ""


async def test_a_refused_scheme_is_401_at_the_handshake(emulator: Emulator) -> None:
    emulator.configure(auth_schemes=("Basic",))
    status, body = await handshake_status(inworld_url(emulator), auth(emulator, "Bearer"))
    assert status == 401 and "Basic" in body
    status, _ = await handshake_status(
        inworld_url(emulator), {"Authorization": "Basic not-the-key"}
    )
    assert status == 401
    status, _ = await handshake_status(inworld_url(emulator), {})
    assert status == 401
    # The retry with the other scheme connects.
    client = await SocketClient(inworld_url(emulator), auth(emulator, "Basic")).connect()
    await client.wait_for("session.created")
    await client.close()


@pytest.mark.parametrize(
    "query", ["", "?key=abc", "?protocol=realtime", "?key=&protocol=realtime", "?key=a&protocol=x"]
)
async def test_key_and_protocol_are_both_required(emulator: Emulator, query: str) -> None:
    status, body = await handshake_status(emulator.websocket_url + query, auth(emulator, "Basic"))
    assert status == 400
    assert "key=<session id>&protocol=realtime" in body


async def test_openai_path_without_model_or_call_id_is_400(emulator: Emulator) -> None:
    url = f"{emulator.openai_websocket_base_url}/realtime"
    status, body = await handshake_status(url, auth(emulator, "Bearer"))
    assert status == 400 and "model=" in body and "call_id=" in body


async def test_openai_path_takes_the_model_from_the_query(
    open_ws: Open, emulator: Emulator
) -> None:
    client = await open_ws(scheme="Bearer", openai_model="gpt-realtime")
    assert client.events[0]["session"]["model"] == "gpt-realtime"
    await update(client, output_modalities=["text"])
    await typed_turn(client, "Hello")
    done = await client.wait_for("response.done")
    assert done["response"]["status"] == "completed"
    [snap] = emulator.calls
    assert snap["transport"] == "websocket" and snap["key"] is None


async def test_max_calls_refuses_one_more_session_with_429(open_ws: Open) -> None:
    with Emulator(**FAST, max_calls=1) as emu:
        first = await open_ws(emu)
        status, body = await handshake_status(inworld_url(emu), auth(emu))
        assert status == 429 and "max_calls" in body
        await first.close()
        await first.closed.wait()
        for _ in range(200):  # the session ends when the server sees the close
            if not any(c["state"] == "open" for c in emu.calls):
                break
            await asyncio.sleep(0.01)
        again = await open_ws(emu)  # a closed session no longer counts
        assert again.events[0]["type"] == "session.created"


@pytest.mark.netns
async def test_max_calls_counts_webrtc_calls_and_websocket_sessions_together(
    connect: Connect, open_ws: Open, emulator: Emulator
) -> None:
    emulator.configure(max_calls=2)
    await connect()
    await open_ws()
    status, _ = await handshake_status(inworld_url(emulator), auth(emulator))
    assert status == 429
    refused = RealtimeClient(emulator.base_url, emulator.api_key, mic=False)
    try:
        with pytest.raises(AssertionError, match="too_many_calls"):
            await refused.connect()  # an offer is refused too
    finally:
        await refused.close()
    assert sorted(c["transport"] for c in emulator.calls if c["state"] != "closed") == [
        "webrtc",
        "websocket",
    ]


async def test_reject_calls_status_refuses_the_handshake(emulator: Emulator) -> None:
    emulator.configure(reject_calls_status=503)
    status, _ = await handshake_status(inworld_url(emulator), auth(emulator))
    assert status == 503


# --- events --------------------------------------------------------------------------------------


async def test_an_unknown_event_is_an_error_and_the_socket_stays_open(open_ws: Open) -> None:
    client = await open_ws()
    sent = await client.send({"type": "no.such.event"})
    error = await client.wait_for("error")
    assert error["error"]["event_id"] == sent["event_id"]
    assert "no.such.event" in error["error"]["message"]
    await update(client, temperature=0.6)
    assert not client.closed.is_set()


async def test_output_audio_buffer_clear_is_webrtc_only(open_ws: Open) -> None:
    client = await open_ws()
    await client.send({"type": "output_audio_buffer.clear"})
    error = await client.wait_for("error")
    assert "WebRTC-only" in error["error"]["message"]


async def test_a_typed_turn_streams_audio_as_long_as_its_transcript(
    open_ws: Open, emulator: Emulator
) -> None:
    client = await open_ws()
    await typed_turn(client, "What time is it?")
    done = (await client.wait_for("response.done"))["response"]
    assert done["status"] == "completed"
    item = done["output"][0]
    transcript = item["content"][0]["transcript"]
    assert transcript.startswith("You said: What time is it?")
    deltas = client.of_type("response.output_audio.delta")
    assert deltas and all(d["item_id"] == item["id"] for d in deltas)
    # ~100 ms chunks (or smaller), PCM16 at 24 kHz, as long as the voice says the transcript.
    assert all(len(base64.b64decode(d["delta"])) <= 2 * OUT_RATE // 10 for d in deltas)
    seconds = len(client.audio()) / OUT_RATE
    assert abs(seconds - speech_duration_s(transcript, FAST["speech_rate"])) < 0.05
    assert np.abs(client.audio()).max() > 1000  # a voice, not silence
    types = client.types()
    # Every chunk, then audio done, then the transcript's and the item's ends; no WebRTC events.
    last_delta = max(i for i, t in enumerate(types) if t == "response.output_audio.delta")
    assert last_delta < types.index("response.output_audio.done")
    assert types.index("response.output_audio.done") < types.index(
        "response.output_audio_transcript.done"
    )
    assert not any(t.startswith("output_audio_buffer.") for t in types)
    [snap] = emulator.calls
    assert snap["audio_out"]["deltas"] == len(deltas)


async def test_text_only_sessions_send_no_audio(open_ws: Open) -> None:
    client = await open_ws()
    await update(client, output_modalities=["text"])
    await typed_turn(client, "Hi")
    await client.wait_for("response.done")
    assert client.of_type("response.output_text.delta")
    assert not client.of_type("response.output_audio.delta")


async def test_cancel_stops_the_audio(open_ws: Open) -> None:
    with Emulator(**SLOW) as emu:
        client = await open_ws(emu)
        await typed_turn(client, "Tell me a long story about the sea, please.")
        first = await client.wait_for("response.output_audio.delta")
        await client.send({"type": "response.cancel"})
        done = (await client.wait_for("response.done"))["response"]
        assert done["status"] == "cancelled"
        assert done["status_details"]["reason"] == "client_cancelled"
        await asyncio.sleep(0.3)  # any chunk still due would have come by now
        types = client.types()
        at_done = types.index("response.done")
        assert "response.output_audio.delta" not in types[at_done:]
        assert types.index("response.output_audio.done") < at_done
        heard = len(client.audio(first["item_id"])) / OUT_RATE
        transcript = done["output"][0]["content"][0]["transcript"]
        assert heard < speech_duration_s(transcript or "x" * 200, SLOW["speech_rate"])


async def test_truncate_stops_the_audio_and_cuts_the_transcript(open_ws: Open) -> None:
    with Emulator(**SLOW) as emu:
        client = await open_ws(emu)
        await typed_turn(client, "Tell me a long story about the sea, please.")
        first = await client.wait_for("response.output_audio.delta")
        item_id = first["item_id"]
        await client.wait_for("response.output_audio.delta", after=client.events.index(first) + 1)
        heard_ms = 1000 * len(client.audio(item_id)) // OUT_RATE // 2  # played half of it
        # The barge-in of a client that plays the audio itself: cancel, then truncate.
        await client.send({"type": "response.cancel"})
        await client.wait_for("response.done")
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": heard_ms,
            }
        )
        truncated = await client.wait_for("conversation.item.truncated")
        assert truncated["audio_end_ms"] == heard_ms
        await client.send({"type": "conversation.item.retrieve", "item_id": item_id})
        item = (await client.wait_for("conversation.item.retrieved"))["item"]
        said = item["content"][0]["transcript"]
        assert len(said) <= heard_ms / 1000 * SLOW["speech_rate"] + 10


async def test_truncating_an_item_still_streaming_is_refused_and_its_audio_goes_on(
    open_ws: Open,
) -> None:
    # As over WebRTC: an item in progress has no audio part yet; cancel the response first.
    with Emulator(**SLOW) as emu:
        client = await open_ws(emu)
        await typed_turn(client, "Tell me a story.")
        first = await client.wait_for("response.output_audio.delta")
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": first["item_id"],
                "content_index": 0,
                "audio_end_ms": 100,
            }
        )
        error = await client.wait_for("error")
        assert error["error"]["param"] == "content_index"
        done = (await client.wait_for("response.done"))["response"]
        assert done["status"] == "completed"
        transcript = done["output"][0]["content"][0]["transcript"]
        seconds = len(client.audio()) / OUT_RATE
        assert abs(seconds - speech_duration_s(transcript, SLOW["speech_rate"])) < 0.05


# --- audio in --------------------------------------------------------------------------------


def voice_like(seconds: float) -> np.ndarray:
    """The emulator's own synthetic voice, at 24 kHz (the energy VAD takes it for speech)."""
    text = "hello there, how are you doing today"
    return to_24k(synthesize(text, chars_per_s=len(text) / seconds, voice="mic"))


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * OUT_RATE), np.int16)


async def test_appended_audio_makes_a_voice_turn(open_ws: Open, emulator: Emulator) -> None:
    client = await open_ws()
    await update(
        client, audio={"input": {"turn_detection": SERVER_VAD, "transcription": TRANSCRIBE}}
    )
    audio = np.concatenate([silence(0.3), voice_like(1.0), silence(0.8)])
    await client.stream(audio)  # 100 ms appends, paced in real time
    started = await client.wait_for("input_audio_buffer.speech_started")
    stopped = await client.wait_for("input_audio_buffer.speech_stopped")
    assert started["item_id"] == stopped["item_id"]
    assert 100 <= started["audio_start_ms"] <= 400  # the stream's own clock: 0.3 s in, padded
    completed = await client.wait_for("conversation.item.input_audio_transcription.completed")
    assert completed["item_id"] == started["item_id"]
    assert completed["transcript"].startswith("[speech, ")
    done = (await client.wait_for("response.done"))["response"]
    assert done["output"][0]["content"][0]["transcript"].startswith("You said: [speech")
    assert client.of_type("response.output_audio.delta")
    mic = emulator.calls[0]["mic"]
    assert mic["speech_segments"] == 1 and mic["peak_rms"] > 0.05
    # The appended audio is the mic's stream clock (the last appends may still be queued).
    assert 1300 <= mic["stream_ms"] <= 1000 * len(audio) / OUT_RATE


async def test_speaking_over_the_reply_barges_in(open_ws: Open) -> None:
    with Emulator(**SLOW) as emu:
        client = await open_ws(emu)
        await update(client, audio={"input": {"turn_detection": SERVER_VAD}})
        await typed_turn(client, "Tell me a long story about the sea, please.")
        first = await client.wait_for("response.output_audio.delta")
        await client.stream(np.concatenate([silence(0.2), voice_like(0.8), silence(0.6)]))
        await client.wait_for("input_audio_buffer.speech_started")
        done = await client.wait_for("response.done")
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"]["reason"] == "turn_detected"
        truncated = await client.wait_for("conversation.item.truncated")
        assert truncated["item_id"] == first["item_id"]
        types = client.types()
        cut_at = types.index("response.done")
        later = [
            e
            for e in client.events[cut_at:]
            if e["type"] == "response.output_audio.delta" and e["item_id"] == first["item_id"]
        ]
        assert later == []


async def test_manual_commit_when_turn_detection_is_off(open_ws: Open) -> None:
    client = await open_ws()
    await update(client, audio={"input": {"turn_detection": None}})
    await client.stream(voice_like(0.5), paced=False)
    await client.send({"type": "input_audio_buffer.commit"})
    committed = await client.wait_for("input_audio_buffer.committed")
    added = await client.wait_for(
        "conversation.item.added", where=lambda e: e["item"]["id"] == committed["item_id"]
    )
    assert added["item"]["content"][0]["type"] == "input_audio"
    await client.send({"type": "response.create"})
    await client.wait_for("response.done")
    # Cleared audio is not committed: an empty buffer is refused.
    await client.append(voice_like(0.3))
    await client.send({"type": "input_audio_buffer.clear"})
    await client.wait_for("input_audio_buffer.cleared")
    await client.send({"type": "input_audio_buffer.commit"})
    error = await client.wait_for("error")
    assert error["error"]["code"] == "input_audio_buffer_commit_empty"


async def test_append_refuses_what_is_not_base64(open_ws: Open) -> None:
    client = await open_ws()
    await client.send({"type": "input_audio_buffer.append", "audio": "not base64!"})
    error = await client.wait_for("error")
    assert error["error"]["param"] == "audio"


# --- fault knobs ---------------------------------------------------------------------------------


async def test_close_after_closes_the_socket(open_ws: Open) -> None:
    with Emulator(**FAST, close_after=2) as emu:
        client = await open_ws(emu)
        await client.send({"type": "session.update", "session": {"temperature": 0.7}})
        await client.send({"type": "session.update", "session": {"temperature": 0.6}})
        await client.closed.wait()
        assert client.close_code == 1011
        assert client.types() == ["session.created", "session.updated"]
        [snap] = emu.calls
        assert snap["state"] == "closed" and "socket closed after 2 events" in snap["faults"]


async def test_drop_channel_after_closes_the_socket(open_ws: Open) -> None:
    with Emulator(**FAST, drop_channel_after=1) as emu:
        client = await open_ws(emu)
        await client.closed.wait()
        assert client.close_code == 1011 and client.types() == ["session.created"]


async def test_malformed_after_sends_a_non_json_frame(open_ws: Open) -> None:
    with Emulator(**FAST, malformed_after=1) as emu:
        client = await open_ws(emu)
        await update(client, temperature=0.7)
        assert len(client.raw) == 1 and not client.closed.is_set()


# --- the real voice, and the openai SDK --------------------------------------------------------


async def test_streamed_espeak_speech_is_heard_transcribed_and_answered(open_ws: Open) -> None:
    with Emulator(**VOICE) as emu:
        emu.wait_voice_ready(60)
        client = await open_ws(emu)
        await update(
            client,
            audio={
                "input": {
                    "turn_detection": {
                        "type": "server_vad",
                        "silence_duration_ms": 400,
                        "prefix_padding_ms": 200,
                    },
                    "transcription": TRANSCRIBE,
                }
            },
        )
        sound = _tts.SpokenText("What is the weather in Paris?", "Dennis")
        while not sound.complete:
            sound.char_sample(10_000)
        speech = to_24k(sound.render(0, len(sound)))
        await client.stream(np.concatenate([silence(0.3), speech, silence(1.5)]))
        await client.wait_for("input_audio_buffer.speech_started")
        await client.wait_for("input_audio_buffer.speech_stopped")
        completed = await client.wait_for(
            "conversation.item.input_audio_transcription.completed", timeout=30
        )
        assert "weather" in completed["transcript"].lower()
        done = (await client.wait_for("response.done", timeout=30))["response"]
        assert done["status"] == "completed"
        assert "weather" in done["output"][0]["content"][0]["transcript"].lower()
        assert np.abs(client.audio()).max() > 1000  # espeak-ng's voice, as PCM16 deltas


async def test_the_openai_sdk_converses_unmodified(emulator: Emulator) -> None:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(
        api_key=emulator.api_key,
        base_url=emulator.base_url + "/v1",  # nothing may leave this machine
        websocket_base_url=emulator.openai_websocket_base_url,
    )
    seen: list[str] = []
    audio = 0
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(session={"type": "realtime", "output_modalities": ["audio"]})
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hello!"}],
            }
        )
        await conn.response.create()

        async def converse() -> Any:
            nonlocal audio
            async for event in conn:
                seen.append(event.type)
                if event.type == "response.output_audio.delta":
                    audio += len(base64.b64decode(event.delta))
                if event.type == "response.done":
                    return event

        done = await asyncio.wait_for(converse(), timeout=20)
    assert seen[:2] == ["session.created", "session.updated"]
    assert done.response.status == "completed"
    assert "response.output_audio.done" in seen and audio > 0
    assert "error" not in seen


# --- the codecs --------------------------------------------------------------------------------


def test_g711_decoders_match_the_standard_tables() -> None:
    assert ulaw_to_pcm16(bytes([0xFF, 0x7F, 0x80, 0x00])).tolist() == [0, 0, 32124, -32124]
    assert alaw_to_pcm16(bytes([0xD5, 0x55, 0xAA, 0x2A])).tolist() == [8, -8, 32256, -32256]


def test_the_decimator_keeps_speech_and_drops_what_24_khz_cannot_carry() -> None:
    t = np.arange(48_000) / 48_000
    decimate = Decimator()
    for tone, kept in ((1000, True), (15_000, False)):
        pcm = np.asarray(np.sin(2 * np.pi * tone * t) * 10_000, np.int16)
        # Chunk by chunk (odd lengths too), as the deltas are made.
        out = np.concatenate([decimate(pcm[i : i + 4801]) for i in range(0, len(pcm), 4801)])
        assert len(out) == 24_000
        rms = np.sqrt(np.mean(out[100:].astype(float) ** 2))
        assert (rms > 6000) if kept else (rms < 300)
