"""No microphone (VS Code's webviews deny it; a server or CI machine has none): the call still
starts, receive-only, the view says why there is no mic, and a typed turn completes.

A Chromium of its own, without the fake capture device: ``getUserMedia`` then fails as on a
machine with no microphone (``NotFoundError``). A denied permission (``NotAllowedError``, what a
VS Code webview answers) is the same browser with ``getUserMedia`` refusing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Lab, Notebook, Wire, chromium, code_notebook, page_errors

pytestmark = pytest.mark.e2e

SETUP = """
from realtime_widget import Emulator, RealtimeWidget
emu = Emulator().start()
w = RealtimeWidget(base_url=emu.base_url, api_key=emu.api_key)  # mic=True: it asks for one
w
"""
DENY = """navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));"""


@pytest.fixture(scope="module")
def micless_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("no-mic-chromium"), fake_mic=False) as browser:
        yield browser


@pytest.mark.parametrize("why", ["NotFoundError", "NotAllowedError"])
def test_a_call_without_a_microphone_still_talks(
    why: str, micless_browser: Any, shared_lab: Lab, folder: str, tmp_path: Path
) -> None:
    name = shared_lab.add(code_notebook(tmp_path / "no_mic.ipynb", SETUP), folder)
    page = micless_browser.new_page()
    wire = Wire()
    wire.attach(page)
    try:
        if why == "NotAllowedError":
            page.add_init_script(DENY)
        nb = Notebook.open(page, shared_lab, name, widget_cell=0)
        page.locator("[data-testid=rtw-connect]").first.click()
        nb.poll("w.status == 'connected'", timeout=30)
        nb.poll("len(w.events.of_type('mic.error')) >= 1", timeout=15)
        assert nb.kernel_json("[r['event']['name'] for r in w.events.of_type('mic.error')]") == [
            why
        ]
        box = page.locator("[data-testid=rtw-input]").first
        box.fill("Can you hear me without a microphone?")
        box.press("Enter")
        nb.poll(
            "any(r['event']['response']['status'] == 'completed' for r in w.events.of_type('response.done'))",
            timeout=30,
        )
        page.wait_for_function(
            "() => (document.querySelector('[data-testid=rtw-transcript]')?.textContent || '')"
            ".includes('This is the local realtime emulator')",
            timeout=10_000,
        )
        # no microphone audio went out (the front end may still send a silent track for say())
        mic = nb.kernel_json("emu.calls[-1]['mic']")
        assert mic["peak_rms"] < 0.01 and mic["speech_segments"] == 0, mic
        assert nb.kernel_json("w.status") == "connected"
        assert not page_errors(wire, "lab"), wire.errors
        # the view says why there is no mic, in words (js/connection.ts micNotice), in its notice
        # or its error line, whichever the front end uses
        page.wait_for_function(
            """(why) => [...document.querySelectorAll('[data-testid=rtw-notice], [data-testid=rtw-error]')]
                 .some(e => !e.hidden && e.textContent.includes('Microphone unavailable (' + why + ')'))""",
            arg=why,
            timeout=10_000,
        )
    finally:
        page.close()
