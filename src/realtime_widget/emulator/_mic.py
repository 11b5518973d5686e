"""Read the peer's microphone track: levels, statistics, VAD, and the audio of each turn.

The uplink knobs act here, before the VAD and the recognizer: ``uplink_loss`` replaces that
fraction of the caller's 20 ms frames by silence (the stream clock runs on, as RTP timestamps
do), ``uplink_jitter_ms`` holds each frame a random 0..N ms, so frames that overtake each
other are heard out of order, as by a receiver without a jitter buffer. Both draw from a
generator seeded per call (``UPLINK_SEED``), so a run repeats exactly.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ._vad import EnergyVad, SileroVad, VadEvent, VadParams, make_vad

log = logging.getLogger(__name__)

MAX_TURN_S = 60.0  # cap on buffered audio per turn, so a stuck open mic cannot eat memory
UPLINK_SEED = 20  # every call loses and delays the same frames for the same knobs


@dataclass
class Segment:
    """Audio of one user turn, mono int16, with its place on the stream clock."""

    pcm: np.ndarray
    sample_rate: int
    start_ms: int
    end_ms: int

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / self.sample_rate if self.sample_rate else 0.0


def to_mono_float(frame: Any) -> np.ndarray:
    """An av.AudioFrame as mono float samples in -1..1, whatever its layout or sample format."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        mono = data.reshape(channels, -1).mean(axis=0)
    else:
        mono = data.reshape(-1, channels).mean(axis=1)
    if data.dtype.kind in "iu":
        mono = mono / float(np.iinfo(data.dtype).max + 1)
    return np.asarray(mono, dtype=np.float64)


class MicMonitor:
    """Consumes the mic track on the emulator's loop; reports VAD events and turn audio."""

    def __init__(
        self,
        on_vad: Callable[[VadEvent, Segment | None], None],
        params: VadParams | None,
        on_frame: Callable[[float], None] | None = None,
        vad: str = "auto",
        uplink: Callable[[], tuple[float, float]] | None = None,
    ) -> None:
        self._on_vad = on_vad
        self._uplink = uplink  # (loss fraction, jitter ms), read per frame: knobs apply live
        self._rng = random.Random(UPLINK_SEED)
        self.frames_lost = 0
        self.frames_delayed = 0
        self.frames_reordered = 0
        self._jitter_pending = 0
        self._jitter_last_due = 0.0
        self._on_frame = on_frame  # called after every frame with the stream time (ms)
        self._engine = vad  # the vad knob: auto / silero / energy
        self._vad: EnergyVad | SileroVad | None = make_vad(params, vad) if params else None
        self._lock = threading.Lock()
        self.frames = 0
        self.peak_rms = 0.0
        self._rms_sum = 0.0
        self.speech_segments = 0
        self.stream_ms = 0.0
        self.sample_rate = 48_000
        self._recent: collections.deque[tuple[float, np.ndarray]] = collections.deque()
        self._turn: list[np.ndarray] = []
        self._turn_start_ms = 0.0
        self._manual_start_ms = 0.0

    # --- configuration -------------------------------------------------------------------
    def set_params(self, params: VadParams | None) -> None:
        """Apply a new turn_detection; switching kind mid-turn restarts detection cleanly."""
        if params is None:
            if self._vad is not None:
                self._vad.close()
            self._vad = None
            self._turn = []
            self._manual_start_ms = self.stream_ms
        elif self._vad is None:
            self._vad = make_vad(params, self._engine)
            self._turn = []
        else:
            self._vad.params = params

    @property
    def detector(self) -> str:
        """Which detector runs: "silero", "energy" or "off"."""
        if self._vad is None:
            return "off"
        return "silero" if isinstance(self._vad, SileroVad) else "energy"

    def close(self) -> None:
        """Give the speech model back (the call ended)."""
        if self._vad is not None:
            self._vad.close()
            self._vad = None

    @property
    def in_speech(self) -> bool:
        return bool(self._vad and self._vad.in_speech)

    # --- statistics ----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "frames": self.frames,
                "peak_rms": round(self.peak_rms, 6),
                "rms_mean": round(self._rms_sum / self.frames, 6) if self.frames else 0.0,
                "speech_segments": self.speech_segments,
                "stream_ms": int(self.stream_ms),
                "vad": self.detector,
                "uplink": {
                    "lost": self.frames_lost,
                    "delayed": self.frames_delayed,
                    "reordered": self.frames_reordered,
                },
            }

    # --- the stream ----------------------------------------------------------------------
    async def run(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                self.receive(to_mono_float(frame), int(getattr(frame, "sample_rate", 48_000)))
        finally:
            self.close()

    def receive(self, mono: np.ndarray, sample_rate: int) -> None:
        """One frame off the network: the uplink knobs may lose or delay it, then :meth:`feed`.

        A delayed frame needs a running event loop (the mic track's).
        """
        loss, jitter_ms = self._uplink() if self._uplink is not None else (0.0, 0.0)
        if loss > 0 and self._rng.random() < loss:
            with self._lock:
                self.frames_lost += 1
            mono = np.zeros_like(mono)
        if jitter_ms <= 0 and not self._jitter_pending:
            self.feed(mono, sample_rate)
            return
        delay = self._rng.uniform(0.0, jitter_ms) / 1000 if jitter_ms > 0 else 0.0
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        if due < self._jitter_last_due:
            self.frames_reordered += 1  # it overtakes a frame sent before it
        self._jitter_last_due = max(self._jitter_last_due, due)
        self._jitter_pending += 1
        self.frames_delayed += delay > 0
        loop.call_at(due, self._arrive, mono, sample_rate)

    def _arrive(self, mono: np.ndarray, sample_rate: int) -> None:
        self._jitter_pending -= 1
        self.feed(mono, sample_rate)

    def feed(self, mono: np.ndarray, sample_rate: int) -> None:
        """One decoded frame: update stats, keep its audio, run the VAD."""
        self.sample_rate = sample_rate
        rms = float(np.sqrt(np.mean(mono * mono))) if mono.size else 0.0
        start_ms = self.stream_ms
        end_ms = start_ms + 1000.0 * mono.size / sample_rate
        self.stream_ms = end_ms
        with self._lock:
            self.frames += 1
            self._rms_sum += rms
            self.peak_rms = max(self.peak_rms, rms)
        pcm = np.asarray(np.clip(mono * 32767, -32768, 32767), dtype=np.int16)
        self._keep(start_ms, pcm)
        self._detect(mono, rms, start_ms, end_ms, sample_rate)
        if self._on_frame is not None:
            self._on_frame(end_ms)

    def _detect(
        self, mono: np.ndarray, rms: float, start_ms: float, end_ms: float, sample_rate: int
    ) -> None:
        if self._vad is None:
            return
        event = self._vad.feed_frame(mono, sample_rate, rms, start_ms, end_ms)
        if event is None:
            return
        if event.kind == "speech_started":
            # The turn's audio begins at the padded start: take it from the recent frames.
            self._turn = [p for t, p in self._recent if t >= event.audio_ms - 20]
            self._turn_start_ms = event.audio_ms
            self._on_vad(event, None)
        else:
            with self._lock:
                self.speech_segments += 1
            segment = Segment(
                np.concatenate(self._turn) if self._turn else np.zeros(0, np.int16),
                sample_rate,
                int(self._turn_start_ms),
                event.audio_ms,
            )
            self._turn = []
            self._on_vad(event, segment)

    # --- semantic_vad: judging a pause -----------------------------------------------------
    @property
    def judges_phrases(self) -> bool:
        """True when the session's turn detection waits longer after an unfinished phrase."""
        return self._vad is not None and self._vad.params.incomplete_silence_ms is not None

    def pause(self) -> tuple[int, float] | None:
        """(pause id, ms of quiet so far) while a turn pauses, else None."""
        if self._vad is None:
            return None
        timer = self._vad.timer
        quiet = timer.silence_ms(self.stream_ms)
        return None if quiet is None or quiet <= 0 else (timer.pause_id, quiet)

    def judging(self, pause_id: int) -> None:
        """The words of pause ``pause_id`` are being read: wait as for an unfinished phrase."""
        if self._vad is not None and self._vad.timer.pause_id == pause_id:
            self._vad.timer.judging = True

    def judged(self, pause_id: int, complete: bool | None) -> None:
        """The reading of pause ``pause_id``: True finished, False unfinished, None unknown."""
        if self._vad is not None and self._vad.timer.pause_id == pause_id:
            self._vad.timer.judging = False
            self._vad.timer.phrase_complete = complete

    def turn_so_far(self) -> Segment:
        """The current turn's audio up to now (for reading its words before it ends)."""
        pcm = np.concatenate(self._turn) if self._turn else np.zeros(0, np.int16)
        return Segment(pcm, self.sample_rate, int(self._turn_start_ms), int(self.stream_ms))

    def _keep(self, start_ms: float, pcm: np.ndarray) -> None:
        self._recent.append((start_ms, pcm))
        horizon = 1000.0 + (self._vad.params.prefix_padding_ms if self._vad else 0.0)
        while self._recent and self._recent[0][0] < start_ms - horizon:
            self._recent.popleft()
        in_turn = self._vad is None or self._vad.in_speech
        if in_turn and sum(len(p) for p in self._turn) < MAX_TURN_S * self.sample_rate:
            self._turn.append(pcm)

    # --- manual turns (turn_detection: null) ---------------------------------------------
    def take_manual_turn(self) -> Segment:
        """Everything heard since the last commit or clear, for ``input_audio_buffer.commit``."""
        pcm = np.concatenate(self._turn) if self._turn else np.zeros(0, np.int16)
        segment = Segment(pcm, self.sample_rate, int(self._manual_start_ms), int(self.stream_ms))
        self.clear_manual_turn()
        if len(pcm):
            with self._lock:
                self.speech_segments += 1
        return segment

    def clear_manual_turn(self) -> None:
        self._turn = []
        self._manual_start_ms = self.stream_ms
