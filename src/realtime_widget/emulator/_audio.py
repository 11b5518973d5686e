"""Synthetic speech and the audio track the emulator sends.

The voice is not TTS: it is a harmonic source shaped by vowel formants, cut into syllables with
smooth envelopes, with pauses at spaces and punctuation. It sounds voice-like, is clearly
audible, and its length follows the text (``len(text) / (chars_per_s * speed)``), which is what
clients and tests need: a playback clock that matches the transcript.

Playback is scheduled on the monotonic wall clock, not on how fast the track is pulled, so the
transcript pacing holds even when the peer never consumes the track.
"""

from __future__ import annotations

import asyncio
import fractions
import hashlib
import re
import threading
import time
from dataclasses import dataclass

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms, the packetization browsers and aiortc use
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
PEAK = 0.3  # about -10 dBFS: plainly audible, far from clipping
# (F1, F2) of a few vowels, Hz: a, i, e, o, u, ae, schwa.
VOWELS = ((730, 1090), (270, 2290), (530, 1840), (570, 840), (300, 870), (660, 1720), (500, 1500))
_WORD = re.compile(r"[A-Za-z0-9À-ɏ']+")


def speech_duration_s(text: str, chars_per_s: float, speed: float = 1.0) -> float:
    """How long the synthetic voice takes to say ``text``."""
    return len(text) / (chars_per_s * speed) if text.strip() else 0.0


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest()[:4], "little")


def _syllable(n: int, f0: float, vowel: tuple[int, int]) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    # A gently falling pitch, like the end of a syllable in speech.
    pitch = f0 * (1.05 - 0.1 * t / max(t[-1], 1e-6)) if n else np.zeros(0)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    out = np.zeros(n)
    for k in range(1, int(3500 // f0) + 1):
        f = k * f0
        gain = sum(
            1.0 / (1.0 + ((f - formant) / bw) ** 2)
            for formant, bw in zip(vowel, (90, 120), strict=True)
        )
        out += gain / k**0.5 * np.sin(k * phase)
    envelope = np.sin(np.pi * np.arange(n) / max(n, 1)) ** 0.6
    return np.asarray(out * envelope)


def synthesize(text: str, chars_per_s: float, speed: float = 1.0, voice: str = "") -> np.ndarray:
    """Mono int16 PCM at 48 kHz saying ``text`` in the synthetic voice, deterministic."""
    duration = speech_duration_s(text, chars_per_s, speed)
    total = round(duration * SAMPLE_RATE)
    out = np.zeros(total)
    if total == 0:
        return out.astype(np.int16)
    per_char = total / len(text)
    f0 = 95.0 + _seed("voice", voice) % 120  # each voice name gets its own pitch
    for match in _WORD.finditer(text):
        word = match.group()
        start = int(match.start() * per_char)
        end = int(match.end() * per_char)
        count = max(1, round(len(word) / 3))
        bounds = np.linspace(start, end, count + 1).astype(int)
        for i in range(count):
            a, b = int(bounds[i]), int(bounds[i + 1])
            vowel = VOWELS[_seed(word.lower(), str(i)) % len(VOWELS)]
            out[a:b] += _syllable(b - a, f0 * (1 + 0.04 * (i % 3)), vowel)
    peak = float(np.max(np.abs(out)))
    if peak > 0:
        out *= PEAK / peak
    return np.asarray(np.round(out * 32767), dtype=np.int16)


def frame_rms(samples: np.ndarray) -> float:
    """RMS of int16 or float samples, as a fraction of full scale (0..1)."""
    if samples.size == 0:
        return 0.0
    data = samples.astype(np.float64)
    if samples.dtype.kind in "iu":
        data /= 32768.0
    return float(np.sqrt(np.mean(data * data)))


@dataclass
class AudioOutStats:
    frames: int = 0
    nonsilent_frames: int = 0


@dataclass
class Utterance:
    response_id: str
    pcm: np.ndarray
    start: float  # time.monotonic() when its first sample plays
    item_id: str = ""  # the assistant item whose audio this is

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / SAMPLE_RATE

    @property
    def end(self) -> float:
        return self.start + self.duration_s


class VoiceTrack(MediaStreamTrack):
    """20 ms mono frames at 48 kHz in real time: silence, or the current utterance."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.stats = AudioOutStats()
        self._lock = threading.Lock()  # stats are read from other threads (snapshots)
        self._utterance: Utterance | None = None
        self._start: float | None = None
        self._timestamp = 0

    def play(self, response_id: str, pcm: np.ndarray, item_id: str = "") -> Utterance:
        """Start saying ``pcm`` now (replacing anything still playing)."""
        self._utterance = Utterance(response_id, pcm, time.monotonic(), item_id)
        return self._utterance

    def clear(self) -> Utterance | None:
        """Stop at once; returns what was still playing, if anything."""
        current, self._utterance = self._utterance, None
        if current is not None and current.end <= time.monotonic():
            return None
        return current

    def playing(self) -> Utterance | None:
        current = self._utterance
        return current if current is not None and current.end > time.monotonic() else None

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"frames": self.stats.frames, "nonsilent_frames": self.stats.nonsilent_frames}

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            self._timestamp += FRAME_SAMPLES
        frame_time = self._start + self._timestamp / SAMPLE_RATE
        if frame_time > now:
            await asyncio.sleep(frame_time - now)
        chunk = self._slice(frame_time)
        with self._lock:
            self.stats.frames += 1
            if np.any(chunk):
                self.stats.nonsilent_frames += 1
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._timestamp
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        return frame

    def _slice(self, frame_time: float) -> np.ndarray:
        chunk = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        utterance = self._utterance
        if utterance is None:
            return chunk
        offset = round((frame_time - utterance.start) * SAMPLE_RATE)
        lo, hi = max(offset, 0), min(offset + FRAME_SAMPLES, len(utterance.pcm))
        if hi > lo:
            chunk[lo - offset : hi - offset] = utterance.pcm[lo:hi]
        return chunk
