"""How well the emulator's offline voice hears and speaks (issue 12), through its real audio path.

An aiortc client (the emulator tests' ``RealtimeClient``) plays espeak-ng speech as its
microphone over WebRTC (Opus), the way a browser would, and prints:

- word error rate of the input transcripts over 20 phrases (Silero VAD -> faster-whisper tiny.en);
- the VAD's turn count for those 20 phrases, and false turns over 60 s of Chromium's stock
  fake-microphone beep and 60 s of typing-like clicks (Silero, and the energy VAD on the same
  signals for comparison);
- the agent's own spoken replies (espeak-ng, received over WebRTC), transcribed by the same
  recognizer: word error rate against the reply text;
- time from the end of each spoken phrase to ``speech_stopped``, to
  ``transcription.completed`` and to the first audible reply frame.

Run it inside the loopback-only namespace (it opens WebRTC peer connections):

    scripts/in-netns .venv/bin/python benchmarks/emulator_voice.py

``--turns`` prints the turn-taking figures instead (no ``[voice]`` needed, espeak-ng speech):
the eagerness trade-off on a turn with pauses ("I'd like a table for" / "two people" / "at
eight."; cut-off rate over 300/500/900/1300 ms pauses and the median end of turn, on the stream
clock with a recognizer that reads each phrase at once), the end of a turn over the stock beep
with the energy VAD, and ``stop_ms`` (the caller's onset -> the last audible frame of the
interrupted reply) over WebRTC with ``interrupt_response``:

    scripts/in-netns .venv/bin/python benchmarks/emulator_voice.py --turns
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack  # noqa: E402

from _phrases import PHRASES  # noqa: E402
from realtime_widget.emulator import (  # noqa: E402
    Emulator,
    _stt,
    _tts,
)
from realtime_widget.emulator._mic import MicMonitor, to_mono_float  # noqa: E402
from realtime_widget.emulator._vad import phrase_is_complete, vad_params  # noqa: E402
from tests.helpers.emu_client import RealtimeClient  # noqa: E402

RATE = 48_000
FRAME = 960
SESSION = {
    "output_modalities": ["audio"],
    "audio": {
        "input": {
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
            "transcription": {"model": "inworld/inworld-stt-1", "language": "en"},
        },
        "output": {"voice": "Ashley"},
    },
}
# Chromium's stock fake microphone as the emulator receives it (frame RMS, 20 ms frames, period
# 500 ms): the levels tests/emulator/test_emu_hardening.py measured.
BEEP_FRAMES_RMS = (0.186, 0.402, 0.052, 0.024, 0.012, 0.009, 0.006, 0.003)


NUMBERS = {"ten": "10", "two": "2", "six": "6", "twenty": "20", "one": "1"}


def words(text: str, normalize: bool = True) -> list[str]:
    """Lower-case words; normalized as WER tools usually do: "real time" is "realtime", and
    number words are digits ("ten" and "10" are the same word)."""
    text = text.lower()
    if normalize:
        text = text.replace("real time", "realtime").replace("real-time", "realtime")
    found = re.findall(r"[a-z0-9']+", text)
    return [NUMBERS.get(w, w) for w in found] if normalize else found


def edits(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def wer(pairs: list[tuple[str, str]], normalize: bool = True) -> float:
    errors = sum(edits(words(r, normalize), words(h, normalize)) for r, h in pairs)
    return errors / max(sum(len(words(r, normalize)) for r, _ in pairs), 1)


def speak(text: str, voice: str = "Dennis") -> np.ndarray:
    sound = _tts.SpokenText(text, voice)
    while not sound.complete:
        time.sleep(0.01)
    return sound.render(0, len(sound))


def beeps(seconds: float) -> np.ndarray:
    tone = np.sin(2 * np.pi * 400 * np.arange(FRAME) / RATE) * np.sqrt(2)
    out = [
        tone * BEEP_FRAMES_RMS[i % 25] if i % 25 < len(BEEP_FRAMES_RMS) else np.zeros(FRAME)
        for i in range(int(seconds * 50))
    ]
    return np.asarray(np.concatenate(out) * 32767, np.int16)


def clicks(seconds: float, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros(int(seconds * RATE))
    t = 0
    while t < len(x) - 200:
        burst = rng.uniform(-1, 1, 150) * np.exp(-np.arange(150) / 30) * rng.uniform(0.3, 0.9)
        x[t : t + 150] += burst
        t += int(rng.uniform(0.08, 0.4) * RATE)
    return np.asarray(np.clip(x, -1, 1) * 32767, np.int16)


class TimedClient(RealtimeClient):
    """Keeps each received audio frame with its arrival time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frames: list[tuple[float, np.ndarray]] = []

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                mono = to_mono_float(await track.recv())
                self.frames.append((time.monotonic(), mono))

    def audio_between(self, start: float, end: float) -> np.ndarray:
        parts = [m for t, m in self.frames if start <= t <= end]
        x = np.concatenate(parts) if parts else np.zeros(0)
        return np.asarray(np.clip(x * 32767, -32768, 32767), np.int16)


async def configure(client: RealtimeClient, session: dict[str, Any]) -> None:
    seen = len(client.events)
    client.send({"type": "session.update", "session": session})
    await client.wait_for("session.updated", after=seen)


def stream_to_wall(client: RealtimeClient, stream_ms: float) -> float:
    """The monotonic time when the mic sent the frame at ``stream_ms`` of its stream."""
    assert client.mic is not None and client.mic._start is not None
    return client.mic._start + stream_ms / 1000


async def phrases(emu: Emulator, model: str) -> dict[str, Any]:
    client = TimedClient(emu.base_url, emu.api_key)
    await client.connect()
    assert client.mic is not None
    await configure(client, SESSION)
    heard, replies = [], []
    to_stopped, to_completed, to_audio = [], [], []
    client.mic.silence(0.5)
    for phrase in PHRASES:
        pcm = speak(phrase)
        loud = np.nonzero(np.abs(pcm) > 300)[0]
        start_ms = client.mic.say(pcm)
        end_ms = start_ms + 1000 * (loud[-1] + 1) / RATE
        client.mic.silence(1.0)
        seen = len(client.events)
        stopped = await client.wait_for("input_audio_buffer.speech_stopped", timeout=20, after=seen)
        completed = await client.wait_for(
            "conversation.item.input_audio_transcription.completed", timeout=30, after=seen
        )
        started = await client.wait_for("output_audio_buffer.started", timeout=30, after=seen)
        done = await client.wait_for("output_audio_buffer.stopped", timeout=60, after=seen)
        response = await client.wait_for("response.done", timeout=5, after=seen)
        end_wall = stream_to_wall(client, end_ms)
        to_stopped.append(client.time_of(stopped) - end_wall)
        to_completed.append(client.time_of(completed) - end_wall)
        first = next(
            (
                t
                for t, m in client.frames
                if t >= client.time_of(started) - 0.05 and np.sqrt(np.mean(m * m)) > 0.01
            ),
            None,
        )
        if first is not None:
            to_audio.append(first - end_wall)
        heard.append((phrase, completed["transcript"]))
        said = response["response"]["output"][0]["content"][0]["transcript"]
        audio = client.audio_between(client.time_of(started) - 0.05, client.time_of(done) + 0.3)
        spoken = await asyncio.to_thread(_stt.recognize, model, audio, RATE, "en", None)
        replies.append((said, spoken.text))
        client.mic.silence(0.3)
    turns = len(client.of_type("input_audio_buffer.speech_started"))
    await client.close()
    return {
        "heard": heard,
        "replies": replies,
        "turns": turns,
        "to_stopped": to_stopped,
        "to_completed": to_completed,
        "to_audio": to_audio,
    }


async def false_turns(emu: Emulator, pcm: np.ndarray) -> int:
    """speech_started events while ``pcm`` plays as the mic (default session: semantic VAD)."""
    client = RealtimeClient(emu.base_url, emu.api_key)
    await client.connect()
    assert client.mic is not None
    client.mic.say(pcm)
    while client.mic.queued_s > 0:
        await asyncio.sleep(0.5)
    await asyncio.sleep(1.5)
    count = len(client.of_type("input_audio_buffer.speech_started"))
    await client.close()
    return count


def energy_false_turns(pcm: np.ndarray) -> int:
    events: list[Any] = []
    mic = MicMonitor(
        lambda e, s: events.append(e), vad_params({"type": "semantic_vad"}), vad="energy"
    )
    x = pcm.astype(np.float64) / 32768
    for i in range(0, len(x) - FRAME + 1, FRAME):
        mic.feed(x[i : i + FRAME], RATE)
    return sum(e.kind == "speech_started" for e in events)


def ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    p50 = statistics.median(values) * 1000
    return f"median {p50:.0f} ms, min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f}"


async def main() -> None:
    model = _stt.resolve_model("auto")
    if model is None or _tts.engine() is None:
        raise SystemExit('needs realtime-widget[voice]: pip install "realtime-widget[voice]"')
    await asyncio.to_thread(_stt.load, model)  # loaded once, as in a running emulator
    emu = Emulator().start()
    try:
        beep_pcm, click_pcm = beeps(60.0), clicks(60.0)
        print("playing 60 s of the stock beep and 60 s of clicks, then 20 phrases...", flush=True)
        beep_turns, click_turns = await asyncio.gather(
            false_turns(emu, beep_pcm), false_turns(emu, click_pcm)
        )
        result = await phrases(emu, model)
    finally:
        emu.stop()
    print()
    print("input transcripts (espeak-ng voice 'Dennis' as the mic, over WebRTC/Opus):")
    for ref, hyp in result["heard"]:
        print(f"  {ref!r:45} -> {hyp!r}")
    print(
        f"WER of input transcripts (20 phrases): {wer(result['heard']):.1%} "
        f"(raw words, no normalization: {wer(result['heard'], False):.1%})"
    )
    print(f"VAD turns for 20 phrases: {result['turns']}")
    print(
        f"false turns, 60 s stock beep: silero {beep_turns}, energy {energy_false_turns(beep_pcm)}"
    )
    print(f"false turns, 60 s clicks: silero {click_turns}, energy {energy_false_turns(click_pcm)}")
    print(
        f"WER of the agent's spoken replies, recorded and transcribed: "
        f"{wer(result['replies']):.1%} (raw words: {wer(result['replies'], False):.1%})"
    )
    for ref, hyp in result["replies"][:3]:
        print(f"  {ref!r} -> {hyp!r}")
    print(f"end of speech -> speech_stopped: {ms(result['to_stopped'])}")
    print(f"end of speech -> transcription.completed: {ms(result['to_completed'])}")
    print(f"end of speech -> first audible reply frame: {ms(result['to_audio'])}")


# --- turn-taking figures (--turns) -----------------------------------------------------------

PAUSED_PHRASES = ["I'd like a table for", "two people", "at eight."]
PAUSES_MS = (300, 500, 900, 1300)


def trimmed(pcm: np.ndarray) -> np.ndarray:
    """Without espeak-ng's own leading and trailing silence: pauses are as long as stated."""
    loud = np.nonzero(np.abs(pcm) > 300)[0]
    return pcm[loud[0] : loud[-1] + 1]


def pauses_turn(eagerness: str, pause_ms: int) -> tuple[bool, float | None]:
    """(cut off, last sample -> speech_stopped ms) for the three phrases with ``pause_ms``
    between them, energy VAD on the stream clock; each pause is read at once (the words so far)."""
    events: list[Any] = []
    td = {"type": "semantic_vad", "eagerness": eagerness, "create_response": False}
    mic = MicMonitor(lambda e, s: events.append(e), vad_params(td), vad="energy")
    gap = np.zeros(int(pause_ms * RATE / 1000), np.int16)
    parts, ends, t = [np.zeros(RATE // 2, np.int16)], [], RATE // 2
    for i, phrase in enumerate(PAUSED_PHRASES):
        pcm = trimmed(speak(phrase))
        parts.append(pcm)
        t += len(pcm)
        ends.append(t * 1000 / RATE)
        if i < len(PAUSED_PHRASES) - 1:
            parts.append(gap)
            t += len(gap)
    parts.append(np.zeros(RATE * 4, np.int16))
    x = np.concatenate(parts).astype(np.float64) / 32768
    judged: set[int] = set()
    for i in range(0, len(x) - FRAME + 1, FRAME):
        mic.feed(x[i : i + FRAME], RATE)
        pause = mic.pause() if mic.judges_phrases else None
        if pause is not None and pause[1] >= 120 and pause[0] not in judged:
            judged.add(pause[0])
            said = " ".join(
                p for p, end in zip(PAUSED_PHRASES, ends, strict=True) if end <= mic.stream_ms
            )
            mic.judged(pause[0], phrase_is_complete(said))
    stops = [e for e in events if e.kind == "speech_stopped"]
    cut_off = bool(stops) and stops[0].audio_ms < ends[-1]
    end_of_turn = stops[-1].audio_ms - ends[-1] if stops and not cut_off else None
    return cut_off, end_of_turn


def beep_end_of_turn() -> list[float]:
    """Energy VAD: espeak-ng phrases over the stock beep -> speech_stopped after the speech."""
    out = []
    for k, phrase in enumerate(PHRASES[:10]):
        events: list[Any] = []
        mic = MicMonitor(
            lambda e, s, ev=events: ev.append(e), vad_params({"type": "semantic_vad"}), vad="energy"
        )
        pcm = trimmed(speak(phrase))
        lead = RATE // 2 + k * FRAME  # the beep lands at another place in each phrase
        x = np.zeros(lead + len(pcm) + RATE * 4)
        x[lead : lead + len(pcm)] = pcm / 32768
        bp = beeps(len(x) / RATE + 1).astype(np.float64) / 32768
        x += bp[: len(x)]
        for i in range(0, len(x) - FRAME + 1, FRAME):
            mic.feed(x[i : i + FRAME], RATE)
        stopped = [e for e in events if e.kind == "speech_stopped"]
        if stopped:
            out.append((stopped[0].audio_ms - (lead + len(pcm)) * 1000 / RATE) / 1000)
    return out


async def stop_latency(rounds: int = 10) -> list[float]:
    emu = Emulator(vad="energy", tts="formant", stt_model="none", speech_rate=12.0).start()
    client = TimedClient(emu.base_url, emu.api_key)
    stops = []
    try:
        await client.connect()
        assert client.mic is not None
        turn = {"type": "server_vad", "silence_duration_ms": 500, "create_response": False}
        await configure(client, {"audio": {"input": {"turn_detection": turn}}})
        pcm = speak("Sorry, actually make that three.")
        for i in range(rounds):
            seen = len(client.events)
            client.send({"type": "response.create"})
            await client.wait_for("output_audio_buffer.started", after=seen)
            await asyncio.sleep(0.7 + 0.05 * i)
            loud = np.nonzero(np.abs(pcm) > 1000)[0]
            onset = time.monotonic() + client.mic.queued_s + loud[0] / RATE
            client.mic.say(pcm)
            await client.wait_for("output_audio_buffer.cleared", after=seen, timeout=5)
            while client.mic.queued_s > 0:  # the whole phrase, and its turn's end, first
                await asyncio.sleep(0.05)
            await client.wait_for("input_audio_buffer.speech_stopped", after=seen, timeout=5)
            await client.quiet_for(0.5)
            audible = [t for t, m in client.frames if np.sqrt(np.mean(m * m)) > 0.003]
            stops.append(max(t for t in audible if t < onset + 2.0) - onset)
    finally:
        await client.close()
        emu.stop()
    return stops


async def turns_main() -> None:
    print("eagerness trade-off, pauses turn (energy VAD, stream clock, words read at once):")
    print(f"  {'eagerness':10} {'cut-off rate':>12} {'end_of_turn_ms p50':>19}")
    for eagerness in ("high", "medium", "low"):
        runs = [pauses_turn(eagerness, p) for p in PAUSES_MS]
        cut = sum(c for c, _ in runs) / len(runs)
        ends = [e for _, e in runs if e is not None]
        p50 = f"{statistics.median(ends):.0f}" if ends else "n/a"
        print(f"  {eagerness:10} {cut:>12.0%} {p50:>19}")
    print(
        f"end of turn over the stock beep (energy VAD, semantic medium, 10 phrases): "
        f"{ms(beep_end_of_turn())}"
    )
    stops = await stop_latency()
    p95 = sorted(stops)[int(0.95 * (len(stops) - 1))] * 1000
    print(
        f"stop_ms with interrupt_response (aiortc client, 10 barge-ins): {ms(stops)}, "
        f"p95 {p95:.0f} ms"
    )


if __name__ == "__main__":
    asyncio.run(turns_main() if "--turns" in sys.argv[1:] else main())
