"""The offline turn-taking trade-off: the emulator's eagerness levels against each other.

An aiortc client (the emulator tests' ``RealtimeClient``, a browser's path with Opus over
WebRTC) plays the experiments' own clips as its microphone, and the columns are computed by the
experiments' own code (``PausesTurn.measure``), from the client's events on its clock:

- for each eagerness of semantic VAD: the cut-off rate of the pauses turn ("I'd like a table
  for" / "two people" / "at eight", pauses of 300, 600, 900 and 1300 ms) and its median
  ``end_of_turn_ms``, over the turns that were not cut off;
- false turns per minute of babble at SNR 10 dB (``Condition(noise="babble", snr_db=10).noise``,
  what ``Script.noise`` plays), with each eagerness; and of "the next table": two voices taking
  turns with pauses between their sentences (an array noise, also at SNR 10 dB);
- ``stop_ms`` with ``interrupt_response`` (server VAD): the barge-in's speech onset -> the last
  received frame of the interrupted reply above the page's audible level (RMS 0.01).

The emulator runs with Silero VAD and no recognizer (``stt_model="none"``), so semantic VAD
waits its eagerness's own time after every pause. Run it inside the loopback-only namespace:

    scripts/in-netns .venv/bin/python benchmarks/turn_taking.py [--babble-s 30] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import statistics
import sys
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import soxr

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack  # noqa: E402

from realtime_widget import Condition, Script  # noqa: E402
from realtime_widget._audio import synthesize  # noqa: E402
from realtime_widget.emulator import Emulator  # noqa: E402
from realtime_widget.emulator._mic import to_mono_float  # noqa: E402
from realtime_widget.media._noise import _BABBLE_LINES as BABBLE_LINES  # noqa: E402
from tests.helpers.emu_client import RATE, RealtimeClient  # noqa: E402

EAGERNESS = ("high", "medium", "low")
PHRASES = ["I'd like a table for", "two people", "at eight"]
PAUSES_MS = (300, 600, 900, 1300)
AUDIBLE_RMS = 0.01
STOP_SESSIONS = {
    "server_vad (500 ms)": {"type": "server_vad", "silence_duration_ms": 500},
    **{f"semantic_vad {e}": {"type": "semantic_vad", "eagerness": e} for e in EAGERNESS},
}


def pcm48(wav: bytes) -> np.ndarray:
    """A WAV clip as the mic's mono int16 at 48 kHz."""
    with wave.open(io.BytesIO(wav)) as f:
        rate = f.getframerate()
        x = np.frombuffer(f.readframes(f.getnframes()), "<i2").astype(np.float32) / 32768
    y = soxr.resample(x, rate, RATE)
    return np.asarray(np.clip(y * 32767, -32768, 32767), np.int16)


class TimedClient(RealtimeClient):
    """Keeps each received audio frame with its arrival time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frames: list[tuple[float, float]] = []  # (arrival, RMS) per 20 ms frame

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                mono = to_mono_float(await track.recv())
                self.frames.append((time.monotonic(), float(np.sqrt(np.mean(mono * mono)))))


def wall_ms(client: RealtimeClient, stream_ms: float) -> float:
    """The monotonic ms at which the mic sent the frame at ``stream_ms`` of its stream."""
    assert client.mic is not None and client.mic._start is not None
    return (client.mic._start + stream_ms / 1000) * 1000


def records(client: RealtimeClient, after: int, start: float, end: float) -> list[dict[str, Any]]:
    """The client's events since ``after`` as log records (monotonic ms), with the clip's
    say.started / say.ended: what the widget's rows are folded from."""
    evs = [
        ("server", e, client.times[i] * 1000)
        for i, e in enumerate(client.events)
        if i >= after
    ]  # fmt: skip
    evs += [
        ("local", {"type": "say.started", "clip_id": "c"}, start),
        ("local", {"type": "say.ended", "clip_id": "c"}, end),
    ]
    evs.sort(key=lambda e: e[2])
    return [
        {"seq": i, "direction": d, "type": e.get("type"), "t_ms": t, "event": e}
        for i, (d, e, t) in enumerate(evs)
    ]


async def configure(client: RealtimeClient, turn_detection: dict[str, Any]) -> None:
    seen = len(client.events)
    client.send({"type": "session.update", "session": {"audio": {"input": {
        "turn_detection": turn_detection}}}})  # fmt: skip
    await client.wait_for("session.updated", after=seen)


async def pauses(emu: Emulator, eagerness: str) -> list[dict[str, Any]]:
    client = RealtimeClient(emu.base_url, emu.api_key)
    out = []
    try:
        await client.connect()
        assert client.mic is not None
        await configure(client, {"type": "semantic_vad", "eagerness": eagerness})
        client.mic.silence(0.5)
        for pause in PAUSES_MS:
            turn = Script.pauses(PHRASES, pause_ms=pause)
            pcm = pcm48(turn.audio)
            seen = len(client.events)
            start_ms = client.mic.say(pcm)
            client.mic.silence(0.1)
            while client.mic.queued_s > 0:
                await asyncio.sleep(0.05)
            await client.wait_for("input_audio_buffer.speech_stopped", after=seen, timeout=10)
            await client.wait_for("output_audio_buffer.stopped", after=seen, timeout=30)
            await client.quiet_for(0.6)
            start = wall_ms(client, start_ms)
            got = turn.measure(records(client, seen, start, start + len(pcm) * 1000 / RATE))
            out.append({"pause_ms": pause, **got})
            client.mic.silence(0.3)
    finally:
        await client.close()
    return out


def next_table(seconds: float, seed: int = 3) -> tuple[np.ndarray, int]:
    """Two espeak-ng voices talking in turn, 0.3-1.5 s apart: a conversation at the next
    table, with the gaps a seven-voice babble bed does not have."""
    rng = np.random.default_rng(seed)
    voices = (("en-gb+m3", 170), ("en-us+f2", 180))
    lines = list(BABBLE_LINES)
    parts, total, i = [], 0, 0
    while total < seconds * RATE:
        voice, wpm = voices[i % 2]
        x = pcm48(synthesize(lines[i % len(lines)], voice=voice, wpm=wpm))
        gap = np.zeros(int(rng.uniform(0.3, 1.5) * RATE), np.int16)
        parts += [x, gap]
        total += x.size + gap.size
        i += 1
    return np.concatenate(parts)[: int(seconds * RATE)].astype(np.float32) / 32768, RATE


async def false_turns(emu: Emulator, eagerness: str, seconds: float, noise_of: Condition) -> int:
    noise = noise_of.noise(seconds * 1000, RATE)
    pcm = np.asarray(np.clip(noise * 32767, -32768, 32767), np.int16)
    client = RealtimeClient(emu.base_url, emu.api_key)
    try:
        await client.connect()
        assert client.mic is not None
        await configure(
            client, {"type": "semantic_vad", "eagerness": eagerness, "create_response": False}
        )
        seen = len(client.events)
        client.mic.say(pcm)
        while client.mic.queued_s > 0:
            await asyncio.sleep(0.25)
        await asyncio.sleep(1.0)
        return sum(
            1 for e in client.events[seen:] if e.get("type") == "input_audio_buffer.speech_started"
        )
    finally:
        await client.close()


async def stop_latency(emu: Emulator, rounds: int, turn_detection: dict[str, Any]) -> list[float]:
    turn = Script.barge_in(text="Sorry, actually make that three.", after_ms=700)
    pcm = pcm48(turn.audio)
    client = TimedClient(emu.base_url, emu.api_key)
    stops = []
    try:
        await client.connect()
        assert client.mic is not None
        await configure(client, {**turn_detection, "create_response": False})
        for i in range(rounds):
            seen = len(client.events)
            client.send({"type": "response.create"})
            await client.wait_for("output_audio_buffer.started", after=seen)
            await asyncio.sleep(0.7 + 0.05 * i)
            start_ms = client.mic.say(pcm)
            await client.wait_for("output_audio_buffer.cleared", after=seen, timeout=5)
            while client.mic.queued_s > 0:
                await asyncio.sleep(0.05)
            await client.wait_for("input_audio_buffer.speech_stopped", after=seen, timeout=5)
            await client.quiet_for(0.5)
            onset = (wall_ms(client, start_ms) + turn.speech_onset_ms) / 1000
            heard = [t for t, rms in client.frames if rms > AUDIBLE_RMS and t < onset + 3.0]
            stops.append((max(heard) - onset) * 1000)
    finally:
        await client.close()
    return stops


def p(values: list[float], q: float) -> float:
    return float(np.quantile(values, q)) if values else float("nan")


async def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--babble-s", type=float, default=30.0, help="babble per eagerness (s)")
    args.add_argument("--rounds", type=int, default=10, help="barge-ins for stop_ms")
    opts = args.parse_args()
    emu = Emulator(vad="silero", stt_model="none").start()
    try:
        print(
            f"eagerness trade-off (emulator, Silero VAD, no recognizer; pauses "
            f"{', '.join(map(str, PAUSES_MS))} ms; babble at SNR 10 dB, {opts.babble_s:g} s each):"
        )
        babble = Condition(noise="babble", snr_db=10)
        table = Condition(noise=next_table(60.0), snr_db=10)
        print(f"  {'eagerness':10} {'cut-off rate':>12} {'end_of_turn_ms p50':>19} "
              f"{'false turns/min: babble':>24} {'next table':>11}")  # fmt: skip
        for eagerness in EAGERNESS:
            got = await pauses(emu, eagerness)
            cut = [g["cut_off"] for g in got if g["cut_off"] is not None]
            ends = [g["end_of_turn_ms"] for g in got if not g["cut_off"] and g["end_of_turn_ms"]]
            minutes = opts.babble_s / 60
            per_min = await false_turns(emu, eagerness, opts.babble_s, babble) / minutes
            chatter = await false_turns(emu, eagerness, opts.babble_s, table) / minutes
            rate = sum(cut) / len(cut) if cut else float("nan")
            p50 = f"{statistics.median(ends):.0f}" if ends else "n/a"
            cuts = "".join("x" if g["cut_off"] else "." for g in got)
            print(f"  {eagerness:10} {rate:>11.0%} {p50:>19} {per_min:>24.1f} {chatter:>11.1f}"
                  f"   (cut off per pause: {cuts})")  # fmt: skip
        print(f"stop_ms with interrupt_response (aiortc client, {opts.rounds} barge-ins each):")
        for name, td in STOP_SESSIONS.items():
            stops = await stop_latency(emu, opts.rounds, td)
            print(
                f"  {name:24} p50 {p(stops, 0.5):4.0f} ms, p95 {p(stops, 0.95):4.0f} ms, "
                f"min {min(stops):.0f}, max {max(stops):.0f}"
            )
    finally:
        emu.stop()


if __name__ == "__main__":
    asyncio.run(main())
