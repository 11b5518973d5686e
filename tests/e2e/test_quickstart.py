"""The quickstart notebook in a real JupyterLab and Chromium, against the realtime emulator.

Runs the notebook cell by cell as a newcomer would: click Connect, send a text turn, tune the
voice, read the log. Twice: once with no key (the notebook starts its embedded emulator) and
once with a sentinel key (the notebook believes it talks to the real service; the service is
an emulator process the test started), to prove the key is nowhere a user or a page can see.
Each in JupyterLab and in Notebook 7 (the same server, at /notebooks/NAME.ipynb).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SENTINEL_KEY
from tests.e2e.harness import (
    ARTIFACTS,
    ROOT,
    Lab,
    Notebook,
    Wire,
    chromium,
    free_port,
    jupyter_lab,
    page_errors,
    stop_process,
    wait_http,
)
from tests.helpers.protocol_checks import check_stream

pytestmark = pytest.mark.e2e

QUICKSTART = ROOT / "notebooks" / "quickstart.ipynb"
CELL_SETUP, CELL_CONNECT, CELL_SEND, CELL_ON, CELL_TUNE, CELL_END = 1, 3, 5, 7, 9, 11
CELL_FRAME, CELL_JSONL, CELL_TURNS, CELL_PLOT, CELL_STOP_EMULATOR = 13, 14, 16, 18, 20

SUMMARY = """{
  "status": w.status,
  "error": w.error,
  "records": [[r["direction"], r["type"]] for r in w.events],
  "frame_rows": len(w.events.to_pandas()),
  "frame_dirs": w.events.to_pandas()["direction"].value_counts().to_dict(),
  "reply": "".join(r["event"].get("delta", "") for r in w.events
                   if r["type"] in ("response.output_audio_transcript.delta", "response.output_text.delta")),
  "usage": usage,
  "server_voice": w.server_session.get("audio", {}).get("output", {}).get("voice"),
  "audio_energy": max([r["event"].get("total_audio_energy") or 0 for r in w.events.of_type("stats")] or [0]),
  "emulator_calls": emu.calls if emu is not None else None,
}"""


def blips(path: Path) -> Path:
    """The fake mic: a 20 ms blip each second over digital silence. Clearly not silent, yet too
    short to be speech for the emulator's VAD (and with nothing steady for the browser's
    automatic gain to raise into speech), so the text turn under test is never interrupted."""
    subprocess.run(
        ["sox", "-n", "-r", "48000", "-c", "1", "-b", "16", str(path),
         "synth", "0.02", "sine", "440", "vol", "0.3", "pad", "0", "0.98", "repeat", "39"],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def mic_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """This module's own Chromium: its microphone is the blips file (shared by its tests)."""
    tmp = tmp_path_factory.mktemp("quickstart-chromium")
    mic = blips(tmp / "mic.wav")
    with chromium(tmp, [f"--use-file-for-fake-audio-capture={mic}"]) as browser:
        yield browser


@pytest.fixture(scope="module")
def sentinel_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, str]]:
    """A Jupyter server whose environment holds a sentinel key for "the service": an emulator
    process the test started. The notebook believes it talks to the real thing."""
    port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "realtime_widget.emulator", "--port", str(port), "--api-key", SENTINEL_KEY],
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    env = {"INWORLD_API_KEY": SENTINEL_KEY, "INWORLD_BASE_URL": base}
    try:
        wait_http(f"{base}/", timeout=30, proc=emulator)
        with jupyter_lab(tmp_path_factory.mktemp("sentinel-jupyter"), [], env=env) as lab:
            yield lab, base
    finally:
        stop_process(emulator)


# Two of the four (mode x host) pairs: each mode and each host once (the front end is the same
# in both hosts; the key's absence is checked in the lab, the no-key emulator in Notebook 7).
@pytest.mark.parametrize(("mode", "host"), [("sentinel", "lab"), ("embedded", "notebook")])
def test_quickstart_end_to_end(
    mode: str, host: str, folder: str, mic_browser: Any, request: pytest.FixtureRequest
) -> None:
    """``embedded``: no key, the notebook starts its own emulator (on the shared server).
    ``sentinel``: a key in the server's environment, which nothing a user sees may show."""
    base = None
    if mode == "sentinel":
        lab, base = request.getfixturevalue("sentinel_service")
    else:
        lab = request.getfixturevalue("shared_lab")
    name = lab.add(QUICKSTART, folder)
    tag = mode if host == "lab" else f"{host}-{mode}"  # artifact names
    wire = Wire()
    page = mic_browser.new_page()
    wire.attach(page)
    try:
        summary = drive_quickstart(
            page, lab.notebook_url(name, host), tag, keep_call=base is not None
        )
        if base is not None:
            summary["emulator_calls"] = emulator_calls(base)
        check_session(summary)
        Notebook(page).save()
        saved = (lab.root / folder / "quickstart.ipynb").read_text()
        if mode == "embedded":  # as a reader without a key runs it: the docs render this copy
            Notebook(page).keep_executed(
                lab, name, test="tests/e2e/test_quickstart.py", host=host,
                screenshot=f"widget-{tag}.png",
            )  # fmt: skip
        widgets = json.loads(saved)["metadata"]["widgets"]
        assert "application/vnd.jupyter.widget-state+json" in widgets
        if mode == "sentinel":
            assert_no_secret(
                SENTINEL_KEY,
                saved=saved,
                dom=page.content(),
                console="\n".join(wire.console),
                frames=wire.frames,
                export=(lab.root / folder / "quickstart-session.jsonl").read_text(),
                server_log=lab.log.read_text(errors="replace"),
            )
        assert not page_errors(wire, host), wire.errors
        if base is not None:
            assert_closing_the_view_keeps_the_call(page, base)
            assert_kernel_shutdown_hangs_up(page, base)
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"quickstart-{tag}.png"), full_page=True)
        page.close()
        lab.shutdown_kernels()


def drive_quickstart(page, url: str, mode: str, *, keep_call: bool) -> dict:
    nb = Notebook(page)
    page.goto(url)
    nb.wait_kernel_idle()
    nb.run_cell(CELL_SETUP)
    status = page.locator("[data-testid=rtw-status]").first
    status.wait_for(timeout=30_000)
    assert status.inner_text().strip().lower() == "disconnected"
    t_click = page.evaluate("() => Date.now()")
    page.locator("[data-testid=rtw-connect]").first.click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=rtw-status]')?.textContent.trim().toLowerCase() === 'connected'",
        timeout=30_000,
    )
    nb.poll("w.status == 'connected'")
    nb.run_cell(CELL_CONNECT)  # "or run the next cell": on a live call it changes nothing
    assert nb.kernel_json("(w.status, w.call_number)") == ["connected", 1]
    nb.run_cell(CELL_ON)
    nb.run_cell(CELL_SEND)
    nb.poll("any(r['type'] == 'response.done' for r in w.events)", timeout=30)
    page.wait_for_function(
        "() => (document.querySelector('[data-testid=rtw-transcript]')?.textContent || '').includes('Hello! What can you do for me?')",
        timeout=10_000,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("[data-testid=rtw-status]").first.scroll_into_view_if_needed()
    page.locator(".rtw-root").first.screenshot(path=str(ARTIFACTS / f"widget-{mode}.png"))
    # the inspector: open it, filter to server deltas, expand one row to its JSON
    page.locator("[data-testid=rtw-inspector] > summary").first.click()
    page.locator("[data-testid=rtw-filter-type]").first.fill("transcript.delta")
    rows = page.locator("[data-testid=rtw-inspector] details")
    # the list redraws on the next frame: wait until it shows only (and some) matching rows
    page.wait_for_function(
        """() => { const rows = [...document.querySelectorAll('[data-testid=rtw-inspector] details')];
                   return rows.length > 0 && rows.every(r => r.textContent.includes('transcript.delta')); }""",
        timeout=5_000,
    )
    row = rows.first.element_handle()  # this row, even if newer ones arrive above it
    row.query_selector("summary").click()
    # the row's JSON is written when it opens (on the toggle event, a task later)
    page.wait_for_function(
        "(row) => (row.querySelector('pre')?.textContent || '').includes('\"delta\"')",
        arg=row,
        timeout=5_000,
    )
    page.locator(".rtw-root").first.screenshot(path=str(ARTIFACTS / f"inspector-{mode}.png"))
    page.locator("[data-testid=rtw-filter-type]").first.fill("")
    page.locator("[data-testid=rtw-inspector] > summary").first.click()
    nb.run_cell(CELL_TUNE)
    nb.poll("w.server_session.get('audio', {}).get('output', {}).get('voice') == 'Ashley'")
    nb.poll("len(w.events.of_type('stats')) >= 2", timeout=15)  # the browser's own measurements
    summary = nb.kernel_json(SUMMARY)
    records = nb.kernel_json("list(w.events)")
    check_stream([r["event"] for r in records if r["direction"] == "server"])
    t_updated = next(r["t_ms"] for r in records if r["type"] == "session.updated")
    summary["connect_ms"] = t_updated - t_click
    print(f"[{mode}] click -> session.updated: {summary['connect_ms']:.0f} ms")
    if not keep_call:  # the sentinel run stays connected to test a kernel shutdown
        nb.run_cell(CELL_END)
        nb.poll("w.status == 'disconnected'")
    # the notebook ends with its own session as data: the frame, the turns, the timeline
    for cell in (CELL_FRAME, CELL_JSONL, CELL_TURNS, CELL_PLOT):
        nb.run_cell(cell)
    assert nb.kernel_json("len(w.events.turns())") >= 1
    page.wait_for_function(
        f"() => jupyterapp.shell.currentWidget.content.widgets[{CELL_PLOT}].node.querySelector('.jp-OutputArea-output img')",
        timeout=15_000,
    )
    errors = page.evaluate(
        "() => [...document.querySelectorAll('.jp-OutputArea-output[data-mime-type=\"application/vnd.jupyter.stderr\"]')].map(e => e.textContent)"
    )
    assert not [e for e in errors if "Traceback" in e], errors
    if not keep_call:
        # a clean hang-up: the browser ended the call, nothing failed on the way
        local = nb.kernel_json("[r['type'] for r in w.events if r['direction'] == 'local']")
        assert "call.failed" not in local, local
        nb.run_cell(CELL_STOP_EMULATOR)
    return summary


def emulator_calls(base: str) -> list[dict]:
    req = urllib.request.Request(
        f"{base}/emulator/calls", headers={"Authorization": f"Bearer {SENTINEL_KEY}"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return list(json.load(resp))


def assert_closing_the_view_keeps_the_call(page, base: str) -> None:
    """The call lives with the widget's model, not its view: clearing the output that shows
    the widget leaves it up, and a new view of the same widget shows it connected."""
    nb = Notebook(page)
    page.evaluate(
        f"""() => {{ jupyterapp.shell.currentWidget.content.activeCellIndex = {CELL_SETUP};
                    return jupyterapp.commands.execute('notebook:clear-cell-output'); }}"""
    )
    page.wait_for_function("() => !document.querySelector('[data-testid=rtw-status]')")
    nb.kernel_eval("w.send_text('Are you still there?')")
    nb.poll("len(w.events.of_type('response.done')) >= 2", timeout=30)  # the call still talks
    assert emulator_calls(base)[-1]["state"] == "open"
    n = page.evaluate(
        """() => { const nb = jupyterapp.shell.currentWidget.content;
                   const i = nb.model.sharedModel.cells.length;
                   nb.model.sharedModel.insertCell(i, {cell_type: 'code', source: 'w'});
                   return i; }"""
    )
    nb.run_cell(n)  # a new view of the same widget
    page.wait_for_function(
        "() => document.querySelector('[data-testid=rtw-status]')?.textContent.trim() === 'connected'",
        timeout=10_000,
    )


def assert_kernel_shutdown_hangs_up(page, base: str) -> None:
    """Shutting the kernel down ends the browser's call: the service sees it close."""
    assert emulator_calls(base)[-1]["state"] == "open"  # channel open
    page.evaluate("() => jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    states: list[str] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        states = [c["state"] for c in emulator_calls(base)]
        if states[-1] in ("closed", "channel_closed", "failed"):
            return
        time.sleep(0.2)
    raise AssertionError(f"the call outlived the kernel: {states}")


def check_session(s: dict) -> None:
    assert s["status"] == "connected", s["error"]
    records = s["records"]
    client = [t for d, t in records if d == "client"]
    server = [t for d, t in records if d == "server"]
    assert client[0] == "session.update", client
    assert "conversation.item.create" in client and "response.create" in client
    for t in ("session.created", "session.updated", "response.created", "response.done"):
        assert t in server, (t, server)
    assert server.count("response.output_audio_transcript.delta") >= 3  # streamed, not one blob
    assert s["reply"].strip(), "the reply carried no text"
    assert s["usage"] and s["usage"][0]["total_tokens"] > 0
    assert s["server_voice"] == "Ashley"
    # one row per event, both directions
    assert s["frame_rows"] == len(records)
    assert s["frame_dirs"]["client"] == len(client) and s["frame_dirs"]["server"] == len(server)
    # audio both ways: the browser decoded the agent's voice; the emulator heard the mic
    assert s["audio_energy"] > 0, "the browser received only silence"
    mic = s["emulator_calls"][-1]["mic"]
    assert mic["frames"] > 0 and mic["peak_rms"] > 0.01, mic
    assert mic["speech_segments"] == 0, mic  # blips are not speech


def assert_no_secret(secret: str, *, frames: list[bytes], **texts: str) -> None:
    for where, text in texts.items():
        assert secret not in text, f"the key leaked into the {where}"
    leaked = [f[:200] for f in frames if secret.encode() in f]
    assert not leaked, f"the key crossed the kernel websocket: {leaked[:1]}"
    assert frames, "no websocket frames were captured: the check would be empty"
