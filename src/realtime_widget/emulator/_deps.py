"""Fail early, and helpfully, when the emulator's optional dependencies are missing.

Load the optional voice models ahead of their first use.
"""

from __future__ import annotations

import importlib
import logging
import time

log = logging.getLogger(__name__)

_EXTRA_HINT = 'The realtime emulator needs extra packages: pip install "realtime-widget[emulator]"'


def require_emulator_deps() -> None:
    """Import the heavy dependencies once so a missing one names the extra to install."""
    for name in ("aiortc", "aioice", "aiohttp", "numpy", "av"):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(f"{_EXTRA_HINT} (missing module {name!r})") from exc


PRELOADED_VAD_MODELS = 2  # Silero models made ahead: one per call that may open at once


def preload_vad(vad: str, count: int) -> None:
    """Put ``count`` Silero models in the pool now (about 0.15 s each).

    The ``vad`` knob would make them on a call's first use; made now, a connect takes a ready one
    instead of making it.
    """
    from . import _vad

    if vad == "energy" or _vad.silero_missing() is not None:
        return
    models = [_vad.acquire_model() for _ in range(count)]
    for model in models:
        _vad.release_model(model)


def preload_voice(vad: str, stt_model: str) -> None:
    """Fill the Silero pool and load the recognizer the ``stt_model`` knob names (blocking).

    The emulator runs it when it starts, on its loop's worker threads (the ones that later run the
    recognizer: a faster-whisper model loaded in a thread that then exits recognizes 2-3x slower),
    so the first spoken turn never waits for a load. A failure is logged; the call that needs the
    part then meets the same error as without a preload.
    """
    import numpy as np

    from . import _stt

    started = time.monotonic()
    try:
        preload_vad(vad, PRELOADED_VAD_MODELS)
        if stt_model != "none" and not (stt_model == "auto" and _stt.missing() is not None):
            model_path = _stt.resolve_model(stt_model)
            if model_path is not None:
                # A first recognition warms the recognizer up (its first run is the slowest).
                silence = np.zeros(_stt.WHISPER_RATE // 2, np.int16)
                _stt.recognize(model_path, silence, _stt.WHISPER_RATE, "en", None)
    except Exception:  # the first call that needs it reports the problem in its own words
        log.warning("realtime emulator: preloading the voice models failed", exc_info=True)
        return
    log.info("realtime emulator: voice models ready in %.2f s", time.monotonic() - started)
