"""Two pages showing one widget (two tabs on one notebook): only one of them holds the call.

Comm messages reach every page connected to the kernel, so without care each page would open
its own microphone and its own call.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Lab, Notebook, code_notebook

pytestmark = pytest.mark.e2e

SETUP = """
from realtime_widget import Emulator, RealtimeWidget
emu = Emulator().start()
w = RealtimeWidget(base_url=emu.base_url, api_key=emu.api_key, turn_detection=None)
w
"""
PEERS = "() => (window.__peers || []).filter(pc => pc.connectionState !== 'closed').length"
CREATED = "() => (window.__peers || []).length"
COUNT_PEERS = """
window.__peers = [];
const Native = window.RTCPeerConnection;
window.RTCPeerConnection = function (...args) { const pc = new Native(...args); window.__peers.push(pc); return pc; };
window.RTCPeerConnection.prototype = Native.prototype;
"""


def until(check, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_only_one_page_holds_the_call(
    tmp_path: Path, shared_lab: Lab, shared_browser: Any, page: Any, folder: str
) -> None:
    nb_path = code_notebook(tmp_path / "two.ipynb", SETUP)
    name = shared_lab.add(nb_path, folder)
    second = shared_browser.new_page()  # a second tab on the same notebook
    try:
        pages = [page, second]
        for p in pages:
            p.add_init_script(COUNT_PEERS)
            p.goto(shared_lab.notebook_url(name))
            Notebook(p).wait_kernel_idle()
        a, b = pages
        nb = Notebook(a)
        nb.run_cell(0)
        a.locator("[data-testid=rtw-status]").first.wait_for()

        # a click in page A: the call is A's alone
        a.locator("[data-testid=rtw-connect]").first.click()
        nb.poll("w.status == 'connected'", timeout=30)
        a.wait_for_timeout(1000)  # time for any stray second call to show itself
        assert nb.kernel_json("len(emu.calls)") == 1
        assert a.evaluate(PEERS) == 1 and b.evaluate(CREATED) == 0  # B never even tried

        # from Python, no page named: whichever offers first holds it, the other lets go
        nb.kernel_eval("w.disconnect()")
        nb.poll("w.status == 'disconnected'")
        nb.kernel_eval("w.connect()")
        nb.poll("w.status == 'connected'", timeout=30)

        # both pages had the widget and both answered the unaddressed connect; one kept it
        def settled() -> bool:
            created = a.evaluate(CREATED) + b.evaluate(CREATED)
            return created == 3 and a.evaluate(PEERS) + b.evaluate(PEERS) == 1

        assert until(settled), (
            a.evaluate(CREATED),
            b.evaluate(CREATED),
            a.evaluate(PEERS),
            b.evaluate(PEERS),
        )
        a.wait_for_timeout(500)
        assert nb.kernel_json("len(emu.calls)") == 2  # one more call at the service, not two
        nb.kernel_eval("w.send_text('hello')")
        nb.poll("len(w.events.of_type('response.done')) == 1", timeout=30)
        nb.kernel_eval("w.disconnect(); emu.stop()")
    finally:
        second.close()
