"""Energy voice-activity detection on the mic stream's own clock (no wall time involved).

The provider's VADs are models; ours is a level threshold with an onset and a silence timer.
``server_vad``'s knobs map directly; ``semantic_vad``'s eagerness picks the silence timer, since
"how sure am I the user finished" is, for an energy detector, "how long was it quiet".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from .._spec import (
    DEFAULT_EAGERNESS,
    EAGERNESS,
    VAD_PREFIX_PADDING_MS,
    VAD_SILENCE_DURATION_MS,
    VAD_THRESHOLD,
)

# semantic_vad eagerness -> silence needed before the turn ends (ms).
EAGERNESS_SILENCE_MS = {"high": 250, "medium": 600, "auto": 600, "low": 1200}
assert set(EAGERNESS_SILENCE_MS) == set(EAGERNESS)
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
    """Map the provider's 0..1 ``threshold`` onto a frame RMS: 0 -> -55 dBFS, 0.5 -> -30 dBFS
    (0.032 of full scale), 1 -> -5 dBFS. At the default, speech at a normal level (-15 to -25
    dBFS) is heard and a soft background tone or hiss is not."""
    return 10 ** ((-55.0 + 50.0 * threshold) / 20.0)


@dataclass(frozen=True)
class VadParams:
    threshold_rms: float
    silence_ms: float
    prefix_padding_ms: float
    min_speech_ms: float = MIN_SPEECH_MS


def vad_params(turn_detection: dict[str, Any] | None) -> VadParams | None:
    """The detector settings a session's ``turn_detection`` asks for, or None when it is off."""
    if not turn_detection:
        return None
    if turn_detection.get("type") == "server_vad":
        return VadParams(
            threshold_rms=threshold_to_rms(float(turn_detection.get("threshold", VAD_THRESHOLD))),
            silence_ms=float(turn_detection.get("silence_duration_ms", VAD_SILENCE_DURATION_MS)),
            prefix_padding_ms=float(turn_detection.get("prefix_padding_ms", VAD_PREFIX_PADDING_MS)),
        )
    eagerness = turn_detection.get("eagerness", DEFAULT_EAGERNESS)
    return VadParams(
        threshold_rms=threshold_to_rms(VAD_THRESHOLD),
        silence_ms=float(
            EAGERNESS_SILENCE_MS.get(eagerness, EAGERNESS_SILENCE_MS[DEFAULT_EAGERNESS])
        ),
        prefix_padding_ms=SEMANTIC_PREFIX_PADDING_MS,
    )


@dataclass(frozen=True)
class VadEvent:
    kind: Literal["speech_started", "speech_stopped"]
    audio_ms: int  # audio_start_ms (incl. prefix padding) or audio_end_ms (incl. the silence)
    speech_start_ms: float  # where the loud part began, without padding
    speech_end_ms: float  # where the last loud frame ended (stopped events only)


class EnergyVad:
    """Feed it one frame level at a time; it returns speech start/stop events."""

    def __init__(self, params: VadParams) -> None:
        self.params = params
        self.in_speech = False
        self._onset_ms: float | None = None  # first loud frame of a candidate onset
        self._last_loud_end_ms = 0.0
        self._speech_start_ms = 0.0

    def reset(self) -> None:
        self.in_speech = False
        self._onset_ms = None

    def feed(self, rms: float, start_ms: float, end_ms: float) -> VadEvent | None:
        loud = rms >= self.params.threshold_rms and not math.isnan(rms)
        if not self.in_speech:
            if not loud:
                if end_ms - self._last_loud_end_ms > ONSET_MAX_GAP_MS:
                    self._onset_ms = None  # too long a pause: that was not the start of speech
                return None
            if self._onset_ms is None:
                self._onset_ms = start_ms
            self._last_loud_end_ms = end_ms
            if end_ms - self._onset_ms < self.params.min_speech_ms:
                return None
            self.in_speech = True
            self._speech_start_ms = self._onset_ms
            self._onset_ms = None
            padded = max(0.0, self._speech_start_ms - self.params.prefix_padding_ms)
            return VadEvent("speech_started", int(padded), self._speech_start_ms, end_ms)
        if loud:
            self._last_loud_end_ms = end_ms
            return None
        if end_ms - self._last_loud_end_ms < self.params.silence_ms:
            return None
        self.in_speech = False
        return VadEvent(
            "speech_stopped", int(end_ms), self._speech_start_ms, self._last_loud_end_ms
        )
