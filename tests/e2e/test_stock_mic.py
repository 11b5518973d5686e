"""Typed turns with Chromium's STOCK fake microphone: the setup most CI machines have.

With ``--use-fake-device-for-media-stream`` and no audio file, Chromium's microphone is a 20 ms
400 Hz beep every 500 ms. The emulator must not hear those beeps as speech: with the default
session (semantic VAD, ``interrupt_response`` on) a beep taken for speech cancels the typed
reply with ``turn_detected``, which it did in most runs before the VAD's minimum speech
duration. Three typed turns on one page must each complete, and no turn may start: with the
speech model (Silero, from ``realtime-widget[voice]``) and with the energy fallback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import NO_KEY_ENV, Notebook, chromium, code_notebook, jupyter_lab
from tests.protocol_checks import check_stream

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
def test_typed_turns_complete_with_the_stock_fake_mic(tmp_path: Path, vad: str) -> None:
    nb_path = code_notebook(tmp_path / "stock_mic.ipynb", SETUP.format(vad=vad))
    with (
        jupyter_lab(tmp_path / "lab", [nb_path], env=NO_KEY_ENV) as lab,
        chromium(tmp_path) as browser,  # no --use-file-for-fake-audio-capture: the stock beep
    ):
        page = browser.new_page()
        nb = Notebook.open(page, lab, "stock_mic.ipynb", widget_cell=0)
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
    check_stream([r["event"] for r in records if r["direction"] == "server"])
