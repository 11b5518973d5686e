"""Fail early, and helpfully, when the emulator's optional dependencies are missing."""

from __future__ import annotations

import importlib

_EXTRA_HINT = 'The realtime emulator needs extra packages: pip install "realtime-widget[emulator]"'


def require_emulator_deps() -> None:
    """Import the heavy dependencies once so a missing one names the extra to install."""
    for name in ("aiortc", "aioice", "aiohttp", "numpy", "av"):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(f"{_EXTRA_HINT} (missing module {name!r})") from exc
