"""Synthetic speech and the audio track the emulator sends.

The voice is not TTS: it is a harmonic source shaped by vowel formants, cut into syllables with
smooth envelopes, with pauses at spaces and punctuation. It sounds voice-like, is clearly
audible, and its length follows the text (``len(text) / (chars_per_s * speed)``), which is what
clients and tests need: a playback clock that matches the transcript.

Speech is rendered a 20 ms frame at a time as the track is pulled (:class:`Speech`), so a long
reply costs no more memory than a short one. Playback is scheduled on the monotonic wall clock,
not on how fast the track is pulled, so the transcript pacing holds even when the peer never
consumes the track.
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import hashlib
import re
import threading
import time
from dataclasses import dataclass
from typing import Protocol

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


def _harmonics(f0: float, vowel: tuple[int, int]) -> list[tuple[int, float]]:
    """(k, amplitude) of each harmonic of ``f0`` below 3.5 kHz, shaped by the vowel's formants."""
    out = []
    for k in range(1, int(3500 // f0) + 1):
        f = k * f0
        gain = sum(
            1.0 / (1.0 + ((f - formant) / bw) ** 2)
            for formant, bw in zip(vowel, (90, 120), strict=True)
        )
        out.append((k, gain / k**0.5))
    return out


def _syllable_slice(n: int, f0: float, vowel: tuple[int, int], lo: int, hi: int) -> np.ndarray:
    """Samples ``lo:hi`` of one syllable ``n`` samples long, computed without the rest of it.

    A gently falling pitch (1.05 f0 -> 0.95 f0, like the end of a syllable in speech) under a
    sine envelope. The phase is the running sum of the pitch, in closed form, so any slice is
    exactly what the whole syllable would hold there.
    """
    j = np.arange(lo, hi, dtype=np.float64)
    glide = max((n - 1) / SAMPLE_RATE, 1e-6)  # seconds over which the pitch falls
    phase = (
        2
        * np.pi
        * f0
        / SAMPLE_RATE
        * (1.05 * (j + 1) - 0.1 * j * (j + 1) / (2 * SAMPLE_RATE * glide))
    )
    out = np.zeros(hi - lo)
    for k, amplitude in _harmonics(f0, vowel):
        out += amplitude * np.sin(k * phase)
    envelope = np.sin(np.pi * j / max(n, 1)) ** 0.6
    return np.asarray(out * envelope)


@functools.lru_cache(maxsize=64)
def _voice_gain(f0: float) -> float:
    """Scale that makes the loudest syllable this voice can say peak at ``PEAK``.

    It depends on the voice only, not on the text, so a reply can be rendered frame by frame
    with no pass over the whole of it first.
    """
    n = round(0.2 * SAMPLE_RATE)  # a typical syllable (three characters at 15 chars/s)
    peak = max(
        float(np.max(np.abs(_syllable_slice(n, f0 * (1 + 0.04 * i), vowel, 0, n))))
        for i in range(3)
        for vowel in VOWELS
    )
    return PEAK / peak


class Speech:
    """The synthetic voice saying ``text``: mono int16 at 48 kHz, rendered on demand.

    Only a table of syllables is kept (a few numbers per three characters of text); the samples
    of any span are computed when asked for, from the syllables it overlaps. A 20 ms frame costs
    the same whether the reply is a word or a book, and memory stays per frame.
    """

    def __init__(self, text: str, chars_per_s: float, speed: float = 1.0, voice: str = "") -> None:
        self.samples = round(speech_duration_s(text, chars_per_s, speed) * SAMPLE_RATE)
        self._chars = len(text)
        f0 = 95.0 + _seed("voice", voice) % 120  # each voice name gets its own pitch
        self._gain = _voice_gain(f0) if self.samples else 0.0
        starts: list[int] = []
        ends: list[int] = []
        pitches: list[float] = []
        vowels: list[int] = []
        per_char = self.samples / len(text) if self.samples else 0.0
        for match in _WORD.finditer(text) if self.samples else ():
            word = match.group()
            start = int(match.start() * per_char)
            end = int(match.end() * per_char)
            count = max(1, round(len(word) / 3))
            bounds = np.linspace(start, end, count + 1).astype(int)
            for i in range(count):
                starts.append(int(bounds[i]))
                ends.append(int(bounds[i + 1]))
                pitches.append(f0 * (1 + 0.04 * (i % 3)))
                vowels.append(_seed(word.lower(), str(i)) % len(VOWELS))
        self._starts = np.asarray(starts, dtype=np.int64)
        self._ends = np.asarray(ends, dtype=np.int64)
        self._pitches = pitches
        self._vowels = vowels

    def __len__(self) -> int:
        return self.samples

    complete = True  # its length is known from the start

    def char_sample(self, offset: int) -> int:
        """The sample where the voice reaches character ``offset`` (the pace is even)."""
        return int(self.samples * offset / self._chars) if self._chars else 0

    def char_at(self, sample: int) -> int:
        """How many characters of the text the voice has said by ``sample``."""
        return int(sample * self._chars / self.samples) if self.samples else 0

    def close(self) -> None:
        pass

    def render(self, lo: int, hi: int) -> np.ndarray:
        """Samples ``lo:hi`` (clipped to the speech) as int16."""
        lo, hi = max(lo, 0), min(hi, self.samples)
        out = np.zeros(max(hi - lo, 0))
        if hi <= lo:
            return out.astype(np.int16)
        # Syllables are in order and do not overlap: those ending after lo, starting before hi.
        first = int(np.searchsorted(self._ends, lo, side="right"))
        last = int(np.searchsorted(self._starts, hi, side="left"))
        for s in range(first, last):
            a, b = int(self._starts[s]), int(self._ends[s])
            x, y = max(a, lo), min(b, hi)
            if y > x:
                vowel = VOWELS[self._vowels[s]]
                out[x - lo : y - lo] += _syllable_slice(
                    b - a, self._pitches[s], vowel, x - a, y - a
                )
        return np.asarray(np.clip(np.round(out * self._gain * 32767), -32768, 32767), np.int16)


def synthesize(text: str, chars_per_s: float, speed: float = 1.0, voice: str = "") -> np.ndarray:
    """The whole of :class:`Speech` for ``text`` in one buffer.

    For short texts and tests (a reply is played through :class:`Speech`, a frame at a time).
    """
    speech = Speech(text, chars_per_s, speed, voice)
    return speech.render(0, len(speech))


class Pcm:
    """Ready-made mono int16 samples with the same ``render`` interface as :class:`Speech`."""

    def __init__(self, pcm: np.ndarray, chars: int = 0) -> None:
        self._pcm = np.asarray(pcm, dtype=np.int16)
        self._chars = chars  # the transcript it says, spread evenly

    def __len__(self) -> int:
        return len(self._pcm)

    complete = True

    def render(self, lo: int, hi: int) -> np.ndarray:
        return self._pcm[max(lo, 0) : max(min(hi, len(self._pcm)), 0)]

    def char_sample(self, offset: int) -> int:
        return int(len(self._pcm) * offset / self._chars) if self._chars else 0

    def char_at(self, sample: int) -> int:
        return int(sample * self._chars / len(self._pcm)) if len(self._pcm) else 0

    def close(self) -> None:
        pass


class Sound(Protocol):
    """What the track plays.

    The formant :class:`Speech`, ready-made :class:`Pcm`, or the espeak-ng voice
    (``_tts.SpokenText``), whose length grows until ``complete``.
    """

    def __len__(self) -> int: ...

    def render(self, lo: int, hi: int) -> np.ndarray: ...

    @property
    def complete(self) -> bool: ...

    def char_sample(self, offset: int) -> int | None:
        """Where the voice reaches character ``offset`` of its text (None: not known yet)."""

    def char_at(self, sample: int) -> int:
        """How many characters of its text the voice has said by ``sample``."""

    def close(self) -> None:
        """Stop making more of it (it was cut, or it ended)."""


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
    sound: Sound
    start: float  # time.monotonic() when its first sample plays
    item_id: str = ""  # the assistant item whose audio this is

    @property
    def duration_s(self) -> float:
        return len(self.sound) / SAMPLE_RATE

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

    def play(self, response_id: str, sound: Sound, item_id: str = "") -> Utterance:
        """Start saying ``sound`` now (replacing anything still playing)."""
        self._utterance = Utterance(response_id, sound, time.monotonic(), item_id)
        return self._utterance

    def clear(self) -> Utterance | None:
        """Stop at once; returns what was still playing, if anything."""
        current, self._utterance = self._utterance, None
        if current is not None:
            current.sound.close()
        if current is not None and current.end <= time.monotonic():
            return None
        return current

    def playing(self) -> Utterance | None:
        current = self._utterance
        return current if current is not None and current.end > time.monotonic() else None

    def count(self, frames: int, nonsilent: int) -> None:
        """Add frames sent another way (the WebSocket transport's audio deltas)."""
        with self._lock:
            self.stats.frames += frames
            self.stats.nonsilent_frames += nonsilent

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
        lo, hi = max(offset, 0), min(offset + FRAME_SAMPLES, len(utterance.sound))
        if hi > lo:  # rendered now, one frame at a time
            chunk[lo - offset : hi - offset] = utterance.sound.render(lo, hi)
        return chunk
