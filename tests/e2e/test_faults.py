"""Faults in a real browser: a refused call, a dropped data channel, no microphone.

Each leaves the widget usable and its log intact: the error shows in the widget, the status
says failed, and the next connect() works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Lab, Notebook, code_notebook
from tests.helpers.protocol_checks import check_stream

pytestmark = pytest.mark.e2e

SETUP = """
from realtime_widget import Emulator, RealtimeWidget
emu = Emulator(reject_calls_status=503).start()
w = RealtimeWidget(base_url=emu.base_url, api_key=emu.api_key, mic=False, turn_detection=None)
w
"""


def test_faults_leave_the_widget_usable(
    tmp_path: Path, shared_lab: Lab, page: Any, folder: str
) -> None:
    nb_path = code_notebook(tmp_path / "faults.ipynb", SETUP)
    nb = Notebook.open(page, shared_lab, shared_lab.add(nb_path, folder), widget_cell=0)

    # 1. the service refuses the call: failed, with its words, in Python and in the widget
    page.locator("[data-testid=rtw-connect]").first.click()
    nb.poll("w.status == 'failed'", timeout=20)
    error = nb.kernel_json("w.error")
    assert "HTTP 503" in error, error
    page.wait_for_function(
        "() => document.querySelector('[data-testid=rtw-status]')?.textContent.trim() === 'failed'"
    )
    page.wait_for_function(
        "() => (document.querySelector('[data-testid=rtw-error]')?.textContent || '').includes('HTTP 503')"
    )

    # 2. the service recovers; a receive-only call (no microphone) connects and talks
    nb.kernel_eval("emu.configure(reject_calls_status=None)")
    page.locator("[data-testid=rtw-connect]").first.click()
    nb.poll("w.status == 'connected'", timeout=30)
    assert nb.kernel_json("w.error") == ""
    page.locator("[data-testid=rtw-input]").first.fill("Are you there?")
    page.locator("[data-testid=rtw-input]").first.press("Enter")
    nb.poll(
        "any(r['event']['response']['status'] == 'completed' for r in w.events.of_type('response.done'))",
        timeout=30,
    )
    # mic=False: no microphone; the track the call sends (for say()) carries only silence
    mic = nb.kernel_json("emu.calls[-1]['mic']")
    assert mic["peak_rms"] < 0.01 and mic["speech_segments"] == 0, mic
    n_before = nb.kernel_json("len(w.events)")

    # 3. the data channel drops mid-call: failed, log intact, and a reconnect works
    nb.kernel_eval("emu.configure(drop_channel_after=2)")  # after session.created/updated
    nb.kernel_eval("w.disconnect()")
    nb.poll("w.status == 'disconnected'")
    nb.kernel_eval("w.connect()")
    nb.poll("w.status == 'failed'", timeout=30)
    assert "data channel" in nb.kernel_json("w.error").lower()
    log = nb.kernel_json("[(r['call_number'], r['type']) for r in w.events]")
    assert len(log) > n_before and {c for c, _ in log} == {1, 2, 3}
    nb.kernel_eval("emu.configure(drop_channel_after=None)")
    nb.kernel_eval("w.connect()")
    nb.poll("w.status == 'connected'", timeout=30)
    nb.kernel_eval("w.send_text('Still there?')")
    nb.poll(
        "sum(1 for r in w.events.of_type('response.done') if r['call_number'] == 4) == 1",
        timeout=30,
    )
    assert nb.kernel_json("w.error") == ""
    page.wait_for_function(
        "() => !(document.querySelector('[data-testid=rtw-error]')?.textContent || '').trim()"
    )
    check_stream(nb.kernel_json("[r['event'] for r in w.events if r['direction'] == 'server']"))
