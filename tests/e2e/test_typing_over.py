"""Typing over the agent in a page: a message sent while the agent's response is in flight
interrupts it, as the Stop button does (``response.cancel`` + ``output_audio_buffer.clear``,
the reply cut to what was heard), then asks, and is answered. Before, the service refused the
second ``response.create`` (``conversation_already_has_active_response``) and nothing answered.
The same on a call the kernel holds: tests/headless/test_session_call.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Lab, Notebook, code_notebook

pytestmark = pytest.mark.e2e

SETUP = """
from realtime_widget import Emulator, RealtimeWidget
emu = Emulator(speech_rate=15, vad="energy", tts="formant", stt_model="none").start()
w = RealtimeWidget(base_url=emu.base_url, api_key=emu.api_key, mic=False)
w
"""


def test_a_message_typed_over_the_reply_interrupts_it_and_is_answered(
    tmp_path: Path, shared_lab: Lab, page: Any, folder: str
) -> None:
    name = shared_lab.add(code_notebook(tmp_path / "typing_over.ipynb", SETUP), folder)
    nb = Notebook.open(page, shared_lab, name, widget_cell=0)
    nb.kernel_eval("w.connect()")
    nb.poll("w.status == 'connected' and len(w.events.of_type('session.updated')) >= 1")
    nb.kernel_eval("w.send_text('Tell me all about the harbour, its ships and the sea.')")
    nb.poll("len(w.events.of_type('response.output_audio_transcript.delta')) >= 3", timeout=30)
    nb.kernel_eval("w.send_text('Stop. What time is it?')")
    nb.poll(
        "[r['event']['response']['status'] for r in w.events.of_type('response.done')]"
        " == ['cancelled', 'completed']",
        timeout=40,
    )
    sent = nb.kernel_json("[r['type'] for r in w.events if r['direction'] == 'client']")
    i = sent.index("response.cancel")
    assert sent[i : i + 4] == [
        "response.cancel",
        "output_audio_buffer.clear",
        "conversation.item.create",
        "response.create",
    ]
    assert "conversation.item.truncate" in sent[i:]  # the page cut the reply to what was heard
    codes = nb.kernel_json(
        "[r['event'].get('error', {}).get('code') for r in w.events.of_type('error')]"
    )
    assert "conversation_already_has_active_response" not in codes
    nb.kernel_eval("w.close(); emu.stop()")
