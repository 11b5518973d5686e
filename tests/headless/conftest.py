"""The headless tier: sessions whose call the kernel holds over the service's WebSocket, against
the emulator, with no browser and no JupyterLab. What only a page can show stays in tests/e2e.

The emulator here is fast (no speaking pauses, a formant voice, an energy VAD) unless a test
asks for the real voice; every session is closed when its test ends.

Notebooks run here under papermill, on a kernel of this very Python: a kernelspec made in a
throwaway Jupyter data directory whose argv is ``sys.executable`` (as the browser tier's
Jupyter servers use their own), with the same ``realtime_widget`` on its path as the tests.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from realtime_widget import RealtimeSession
from realtime_widget.emulator import Emulator
from tests.helpers.headless import KERNEL_NAME, MakeEmulator, Open, kernel_env

FAST: dict[str, Any] = {
    "first_delta_delay_ms": 0.0,
    "delta_interval_ms": 2.0,
    "speech_rate": 150.0,
    "tts": "formant",
    "vad": "energy",
    "stt_model": "none",
    "preload_voice": False,
}


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(**FAST) as emu:
        yield emu


@pytest.fixture
def emu_with() -> Iterator[MakeEmulator]:
    """``emu_with(**knobs)``: a started emulator with ``FAST`` and these knobs, stopped after
    the test's sessions closed."""
    made: list[Emulator] = []

    def make(**knobs: Any) -> Emulator:
        emu = Emulator(**{**FAST, **knobs}).start()
        made.append(emu)
        return emu

    yield make
    for emu in made:
        emu.stop()


@pytest.fixture
async def session(emulator: Emulator, emu_with: MakeEmulator) -> AsyncIterator[Open]:
    """``session(**fields)``: a RealtimeSession on the emulator (not connected yet)."""
    made: list[RealtimeSession] = []

    def make(emu: Emulator | None = None, **kwargs: Any) -> RealtimeSession:
        emu = emu or emulator
        kwargs.setdefault("base_url", emu.base_url)
        kwargs.setdefault("api_key", emu.api_key)
        s = RealtimeSession(**kwargs)
        made.append(s)
        return s

    yield make
    for s in made:
        await s.aclose()


# -- notebooks under papermill ---------------------------------------------------------------


@pytest.fixture(scope="session")
def jupyter_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("jupyter")
    dirs = {name: root / name for name in ("config", "data", "runtime", "ipython", "cache")}
    for d in dirs.values():
        d.mkdir()
    spec = dirs["data"] / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": f"Python {sys.version_info[0]}.{sys.version_info[1]} (tests)",
                "language": "python",
            }
        )
    )
    return dirs


@pytest.fixture
def kernel_name(jupyter_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> str:
    """The kernelspec papermill starts: this Python, isolated Jupyter and IPython dirs, no key
    in its environment (the notebooks then start their embedded emulator)."""
    for name, value in kernel_env(jupyter_dirs, jupyter_dirs["cache"]).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("INWORLD_API_KEY", raising=False)
    return KERNEL_NAME
