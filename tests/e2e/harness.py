"""JupyterLab + Debian Chromium, driven by Playwright, for end-to-end tests.

Everything here starts inside the test's loopback-only network namespace (see
``scripts/in-netns``): the Jupyter server, the kernel and its emulator, and the browser.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers.artifacts import keep_executed_notebook

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = next(
    (p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium") if os.path.exists(p)), None
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered: up, whatever it thought of the request
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """End a process this harness started (by its PID / process group), politely first."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


# The notebook front ends one Jupyter server serves (both expose ``window.jupyterapp``).
HOSTS = ("lab", "notebook")


@dataclass
class Lab:
    """A Jupyter server: JupyterLab at /lab, Notebook 7 at /notebooks (same front-end code)."""

    url: str
    token: str
    root: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def notebook_url(self, name: str, host: str = "lab") -> str:
        if host == "notebook":
            return f"{self.url}/notebooks/{name}?token={self.token}"
        assert host == "lab", host
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"

    def add(self, notebook: Path, folder: str) -> str:
        """Copy a notebook into ``folder`` (its kernel's working directory) under the server's
        root; returns the name to open it by. A folder per test keeps shared servers apart."""
        (self.root / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(notebook, self.root / folder / notebook.name)
        return f"{folder}/{notebook.name}"

    def api(self, method: str, path: str) -> Any:
        req = urllib.request.Request(
            f"{self.url}/api/{path}", method=method,
            headers={"Authorization": f"token {self.token}"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=15) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """End every kernel this server runs (a test's kernels, and their emulators, with it)."""
        for kernel in self.api("GET", "kernels"):
            try:
                self.api("DELETE", f"kernels/{kernel['id']}")
            except urllib.error.HTTPError as exc:
                if exc.code != 404:  # already gone
                    raise


@contextmanager
def jupyter_lab(
    tmp: Path, notebooks: list[Path], env: dict[str, str] | None = None
) -> Iterator[Lab]:
    """A throwaway JupyterLab server on 127.0.0.1 with widget state saving on."""
    cfg, data, runtime, ipy = (tmp / d for d in ("config", "data", "runtime", "ipython"))
    root, settings = tmp / "notebooks", tmp / "settings"
    for d in (cfg / "labconfig", data, runtime, ipy, root):
        d.mkdir(parents=True, exist_ok=True)
    for nb in notebooks:
        shutil.copy(nb, root / nb.name)
    (cfg / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    # Notebook 7, served by the same server at /notebooks/NAME.ipynb, set up as JupyterLab is.
    # (Its own config file: under `jupyter lab` it reads no JupyterNotebookApp command-line flag.)
    notebook7 = {
        "expose_app_in_browser": True,
        "workspaces_dir": str(tmp / "ws"),
        "user_settings_dir": str(settings),
    }
    (cfg / "jupyter_notebook_config.json").write_text(json.dumps({"JupyterNotebookApp": notebook7}))
    # Saved notebooks carry widget state, so the secrecy test sees what a user would save.
    plugin = settings / "@jupyter-widgets" / "jupyterlab-manager"
    plugin.mkdir(parents=True)
    (plugin / "plugin.jupyterlab-settings").write_text(json.dumps({"saveState": True}))
    port, token = free_port(), "e2e-token"
    full_env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(cfg),
        "JUPYTER_DATA_DIR": str(data),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "IPYTHONDIR": str(ipy),
        **(env or {}),
    }
    log = tmp / "jupyter.log"
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
        f"--port={port}", "--port-retries=0", "--allow-root",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True", f"--LabApp.workspaces_dir={tmp / 'ws'}",
        f"--LabApp.user_settings_dir={settings}", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]  # fmt: skip
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            cmd, env=full_env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/api/status?token={token}", proc=proc)
        yield Lab(f"http://127.0.0.1:{port}", token, root, log, proc)
    finally:
        stop_process(proc)


CHROMIUM_ARGS = [
    "--allow-loopback-in-peer-connection",  # a lo-only namespace has no other candidates
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Wire:
    """What the page saw: websocket frames, console lines, page errors."""

    frames: list[bytes] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        def on_ws(ws: Any) -> None:
            for name in ("framesent", "framereceived"):
                ws.on(name, lambda payload: self.frames.append(
                    payload if isinstance(payload, bytes) else str(payload).encode()
                ))  # fmt: skip

        page.on("websocket", on_ws)
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))


# Page errors a host raises by itself: Notebook 7 (7.6) throws the first from its keyboard-
# shortcuts settings plugin as it loads (no widget on the page, a plain `jupyter notebook` too),
# and the second from a JupyterLab command it lacks, in a browser that had JupyterLab open.
HOST_PAGE_ERRORS = {
    "notebook": (
        "Cannot read properties of undefined (reading 'schema')",
        "Command 'filebrowser:open-path' not registered.",
    )
}


def page_errors(wire: Wire, host: str) -> list[str]:
    """The page's errors, less the host's own known start-up error."""
    known = HOST_PAGE_ERRORS.get(host, ())
    return [e for e in wire.errors if e not in known]


# JavaScript run in the page, through JupyterLab's own application object.
JS_KERNEL_STATUS = (
    "() => window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel?.status"
)
JS_RUN_CELL = """async (i) => {
  const panel = jupyterapp.shell.currentWidget;
  panel.content.activeCellIndex = i;
  await jupyterapp.commands.execute('notebook:run-cell');
}"""
JS_CELL_DONE = """(i) => {
  const panel = jupyterapp.shell.currentWidget;
  const cell = panel.content.widgets[i];
  const k = panel.sessionContext.session.kernel;
  if (cell.model.type !== 'code') return true;  // markdown renders; nothing to wait for
  return cell.model.executionCount != null && k.status === 'idle';
}"""
JS_KERNEL_EVAL = """async (code) => {
  const kernel = jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = kernel.requestExecute({code, store_history: false});
  let out = '', err = null;
  future.onIOPub = (msg) => {
    const t = msg.header.msg_type;
    if (t === 'stream') out += msg.content.text;
    if (t === 'error') err = msg.content.ename + ': ' + msg.content.evalue;
  };
  await future.done;
  if (err) throw new Error(err);
  return out;
}"""


# The line of an execution's output that holds kernel_json's value.
JSON_MARK = "@@rtw-json@@ "


def marked_json(out: str) -> Any:
    """The value on the last ``JSON_MARK`` line of an execution's output."""
    lines = [ln for ln in out.splitlines() if ln.startswith(JSON_MARK)]
    if not lines:
        raise ValueError(f"no marked value in the output: {out!r}")
    return json.loads(lines[-1][len(JSON_MARK) :])


# A Jupyter server started with this has no key: notebooks take their emulator path.
NO_KEY_ENV = {"INWORLD_API_KEY": "", "INWORLD_BASE_URL": ""}


def code_notebook(path: Path, *cells: str) -> Path:
    """Write a notebook of code cells, with the kernelspec JupyterLab needs to start it."""
    import nbformat

    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    book.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(book, path)
    return path


class Notebook:
    """A notebook open in JupyterLab, run cell by cell as a person would."""

    def __init__(self, page: Any) -> None:
        self.page = page

    @classmethod
    def open(
        cls,
        page: Any,
        lab: Lab,
        name: str,
        *,
        widget_cell: int | None = None,
        host: str = "lab",
    ) -> Notebook:
        """Open ``name`` in ``host`` (JupyterLab or Notebook 7), wait for its kernel, and run
        ``widget_cell`` until the widget shows."""
        page.goto(lab.notebook_url(name, host))
        nb = cls(page)
        nb.wait_kernel_idle()
        if widget_cell is not None:
            nb.run_cell(widget_cell)
            page.locator("[data-testid=rtw-status]").first.wait_for(timeout=30_000)
        return nb

    def wait_kernel_idle(self, timeout: float = 60) -> None:
        self.page.wait_for_function(f"({JS_KERNEL_STATUS})() === 'idle'", timeout=timeout * 1000)

    def run_cell(self, i: int, timeout: float = 60) -> None:
        self.page.evaluate(JS_RUN_CELL, i)
        self.page.wait_for_function(JS_CELL_DONE, arg=i, timeout=timeout * 1000)

    def run_book(self, book: Path, *, start: int = 0, timeout: float = 240) -> int:
        """Run ``book``'s code cells from the ``start``-th one, all but the last (its clean-up),
        and check that no cell printed an error; returns the clean-up cell's index."""
        import nbformat

        cells = nbformat.read(book, as_version=4).cells
        code = [i for i, c in enumerate(cells) if c.cell_type == "code"]
        for i in code[start:-1]:
            self.run_cell(i, timeout=timeout)
        self.assert_no_errors()
        return code[-1]

    def assert_no_errors(self) -> None:
        """No output area of the notebook shows a traceback or an error on stderr."""
        errors = self.page.locator(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
        )
        tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]
        assert not tracebacks, tracebacks

    def kernel_eval(self, code: str) -> str:
        return str(self.page.evaluate(JS_KERNEL_EVAL, code))

    def kernel_json(self, expr: str) -> Any:
        """``expr``'s value, as JSON, read from its own marked line of the execution's output
        (the kernel may write other lines meanwhile: a library's one-time warning on stderr)."""
        return marked_json(
            self.kernel_eval(f"import json as _j; print({JSON_MARK!r} + _j.dumps({expr}))")
        )

    def poll(self, expr: str, timeout: float = 20, interval: float = 0.25) -> Any:
        """Evaluate ``expr`` in the kernel until it is truthy (browser messages are handled by
        the kernel between executions, so polling is also what lets them in)."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            value = self.kernel_json(expr)
            if value:
                return value
            time.sleep(interval)
        raise TimeoutError(f"kernel expression stayed falsy for {timeout} s: {expr} -> {value!r}")

    def save(self) -> None:
        self.page.evaluate("() => jupyterapp.commands.execute('docmanager:save')")
        self.page.wait_for_function(
            "() => !jupyterapp.shell.currentWidget.context.model.dirty", timeout=15000
        )

    def keep_executed(
        self, lab: Lab, name: str, *, test: str, host: str = "lab", screenshot: str | None = None
    ) -> None:
        """Save the notebook as the page has it (its outputs) and keep the saved file as the
        executed copy the docs render (``tests/helpers/artifacts.py``), with the screenshot's name."""
        self.save()
        front = "Notebook 7" if host == "notebook" else "JupyterLab"
        keep_executed_notebook(
            lab.root / name,
            Path(name).name,
            executed_by=test,
            how=f"in {front} in Chromium, cell by cell, on the embedded emulator",
            screenshot=screenshot,
        )


# One Playwright driver per process: its sync API refuses to start a second one while the first
# runs (and, while it runs, asyncio.run() is refused on this thread), so every browser, shared or
# a test's own, is launched from this one, and it is stopped as soon as no browser needs it.
_driver: Any = None
_driver_users = 0


@contextmanager
def playwright_driver() -> Iterator[Any]:
    global _driver, _driver_users
    from playwright.sync_api import sync_playwright

    if _driver is None:
        _driver = sync_playwright().start()
    _driver_users += 1
    try:
        yield _driver
    finally:
        _driver_users -= 1
        if _driver_users == 0:
            driver, _driver = _driver, None
            driver.stop()


@contextmanager
def chromium(
    tmp: Path, extra_args: list[str] | None = None, *, fake_mic: bool = True
) -> Iterator[Any]:
    """Headless Debian Chromium. ``fake_mic=False`` leaves out the fake capture device, so
    ``getUserMedia`` finds no microphone (``NotFoundError``), as on a machine without one."""
    if CHROMIUM is None:
        raise RuntimeError("Debian's chromium is not installed (apt-get install chromium)")
    args = [a for a in CHROMIUM_ARGS if fake_mic or a != "--use-fake-device-for-media-stream"]
    with playwright_driver() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=[*args, *(extra_args or [])],
            viewport={"width": 1280, "height": 1000},
        )
        try:
            yield ctx
        finally:
            ctx.close()
