"""Voice turns from real audio on the mic track: VAD, commit, transcription, barge-in."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from realtime_widget.emulator import Emulator, TranscriptionRequest
from realtime_widget.emulator._audio import synthesize
from tests.helpers.emu_checks import Connect
from tests.helpers.emu_client import RealtimeClient

pytestmark = pytest.mark.netns

SERVER_VAD = {"type": "server_vad", "silence_duration_ms": 200, "prefix_padding_ms": 100}
TRANSCRIBE = {"model": "inworld/inworld-stt-1", "language": "en"}


def speech(seconds: float, text: str = "hello there, how are you doing today") -> np.ndarray:
    """Voice-like audio of about ``seconds`` (the emulator's own synthetic voice)."""
    return synthesize(text, chars_per_s=len(text) / seconds, voice="mic")


async def configure(client: RealtimeClient, **audio_input: Any) -> None:
    seen = len(client.events)
    client.send(
        {
            "type": "session.update",
            "session": {"output_modalities": ["text"], "audio": {"input": audio_input}},
        }
    )
    await client.wait_for("session.updated", after=seen)


async def test_voice_turn_commits_transcribes_and_answers(
    connect: Connect, emulator: Emulator
) -> None:
    client = await connect()
    assert client.mic is not None
    await configure(client, turn_detection=SERVER_VAD, transcription=TRANSCRIBE)
    client.mic.silence(0.2)
    start_ms = client.mic.say(speech(1.0))
    end_ms = client.mic.silence(0.6)
    started = await client.wait_for("input_audio_buffer.speech_started", timeout=5)
    stopped = await client.wait_for("input_audio_buffer.speech_stopped", timeout=5)
    committed = await client.wait_for("input_audio_buffer.committed")
    added = await client.wait_for("conversation.item.added")
    completed = await client.wait_for("conversation.item.input_audio_transcription.completed")
    done = (await client.wait_for("response.done"))["response"]
    # One item id ties the turn together; times come from the stream's own clock.
    item_id = started["item_id"]
    assert stopped["item_id"] == committed["item_id"] == added["item"]["id"] == item_id
    assert abs(started["audio_start_ms"] - (start_ms - 100)) <= 80
    assert abs(stopped["audio_end_ms"] - (end_ms + 200)) <= 100
    assert added["item"]["role"] == "user"
    assert added["item"]["content"][0]["type"] == "input_audio"
    assert completed["item_id"] == item_id and completed["content_index"] == 0
    assert completed["transcript"] in ("[speech, 1.1 s]", "[speech, 1.2 s]", "[speech, 1.3 s]")
    assert client.of_type("conversation.item.input_audio_transcription.delta")
    types = client.types()
    assert types.index("input_audio_buffer.committed") < types.index("response.created")
    # The automatic response answers the turn, using what was "heard".
    assert done["output"][0]["content"][0]["text"].startswith(
        f"You said: {completed['transcript']}"
    )
    mic = emulator.calls[0]["mic"]
    assert mic["speech_segments"] == 1 and mic["peak_rms"] > 0.05 and mic["frames"] > 50
    assert 0 < mic["rms_mean"] < mic["peak_rms"]


async def test_no_response_when_create_response_is_false(connect: Connect) -> None:
    client = await connect()
    assert client.mic is not None
    await configure(client, turn_detection={**SERVER_VAD, "create_response": False})
    client.mic.say(speech(0.4))
    client.mic.silence(0.3)
    await client.wait_for("conversation.item.done", timeout=5)
    await client.quiet_for(0.3)
    assert not client.of_type("response.created")
    # Without transcription configured there is no transcription event either.
    assert not client.of_type("conversation.item.input_audio_transcription.completed")


async def test_speech_interrupts_a_response(connect: Connect, emulator: Emulator) -> None:
    emulator.configure(speech_rate=12.0)
    client = await connect()
    assert client.mic is not None
    client.send(
        {
            "type": "session.update",
            "session": {"audio": {"input": {"turn_detection": SERVER_VAD}}},
        }
    )
    client.send({"type": "response.create"})
    first = (await client.wait_for("response.created"))["response"]["id"]
    await client.wait_for("response.output_audio_transcript.delta")
    client.mic.say(speech(0.4))
    client.mic.silence(0.4)
    started = await client.wait_for("input_audio_buffer.speech_started", timeout=5)
    emulator.configure(speech_rate=300.0)  # the next, automatic, answer can be quick
    done = await client.wait_for("response.done")
    cleared = await client.wait_for("output_audio_buffer.cleared")
    truncated = await client.wait_for("conversation.item.truncated")
    assert done["response"]["id"] == cleared["response_id"] == first
    assert done["response"]["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    types = client.types()
    assert (
        types.index("input_audio_buffer.speech_started")
        < types.index("response.done")
        < types.index("output_audio_buffer.cleared")
        < types.index("conversation.item.truncated")
    )
    # The reply is cut to what was played: audio_end_ms is the time from the start of its audio
    # to the barge-in, and the stored transcript keeps the words said by then.
    reply = done["response"]["output"][0]
    assert truncated["item_id"] == reply["id"] and truncated["content_index"] == 0
    audio_started = client.of_type("output_audio_buffer.started")[0]
    heard_s = client.time_of(started) - client.time_of(audio_started)
    assert abs(truncated["audio_end_ms"] / 1000 - heard_s) < 0.15
    client.send({"type": "conversation.item.retrieve", "item_id": reply["id"]})
    retrieved = await client.wait_for("conversation.item.retrieved")
    kept = retrieved["item"]["content"][0]["transcript"]
    sent = reply["content"][0]["transcript"]
    assert sent.startswith(kept) and len(kept) <= truncated["audio_end_ms"] / 1000 * 12.0 + 1
    # After the user's turn ends, a new response answers it.
    second = await client.wait_for(
        "response.created", where=lambda e: e["response"]["id"] != first, timeout=5
    )
    await client.wait_for(
        "response.done", where=lambda e: e["response"]["id"] == second["response"]["id"]
    )
    assert started["item_id"] in emulator.calls[0]["items"]


async def test_manual_commit_and_clear(connect: Connect) -> None:
    client = await connect()
    assert client.mic is not None
    client.send({"type": "input_audio_buffer.commit"})  # turn detection is on
    await client.wait_for("error", where=lambda e: "turn_detection" in e["error"]["message"])
    await configure(client, turn_detection=None, transcription=TRANSCRIBE)
    client.mic.say(speech(0.5))
    await asyncio.sleep(0.7)
    seen = len(client.events)
    client.send({"type": "input_audio_buffer.commit"})
    committed = await client.wait_for("input_audio_buffer.committed", after=seen)
    added = await client.wait_for("conversation.item.added", after=seen)
    assert added["item"]["id"] == committed["item_id"]
    await client.wait_for("conversation.item.input_audio_transcription.completed")
    client.send({"type": "input_audio_buffer.commit"})  # right away: nearly nothing buffered
    error = await client.wait_for("error", after=seen)
    assert error["error"]["code"] == "input_audio_buffer_commit_empty"
    client.send({"type": "input_audio_buffer.clear"})
    await client.wait_for("input_audio_buffer.cleared")
    await client.quiet_for(0.2)
    assert not client.of_type("input_audio_buffer.speech_started")
    assert not client.of_type("response.created")  # no turn detection, no automatic response


def heard(req: TranscriptionRequest) -> str:
    return f"heard {req.duration_s:.0f}s in {req.language}"


def broken(req: TranscriptionRequest) -> str:
    raise ZeroDivisionError("division by zero")


async def test_custom_and_failing_transcribers(connect: Connect) -> None:
    for transcriber, expected in ((heard, "completed"), (broken, "failed")):
        emu = Emulator(transcriber=transcriber, first_delta_delay_ms=0, speech_rate=300).start()
        try:
            client = await connect(emu)
            assert client.mic is not None
            await configure(client, turn_detection=SERVER_VAD, transcription=TRANSCRIBE)
            client.mic.say(speech(0.5))
            client.mic.silence(0.3)
            event = await client.wait_for(
                f"conversation.item.input_audio_transcription.{expected}", timeout=5
            )
            if expected == "completed":
                assert event["transcript"] == "heard 1s in en"
            else:
                assert "division" in event["error"]["message"]
            await client.wait_for("response.done")  # the turn is still answered
        finally:
            emu.stop()


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
async def test_real_speech_from_espeak(
    connect: Connect, emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "hello.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "Hello, can you hear me?"], check=True)
    with wave.open(str(path)) as wav:
        rate = wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    at_48k = np.interp(np.arange(0, len(pcm), rate / 48_000), np.arange(len(pcm)), pcm)
    client = await connect()
    assert client.mic is not None
    await configure(client, turn_detection=SERVER_VAD | {"silence_duration_ms": 400})
    client.mic.say(at_48k.astype(np.int16))
    client.mic.silence(0.6)
    stopped = await client.wait_for("input_audio_buffer.speech_stopped", timeout=8)
    started = client.of_type("input_audio_buffer.speech_started")[0]
    assert 0.6 < (stopped["audio_end_ms"] - started["audio_start_ms"]) / 1000 < len(pcm) / rate + 1
    assert emulator.calls[0]["mic"]["peak_rms"] > 0.05


async def test_backchannel_over_webrtc(connect: Connect) -> None:
    client = await connect()
    assert client.mic is not None
    client.send(
        {
            "type": "session.update",
            "session": {
                "output_modalities": ["text"],
                "audio": {"input": {"turn_detection": {**SERVER_VAD, "silence_duration_ms": 400}}},
                "providerData": {"backchannel": {"enabled": True}},
            },
        }
    )
    await client.wait_for("session.updated")
    client.mic.say(speech(2.0))
    client.mic.silence(0.6)
    done = await client.wait_for("response.backchannel.audio.done", timeout=5)
    stopped = await client.wait_for("input_audio_buffer.speech_stopped", timeout=5)
    assert done["phrase"] == "mm-hm"
    deltas = client.of_type("response.backchannel.audio.delta")
    assert deltas and client.events.index(deltas[-1]) < client.events.index(done)
    assert client.events.index(done) < client.events.index(stopped)  # while the user spoke
    await client.wait_for("response.done")  # the turn is still answered as usual
