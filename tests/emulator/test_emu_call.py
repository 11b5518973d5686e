"""One emulated call without WebRTC: a stand-in data channel, and mic frames fed on the stream clock.

The mic-driven behaviours (back-channel, idle timeout, barge-in) run here deterministically and
fast: a test feeds seconds of audio in microseconds, and every event records the stream time
(ms of mic audio) at which it was sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from realtime_widget.emulator import Knobs, default_responder, default_transcriber
from realtime_widget.emulator._call import EmulatedCall
from realtime_widget.emulator._vad import MIN_SPEECH_MS
from tests.helpers.emu_checks import FAST
from tests.helpers.protocol_checks import check_stream

# An EmulatedCall owns an RTCPeerConnection (never connected here): keep it in the loopback namespace.
pytestmark = pytest.mark.netns

LOUD = np.full(960, 0.2)  # one 20 ms frame at 48 kHz, far above the VAD threshold
QUIET = np.zeros(960)
ONSET_S = MIN_SPEECH_MS / 1000 + 0.02  # just long enough to start a turn
SERVER_VAD = {"type": "server_vad", "silence_duration_ms": 200, "prefix_padding_ms": 100}


class FakeChannel:
    """Stands in for the ``oai-events`` RTCDataChannel."""

    label = "oai-events"

    def __init__(self, call: EmulatedCall) -> None:
        self.call = call
        self.readyState = "open"
        self.sent: list[tuple[float, dict[str, Any]]] = []  # (stream ms, event)

    def send(self, text: str) -> None:
        self.sent.append((self.call.mic.stream_ms, json.loads(text)))

    def close(self) -> None:
        self.readyState = "closed"

    def of_type(self, type: str) -> list[dict[str, Any]]:
        return [e for _, e in self.sent if e.get("type") == type]

    def at(self, type: str) -> list[float]:
        return [ms for ms, e in self.sent if e.get("type") == type]

    def types(self) -> list[str]:
        return [e.get("type", "") for _, e in self.sent]


@pytest.fixture
async def call() -> AsyncIterator[EmulatedCall]:
    call = EmulatedCall(lambda: Knobs(**FAST), default_responder, default_transcriber)
    call.channel = FakeChannel(call)  # type: ignore[assignment]
    call.state = "open"
    yield call
    await call.close()
    check_stream(list(call.events_out.recent))


def channel(call: EmulatedCall) -> FakeChannel:
    assert isinstance(call.channel, FakeChannel)
    return call.channel


def feed(call: EmulatedCall, frame: np.ndarray, seconds: float) -> None:
    for _ in range(round(seconds / 0.02)):
        call.mic.feed(frame, 48_000)


async def send(call: EmulatedCall, event: dict[str, Any]) -> None:
    await call.handle(json.dumps(event))


async def until(call: EmulatedCall, type: str, count: int = 1, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.005)):
        if len(channel(call).of_type(type)) >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"no {type!r} within {timeout}s; saw {channel(call).types()}")


async def update(call: EmulatedCall, **session: Any) -> None:
    await send(call, {"type": "session.update", "session": session})
    assert channel(call).types()[-1] == "session.updated"


BACKCHANNEL_TYPES = (
    "response.backchannel.audio.delta",
    "response.backchannel.audio.done",
    "response.backchannel.skipped",
)


async def test_backchannel_while_the_user_speaks(call: EmulatedCall) -> None:
    await update(
        call,
        output_modalities=["text"],
        audio={"input": {"turn_detection": {**SERVER_VAD, "create_response": False}}},
        providerData={"backchannel": {"enabled": True}},
    )
    ch = channel(call)
    feed(call, QUIET, 0.2)
    feed(call, LOUD, 2.5)  # onset at 200 ms: decisions at 1700 and 2500 ms
    feed(call, QUIET, 0.5)
    kinds = [t for t in ch.types() if t.startswith("response.backchannel.")]
    deltas = ch.of_type("response.backchannel.audio.delta")
    # The second evaluation (2500 ms) is inside min_gap_ms: not eligible, no event.
    assert kinds == [BACKCHANNEL_TYPES[0]] * len(deltas) + [BACKCHANNEL_TYPES[1]]
    assert ch.of_type("response.backchannel.audio.done")[0]["phrase"] == "mm-hm"
    assert ch.at("response.backchannel.audio.done") == [pytest.approx(1700, abs=20)]
    # All of it while the user speaks: between speech_started and speech_stopped.
    started = ch.at("input_audio_buffer.speech_started")[0]
    stopped = ch.at("input_audio_buffer.speech_stopped")[0]
    assert started < ch.at("response.backchannel.audio.delta")[0] < stopped
    # The audio: base64 PCM16 (24 kHz mono), a short audible hum scaled by volume_gain (0.6).
    pcm = np.frombuffer(b"".join(base64.b64decode(d["delta"]) for d in deltas), "<i2")
    assert 0.3 < len(pcm) / 24_000 < 0.7
    assert 0.1 < np.max(np.abs(pcm)) / 32768 < 0.25
    assert all(set(d) == {"type", "event_id", "backchannel_id", "delta"} for d in deltas)


async def test_backchannel_is_opt_in_and_waits_for_long_speech(call: EmulatedCall) -> None:
    await update(
        call,
        output_modalities=["text"],
        audio={"input": {"turn_detection": {**SERVER_VAD, "create_response": False}}},
    )
    feed(call, LOUD, 2.5)  # not enabled: nothing
    feed(call, QUIET, 0.5)
    await update(call, providerData={"backchannel": {"enabled": True}})
    feed(call, LOUD, 1.2)  # enabled, but shorter than 1.5 s: nothing
    feed(call, QUIET, 0.5)
    await update(call, providerData={"backchannel": {"enabled": False}})
    feed(call, LOUD, 2.5)
    feed(call, QUIET, 0.5)
    assert len(channel(call).of_type("input_audio_buffer.speech_stopped")) == 3
    assert not [t for t in channel(call).types() if t.startswith("response.backchannel.")]
    # Inworld's knobs: an earlier first decision, no audio at volume_gain 0, one per turn.
    await update(
        call,
        providerData={
            "backchannel": {
                "enabled": True,
                "min_speech_ms": 400,
                "eval_interval_ms": 200,
                "min_gap_ms": 0,
                "max_per_turn": 1,
                "volume_gain": 0,
            }
        },
    )
    seen = len(channel(call).sent)
    feed(call, LOUD, 2.0)
    feed(call, QUIET, 0.5)
    kinds = [e["type"] for _, e in channel(call).sent[seen:] if "backchannel" in e["type"]]
    assert kinds == ["response.backchannel.audio.done"]


async def test_no_backchannel_while_the_assistant_speaks(call: EmulatedCall) -> None:
    await update(
        call,
        audio={"input": {"turn_detection": {**SERVER_VAD, "interrupt_response": False}}},
        providerData={"backchannel": {"enabled": True}},
    )
    call._knobs = lambda: Knobs(**{**FAST, "speech_rate": 10.0})
    await send(call, {"type": "response.create"})
    await until(call, "output_audio_buffer.started")
    feed(call, LOUD, 1.6)  # the reply is still playing (it takes ~5 s at 10 chars/s)
    assert channel(call).of_type("input_audio_buffer.speech_started")
    assert not [t for t in channel(call).types() if t.startswith("response.backchannel.")]
    assert not channel(call).of_type("response.done")  # not interrupted
    await send(call, {"type": "response.cancel"})


async def test_idle_timeout_commits_silence_and_answers(call: EmulatedCall) -> None:
    idle = {**SERVER_VAD, "idle_timeout_ms": 5000, "create_response": False}
    await update(call, output_modalities=["text"], audio={"input": {"turn_detection": idle}})
    ch = channel(call)
    feed(call, QUIET, 5.2)
    (timeout,) = ch.of_type("input_audio_buffer.timeout_triggered")
    assert timeout["audio_start_ms"] == 20 and timeout["audio_end_ms"] == 5020
    committed = ch.of_type("input_audio_buffer.committed")[0]
    item = ch.of_type("conversation.item.done")[0]["item"]
    assert committed["item_id"] == item["id"] == timeout["item_id"]
    assert item["role"] == "user" and item["content"] == [
        {"type": "input_audio", "transcript": None}
    ]
    types = ch.types()
    assert types.index("input_audio_buffer.timeout_triggered") < types.index(
        "input_audio_buffer.committed"
    )
    # Speech restarts the timer: 3 s + speech + 3 s of silence never reaches 5 s.
    feed(call, QUIET, 3.0)
    feed(call, LOUD, 0.5)
    feed(call, QUIET, 3.0)
    assert len(ch.of_type("input_audio_buffer.timeout_triggered")) == 1
    # With create_response, the timeout is answered; no new timer runs during the response.
    await update(call, audio={"input": {"turn_detection": {"create_response": True}}})
    feed(call, QUIET, 2.4)
    assert len(ch.of_type("input_audio_buffer.timeout_triggered")) == 2
    await until(call, "response.done")
    assert len(ch.of_type("response.created")) == 1
    # Off again: no more timeouts.
    await update(call, audio={"input": {"turn_detection": {"idle_timeout_ms": None}}})
    feed(call, QUIET, 6.0)
    assert len(ch.of_type("input_audio_buffer.timeout_triggered")) == 2


async def test_barge_in_truncates_the_reply_to_what_was_heard(call: EmulatedCall) -> None:
    call._knobs = lambda: Knobs(**{**FAST, "speech_rate": 20.0})
    await update(call, audio={"input": {"turn_detection": SERVER_VAD}})
    await send(call, {"type": "response.create"})
    ch = channel(call)
    await until(call, "response.output_audio_transcript.delta", count=4)
    feed(call, LOUD, ONSET_S)  # speech: cancel, clear, truncate
    await until(call, "conversation.item.truncated")
    assert ch.types()[-4:] == [
        "response.done",
        "rate_limits.updated",
        "output_audio_buffer.cleared",
        "conversation.item.truncated",
    ]
    done = ch.of_type("response.done")[0]["response"]
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    item = done["output"][0]
    truncated = ch.of_type("conversation.item.truncated")[0]
    assert truncated["item_id"] == item["id"] and truncated["content_index"] == 0
    sent = item["content"][0]["transcript"]  # the words whose audio had started
    kept = call.conversation.get(item["id"])["content"][0]["transcript"]
    heard_chars = truncated["audio_end_ms"] / 1000 * 20.0
    assert sent.startswith(kept) and len(kept.rstrip(".,!?")) <= heard_chars < len(sent) + 1
    rest = sent[len(kept) :]
    assert rest == "" or rest.startswith(" ")  # cut between words
    assert len(kept.split()) >= len(sent.split()) - 2
    # The audio after the cut is gone: truncating beyond it is an error.
    await send(
        call,
        {
            "type": "conversation.item.truncate",
            "item_id": item["id"],
            "content_index": 0,
            "audio_end_ms": truncated["audio_end_ms"] + 100,
        },
    )
    assert ch.of_type("error")[0]["error"]["param"] == "audio_end_ms"


async def test_barge_in_after_response_done_truncates_the_last_word(call: EmulatedCall) -> None:
    call._knobs = lambda: Knobs(**{**FAST, "speech_rate": 30.0})
    await update(call, audio={"input": {"turn_detection": SERVER_VAD}})
    await send(
        call,
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hi"}],
            },
        },
    )
    await send(call, {"type": "response.create"})
    await until(call, "response.done", timeout=10)
    assert call.active is None and not channel(call).of_type("output_audio_buffer.stopped")
    feed(call, LOUD, ONSET_S)  # the last word ("emulator.", 0.3 s) is still being said
    ch = channel(call)
    assert ch.types()[-2:] == ["output_audio_buffer.cleared", "conversation.item.truncated"]
    item = ch.of_type("response.done")[0]["response"]["output"][0]
    full = item["content"][0]["transcript"]
    kept = call.conversation.get(item["id"])["content"][0]["transcript"]
    assert full.endswith(" emulator.") and kept == full[: -len(" emulator.")]
