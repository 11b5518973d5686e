"""Voilà serves notebooks/app.ipynb as a voice-agent page, the key kept on the server.

As a visitor uses it: open the page (Voilà runs every cell before it shows anything), click
Connect, type a message, read the reply in the transcript. Twice: with no key (the app starts
its embedded emulator) and with a sentinel key in the server's environment (the app believes it
talks to the real service, an emulator process the test started), which must be nowhere in the
page, its console or its websocket frames.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SENTINEL_KEY
from tests.e2e.harness import (
    ARTIFACTS,
    NO_KEY_ENV,
    ROOT,
    Wire,
    free_port,
    stop_process,
    wait_http,
)

pytestmark = pytest.mark.e2e

APP = ROOT / "notebooks" / "app.ipynb"
STATUS = "[data-testid=rtw-status]"


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until the server listens (a GET of the app would already run the notebook)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"voila exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"voila did not listen on {port} within {timeout} s")


@contextmanager
def voila(tmp: Path, env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """`voila notebooks/app.ipynb`, as the README says, on 127.0.0.1 (isolated Jupyter dirs)."""
    dirs = {k: tmp / k.lower() for k in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR")}  # fmt: skip
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    port, log = free_port(), tmp / "voila.log"
    cmd = [sys.executable, "-m", "voila", str(APP), "--no-browser", f"--port={port}",
           "--Voila.ip=127.0.0.1", "--Voila.port_retries=0"]  # fmt: skip
    full_env = {**os.environ, **{k: str(v) for k, v in dirs.items()}, **env}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            cmd, env=full_env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=tmp,
        )  # fmt: skip
    try:
        wait_port(port, proc)
        yield f"http://127.0.0.1:{port}/", log
    finally:
        stop_process(proc)


# the key kept out of the page (an emulator with the sentinel key); the no-key embedded
# emulator is the quickstart's (Notebook 7)
@pytest.mark.parametrize("mode", ["sentinel"])
def test_voila_app_talks_and_keeps_the_key(mode: str, page: Any, tmp_path: Path) -> None:
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
    try:
        if emulator is not None:
            wait_http(f"{env['INWORLD_BASE_URL']}/", timeout=30, proc=emulator)
        with voila(tmp_path / "voila", env) as (url, log):
            t0 = time.monotonic()
            page.goto(url, timeout=90_000)
            page.locator(STATUS).first.wait_for(timeout=90_000)
            t_page = time.monotonic() - t0
            assert page.locator(STATUS).first.inner_text().strip().lower() == "disconnected"
            page.locator("[data-testid=rtw-connect]").first.click()
            page.wait_for_function(
                f"() => document.querySelector('{STATUS}')?.textContent.trim().toLowerCase() === 'connected'",
                timeout=30_000,
            )
            t_connected = time.monotonic() - t0
            box = page.locator("[data-testid=rtw-input]").first
            box.fill("What is on the menu today?")
            box.press("Enter")
            transcript = page.locator("[data-testid=rtw-transcript]").first
            page.wait_for_function(
                "() => (document.querySelector('[data-testid=rtw-transcript]')?.textContent || '')"
                ".includes('This is the local realtime emulator')",
                timeout=30_000,
            )
            text = transcript.inner_text()
            assert "What is on the menu today?" in text, text
            print(
                f"[voila {mode}] page with widget {t_page:.1f} s, connected at {t_connected:.1f} s"
            )
            assert page.locator("[data-testid=rtw-error]").first.inner_text().strip() == ""
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"voila-{mode}.png"), full_page=True)
            # the page is the app: no code, no notebook chrome
            assert "from realtime_widget import" not in page.locator("body").inner_text()
            if mode == "sentinel":
                texts = {
                    "DOM": page.content(),
                    "console": "\n".join(wire.console),
                    "server log": log.read_text(errors="replace"),
                }
                for where, t in texts.items():
                    assert SENTINEL_KEY not in t, f"the key leaked into the {where}"
                assert wire.frames, "no websocket frames were captured: the check would be empty"
                leaked = [f[:200] for f in wire.frames if SENTINEL_KEY.encode() in f]
                assert not leaked, f"the key crossed the kernel websocket: {leaked[:1]}"
            assert not wire.errors, wire.errors
    finally:
        if emulator is not None:
            stop_process(emulator)
