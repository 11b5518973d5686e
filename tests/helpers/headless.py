"""What the headless tier's tests share beside its fixtures: the fixtures' types, the log's
event types, polling on the loop, and the environment of the kernels papermill starts."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import realtime_widget
from realtime_widget import RealtimeSession
from realtime_widget.emulator import Emulator

KERNEL_NAME = "rtw-headless"
# The directory that holds the realtime_widget these tests import (src/ in a checkout).
PACKAGE_ROOT = Path(realtime_widget.__file__).resolve().parents[1]

Open = Callable[..., RealtimeSession]
MakeEmulator = Callable[..., Emulator]


def types(s: RealtimeSession, direction: str | None = None) -> list[str]:
    """The log's event types, in order (one direction, or all)."""
    return [r["type"] for r in s.events if direction is None or r["direction"] == direction]


async def until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``check()`` on the loop until it is truthy (its value), else fail in words."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"not true within {timeout:g} s: {check}")
        await asyncio.sleep(0.02)


def kernel_env(jupyter_dirs: dict[str, Path], cache: Path) -> dict[str, str]:
    """What papermill and its kernel need in their environment: the isolated Jupyter and
    IPython dirs, this ``realtime_widget`` on the path, judges' and callers' answers cached in
    ``cache``. (The caller also leaves INWORLD_API_KEY out: the notebooks then start their
    embedded emulator.)"""
    path = os.environ.get("PYTHONPATH", "")
    return {
        "JUPYTER_CONFIG_DIR": str(jupyter_dirs["config"]),
        "JUPYTER_DATA_DIR": str(jupyter_dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(jupyter_dirs["runtime"]),
        "IPYTHONDIR": str(jupyter_dirs["ipython"]),
        "REALTIME_WIDGET_CACHE": str(cache),
        "PYTHONPATH": os.pathsep.join(p for p in (str(PACKAGE_ROOT), path) if p),
    }
