"""Browser-tier fixtures: one Jupyter server and one Chromium shared by the tests that can share.

Starting a Jupyter server and a browser costs seconds on a 2-core machine, and every host added
(JupyterLab, Notebook 7, ...) multiplies the tests. Tests that only open their own notebook and
page share them: each test gets a folder of its own on the server (its kernels' working
directory), a fresh page, and its kernels shut down when it ends. Tests that need a process of
their own (a kernel killed with SIGKILL, a browser with special flags such as a fake-audio file,
a server with a key in its environment) keep starting their own.

The shared server and browser live while the browser tests run and are closed as soon as the
next test is not one (Playwright's sync driver blocks asyncio on this thread while it runs).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import (
    ARTIFACTS,
    HOSTS,
    NO_KEY_ENV,
    Lab,
    chromium,
    jupyter_lab,
)


class _Shared:
    """The shared Jupyter server and Chromium, started on first use."""

    def __init__(self) -> None:
        self.stack: ExitStack | None = None
        self.lab: Lab | None = None
        self.browser: Any = None

    def _stack(self) -> ExitStack:
        if self.stack is None:
            self.stack = ExitStack()
        return self.stack

    def get_lab(self, tmp: Path) -> Lab:
        if self.lab is None:
            self.lab = self._stack().enter_context(jupyter_lab(tmp, [], env=NO_KEY_ENV))
        return self.lab

    def get_browser(self, tmp: Path) -> Any:
        if self.browser is None:
            self.browser = self._stack().enter_context(chromium(tmp))
        return self.browser

    def close(self) -> None:
        stack, self.stack, self.lab, self.browser = self.stack, None, None, None
        if stack is not None:
            stack.close()


_shared = _Shared()
_reports = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(trylast=True)  # after the test's own fixtures are torn down
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if nextitem is None or "e2e" not in nextitem.keywords:
        _shared.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    item.stash.setdefault(_reports, {})[report.when] = report
    return report


@pytest.fixture
def shared_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The shared Jupyter server (JupyterLab and Notebook 7, no key in its environment); the
    test's kernels are shut down when it ends."""
    lab = _shared.get_lab(tmp_path_factory.mktemp("shared-jupyter"))
    yield lab
    if lab.proc.poll() is None:
        lab.shutdown_kernels()


@pytest.fixture
def shared_browser(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The shared Chromium (stock fake microphone: a beep every 500 ms)."""
    return _shared.get_browser(tmp_path_factory.mktemp("shared-chromium"))


@pytest.fixture
def folder(request: pytest.FixtureRequest) -> str:
    """A folder name for this test's notebooks on a shared server."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")


@pytest.fixture
def page(shared_browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page in the shared browser; a screenshot of it is kept if the test fails."""
    p = shared_browser.new_page()
    yield p
    call = request.node.stash.get(_reports, {}).get("call")
    if call is not None and call.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
        try:
            p.screenshot(path=str(ARTIFACTS / f"failed-{name}.png"), full_page=True)
        except Exception as exc:  # the picture is a courtesy; the failure is already reported
            print(f"no screenshot: {exc}")
    p.close()


@pytest.fixture(params=HOSTS)
def host(request: pytest.FixtureRequest) -> str:
    """The notebook front end under test: JupyterLab (/lab) or Notebook 7 (/notebooks)."""
    return str(request.param)
