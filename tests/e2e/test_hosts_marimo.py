"""marimo serves notebooks/marimo_app.py (the widget shown with ``mo.ui.anywidget``) as a page.

As a visitor uses it: open the page (`marimo run` runs every cell as the page connects), click
Connect, type a message, read the reply in the transcript; then click the app's "Ask from
Python" button, whose cell awaits ``w.ask(...)``, to see whether the page's messages reach a
cell while it awaits. marimo has no kernel the test can query, so the app writes its event log
to a file (``-- --log FILE``) that the test reads: every server event schema-valid, and the
connect-time probe's verdict on binary buffers. Twice: with no key (the app starts its embedded
emulator) and with a sentinel key in the server's environment (an emulator process the test
started), which must be nowhere in the page, its console or its websocket frames.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SENTINEL_KEY
from tests.e2e.harness import (
    ARTIFACTS,
    NO_KEY_ENV,
    Wire,
    free_port,
    stop_process,
    wait_http,
)
from tests.helpers.marimo import JS_ALL_HTML, REPLY, STATUS, marimo, wait_log
from tests.helpers.protocol_checks import check_stream

pytestmark = pytest.mark.e2e


# the key kept out of the page (an emulator with the sentinel key); the no-key embedded
# emulator is the quickstart's (Notebook 7)
@pytest.mark.parametrize("mode", ["sentinel"])
def test_marimo_app_talks(mode: str, page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    env, emulator = dict(NO_KEY_ENV), None
    if mode == "sentinel":
        port = free_port()
        emulator = subprocess.Popen(
            [sys.executable, "-m", "realtime_widget.emulator", "--port", str(port), "--api-key", SENTINEL_KEY],
            start_new_session=True,
        )  # fmt: skip
        env = {"INWORLD_API_KEY": SENTINEL_KEY, "INWORLD_BASE_URL": f"http://127.0.0.1:{port}"}
    wire = Wire()
    wire.attach(page)
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}"))
    log_path = tmp_path / "events.jsonl"
    try:
        if emulator is not None:
            wait_http(f"{env['INWORLD_BASE_URL']}/", timeout=30, proc=emulator)
        # without the sideband: the mid-cell await's words (test_hosts_marimo_sideband: with it)
        args = ("--sideband", "off")
        with marimo(tmp_path / "marimo", env, log_path, app_args=args) as (url, server_log):
            t0 = time.monotonic()
            page.goto(url, timeout=60_000)
            status = page.locator(STATUS).first  # Playwright's locators pierce shadow roots
            expect(status).to_have_text("disconnected", ignore_case=True, timeout=60_000)
            t_page = time.monotonic() - t0
            page.locator("[data-testid=rtw-connect]").first.click()
            expect(status).to_have_text("connected", ignore_case=True, timeout=30_000)
            t_connected = time.monotonic() - t0
            box = page.locator("[data-testid=rtw-input]").first
            box.fill("What is on the menu today?")
            box.press("Enter")
            transcript = page.locator("[data-testid=rtw-transcript]").first
            expect(transcript).to_contain_text(REPLY, timeout=30_000)
            t_reply = time.monotonic() - t0
            assert "What is on the menu today?" in transcript.inner_text()

            # A cell that awaits a reply: the app shows what the await did.
            page.get_by_role("button", name="Ask from Python").click()
            verdict = page.get_by_text("mid-cell await").locator("xpath=..")  # the whole line
            expect(verdict).to_be_visible(timeout=40_000)
            said = verdict.inner_text()
            t_ask = time.monotonic() - t0
            expect(transcript).to_contain_text("Which dishes are vegetarian?", timeout=30_000)

            log = wait_log(log_path, lambda rs: sum(r["type"] == "response.done" for r in rs) >= 2)
            records = list(log)
            server = [r["event"] for r in records if r["direction"] == "server"]
            assert sum(e["type"] == "response.done" for e in server) >= 2, [
                r["type"] for r in records
            ]
            check_stream(server)
            probes = [r["event"] for r in records if r["type"] == "probe.result"]
            assert probes, "no probe.result in the log"
            assert probes[0]["buffers"] == {"to_browser": True, "to_kernel": True}, probes[0]
            print(
                f"[marimo {mode}] widget shown {t_page:.1f} s, connected {t_connected:.1f} s, "
                f"typed reply {t_reply:.1f} s, mid-cell ask {t_ask:.1f} s; probe {probes}; "
                f"page said {said!r}"
            )
            # marimo holds the page's messages while a cell runs: the await says so after the
            # 3 s probe (whose answer came as the cell ended), and the reply still arrives.
            assert "MidCellDeliveryError" in said and "no answer within 3 s" in said, said
            assert probes[-1]["mid_cell"] is False, probes  # what w.host_info says now

            assert page.locator("[data-testid=rtw-error]").first.inner_text().strip() == ""
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"marimo-{mode}.png"), full_page=True)
            assert "from realtime_widget import" not in page.content()  # no code sent
            assert not failed, failed  # everything the page loads is on the server
            if mode == "sentinel":
                texts = {
                    "DOM": page.evaluate(JS_ALL_HTML),
                    "console": "\n".join(wire.console),
                    "server log": server_log.read_text(errors="replace"),
                    "event log": log_path.read_text(errors="replace"),
                }
                for where, t in texts.items():
                    assert SENTINEL_KEY not in t, f"the key leaked into the {where}"
                assert wire.frames, "no websocket frames were captured: the check would be empty"
                leaked = [f[:200] for f in wire.frames if SENTINEL_KEY.encode() in f]
                assert not leaked, f"the key crossed marimo's websocket: {leaked[:1]}"
            assert not wire.errors, wire.errors
    finally:
        if emulator is not None:
            stop_process(emulator)


def test_marimo_edit_runs_the_app_as_a_notebook(page: Any, tmp_path: Path) -> None:
    """`marimo edit`: cells do not run as the notebook opens (marimo's default), so click the
    run button at the bottom right (run all stale cells), then Connect and type."""
    from playwright.sync_api import expect

    wire = Wire()
    wire.attach(page)
    log_path = tmp_path / "events.jsonl"
    with marimo(tmp_path / "marimo", dict(NO_KEY_ENV), log_path, command="edit") as (url, _):
        t0 = time.monotonic()
        page.goto(url, timeout=60_000)
        run_all = page.locator(
            "[data-testid=chrome-controls-bottom-right] [data-testid=run-button]"
        )
        status = page.locator(STATUS).first
        # A click before the editor's kernel is ready runs nothing: click until the cells ran.
        deadline = time.monotonic() + 90
        while True:
            run_all.click(timeout=30_000)
            try:
                expect(status).to_have_text("disconnected", ignore_case=True, timeout=15_000)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        t_widget = time.monotonic() - t0
        page.locator("[data-testid=rtw-connect]").first.click()
        expect(status).to_have_text("connected", ignore_case=True, timeout=30_000)
        box = page.locator("[data-testid=rtw-input]").first
        box.fill("Hello from the editor")
        box.press("Enter")
        expect(page.locator("[data-testid=rtw-transcript]").first).to_contain_text(
            REPLY, timeout=30_000
        )
        print(
            f"[marimo edit] widget after run-all {t_widget:.1f} s, reply {time.monotonic() - t0:.1f} s"
        )
        log = wait_log(log_path, lambda rs: any(r["type"] == "response.done" for r in rs))
        check_stream([r["event"] for r in log if r["direction"] == "server"])
        assert not wire.errors, wire.errors
