"""marimo with the sideband: ``await w.ask(...)`` in ONE cell works.

marimo hands the page's messages to the kernel only between cells, so without the sideband an
awaiting cell can never hear the reply (test_hosts_marimo.py checks the words it raises). With
the sideband up (the emulator offers it, ``sideband="auto"``), the reply reaches the kernel on
its own WebSocket while the cell awaits; the question goes out on it too. The app is
notebooks/marimo_app.py as a visitor uses it; its event log is written to a file the test reads.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import NO_KEY_ENV, Wire
from tests.helpers.marimo import STATUS, marimo, wait_log
from tests.helpers.protocol_checks import check_stream

pytestmark = pytest.mark.e2e

QUESTION = "Which dishes are vegetarian?"


def test_one_cell_ask_in_marimo_works_with_the_sideband(page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    wire = Wire()
    wire.attach(page)
    log_path = tmp_path / "events.jsonl"
    with marimo(tmp_path / "marimo", dict(NO_KEY_ENV), log_path) as (url, _):
        page.goto(url, timeout=60_000)
        status = page.locator(STATUS).first
        expect(status).to_have_text("disconnected", ignore_case=True, timeout=60_000)
        page.locator("[data-testid=rtw-connect]").first.click()
        expect(status).to_have_text("connected", ignore_case=True, timeout=30_000)
        # the sideband opens once the call is answered (the log is written as events come)
        opened = wait_log(log_path, lambda rs: any(r["type"] == "sideband.open" for r in rs))
        assert any(r["type"] == "sideband.open" for r in opened), [r["type"] for r in opened]

        t0 = time.monotonic()
        page.get_by_role("button", name="Ask from Python").click()
        verdict = page.get_by_text("mid-cell await").locator("xpath=..")
        expect(verdict).to_be_visible(timeout=40_000)
        said = verdict.inner_text()
        took = time.monotonic() - t0
        print(f"[marimo sideband] one-cell ask answered in {took:.1f} s: {said!r}")
        assert "awaited in the cell:" in said, said
        assert "MidCellDeliveryError" not in said
        reply = said.split("awaited in the cell:", 1)[1].strip()
        assert reply, said  # the reply's text, read inside the awaiting cell
        # the page was shown the question the kernel sent on the sideband
        transcript = page.locator("[data-testid=rtw-transcript]").first
        expect(transcript).to_contain_text(QUESTION, timeout=10_000)

        log = wait_log(
            log_path,
            lambda rs: any(r["type"] == "response.done" and r.get("via") == "both" for r in rs),
        )
        records = list(log)
        asked = [
            r for r in records
            if r["direction"] == "client" and r["type"] == "conversation.item.create"
        ]  # fmt: skip
        assert len(asked) == 1 and asked[0]["via"] == "sideband", asked
        done = [r for r in records if r["type"] == "response.done"]
        # one record per event, whichever path brought it first; both paths delivered it
        assert len(done) == len({r["event"]["event_id"] for r in done}), done
        assert done[-1]["via"] in ("sideband", "both") and "t_sideband_ms" in done[-1]
        server = [r["event"] for r in records if r["direction"] == "server"]
        ids = [e["event_id"] for e in server if "event_id" in e]
        assert len(ids) == len(set(ids)), "a server event was logged twice"
        check_stream(server)
        assert page.locator("[data-testid=rtw-error]").first.inner_text().strip() == ""
        assert not wire.errors, wire.errors
