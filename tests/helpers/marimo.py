"""marimo as a host in the browser tier: the shipped app served by `marimo run|edit`, and its
event log read back as it is written."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from realtime_widget import EventLog
from tests.e2e.harness import ROOT, free_port, stop_process, wait_http

APP = ROOT / "notebooks" / "marimo_app.py"
STATUS = "[data-testid=rtw-status]"
REPLY = "This is the local realtime emulator"
# Everything on the page, shadow roots included (marimo mounts each anywidget in one).
JS_ALL_HTML = """() => {
  const out = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) { out.push(el.shadowRoot.innerHTML); walk(el.shadowRoot); }
    }
  };
  out.push(document.documentElement.outerHTML);
  walk(document);
  return out.join('\\n');
}"""


@contextmanager
def marimo(
    tmp: Path,
    env: dict[str, str],
    log_path: Path,
    command: str = "run",
    app_args: tuple[str, ...] = (),
) -> Iterator[tuple[str, Path]]:
    """`marimo run|edit notebooks/marimo_app.py` on 127.0.0.1, its config and state dirs
    isolated (no token: the server is loopback-only and the test's own)."""
    for d in ("config", "state", "cache"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    port, log = free_port(), tmp / "marimo.log"
    extra = ["--skip-update-check"] if command == "edit" else []  # `run` has no such flag
    cmd = [sys.executable, "-m", "marimo", "-y", command, str(APP), "--headless",
           "--host", "127.0.0.1", f"--port={port}", "--no-token", "--no-sandbox", *extra,
           "--", "--log", str(log_path), *app_args]  # fmt: skip
    full_env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "XDG_STATE_HOME": str(tmp / "state"),
        "XDG_CACHE_HOME": str(tmp / "cache"),
        "MARIMO_SKIP_UPDATE_CHECK": "1",
        **env,
    }
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            cmd, env=full_env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=tmp,
        )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=60, proc=proc)
        yield f"http://127.0.0.1:{port}/", log
    finally:
        stop_process(proc)


def wait_log(path: Path, done: Any, timeout: float = 20) -> EventLog:
    """The app's event log once ``done(records)`` holds (it is written as events come)."""
    deadline = time.monotonic() + timeout
    while True:
        log = EventLog.read_jsonl(path) if path.exists() else EventLog()
        if done(list(log)) or time.monotonic() > deadline:
            return log
        time.sleep(0.2)
