"""Shared set-up for the browser benchmarks: JupyterLab + Chromium (through the e2e harness),
a bare page server, a speech WAV for the fake microphone, and the small statistics they print.

Everything here opens sockets on 127.0.0.1 only; the scripts that use it open WebRTC
connections, so they run inside ``scripts/in-netns``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.e2e.harness import (  # noqa: E402
    NO_KEY_ENV,
    Lab,
    Notebook,
    Wire,
    chromium,
    code_notebook,
    free_port,
    jupyter_lab,
)

__all__ = [
    "COUNT_CHANNEL_MESSAGES",
    "NO_KEY_ENV",
    "RECORD_CLICKS",
    "BareServer",
    "Rig",
    "chromium_renderers",
    "click",
    "cors_preflight_ok",
    "free_port",
    "lab_session",
    "least_squares_slope",
    "pct",
    "rss_mb",
    "speech_wav",
]

# The capture phase sees the click before any handler: its timeStamp is when the user clicked.
RECORD_CLICKS = """
window.__lastClickMs = null;
window.addEventListener('click', (e) => {
  window.__lastClickMs = performance.timeOrigin + e.timeStamp;
}, true);
"""

# Counts every message that arrives on any data channel the page opens (what the browser got,
# before the widget does anything with it).
COUNT_CHANNEL_MESSAGES = """
window.__dcMessages = 0;
(() => {
  const create = RTCPeerConnection.prototype.createDataChannel;
  RTCPeerConnection.prototype.createDataChannel = function (...args) {
    const dc = create.apply(this, args);
    dc.addEventListener('message', () => { window.__dcMessages += 1; });
    return dc;
  };
})();
"""


def pct(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank below) of ``values``; NaN when empty."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def least_squares_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Slope of the least-squares line through (xs, ys); NaN with fewer than two points."""
    n = len(xs)
    if n < 2:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return float("nan")
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def speech_wav(path: Path, text: str, silence_s: float = 4.0) -> Path | None:
    """A mono 16-bit WAV of ``text`` (espeak-ng) followed by ``silence_s`` of silence, for
    ``--use-file-for-fake-audio-capture`` (Chromium loops it); None without espeak-ng/sox."""
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if espeak is None or sox is None:
        return None
    raw = path.with_suffix(".raw.wav")
    subprocess.run([espeak, "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(
        [
            sox,
            str(raw),
            "-r",
            "48000",
            "-b",
            "16",
            "-c",
            "1",
            str(path),
            "pad",
            "0",
            str(silence_s),
        ],
        check=True,
        capture_output=True,
    )
    raw.unlink()
    return path


@dataclass
class Rig:
    """One JupyterLab page with a notebook open in Chromium."""

    tmp: Path
    lab: Lab
    browser: Any  # Playwright BrowserContext
    page: Any  # Playwright Page showing the notebook
    wire: Wire
    book: Notebook

    def cdp(self, page: Any | None = None) -> Any:
        return self.browser.new_cdp_session(page or self.page)


def click(page: Any, selector: str) -> float:
    """Click ``selector``; return the click event's time on the page's clock (epoch ms)."""
    page.evaluate("() => { window.__lastClickMs = null; }")
    page.locator(selector).first.click()
    t = page.evaluate("() => window.__lastClickMs")
    if t is None:
        raise RuntimeError(f"the click on {selector} was not recorded (is RECORD_CLICKS loaded?)")
    return float(t)


@contextmanager
def lab_session(
    cells: Sequence[str],
    *,
    widget_cell: int = 0,
    run_cells: Sequence[int] = (),
    chromium_args: Sequence[str] = (),
    init_scripts: Sequence[str] = (),
    env: dict[str, str] | None = None,
    prefix: str = "rtw-bench-",
) -> Iterator[Rig]:
    """JupyterLab with a notebook of ``cells`` open in Chromium; ``widget_cell`` is run until the
    widget shows, then each of ``run_cells``. Everything is stopped on exit."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    path = code_notebook(tmp / "bench.ipynb", *cells)
    wire = Wire()
    try:
        with (
            jupyter_lab(tmp / "lab", [path], env={**NO_KEY_ENV, **(env or {})}) as lab,
            chromium(tmp, list(chromium_args)) as browser,
        ):
            page = browser.new_page()
            wire.attach(page)
            for script in (RECORD_CLICKS, *init_scripts):
                page.add_init_script(script)
            try:
                book = Notebook.open(page, lab, path.name, widget_cell=widget_cell)
                for i in run_cells:
                    book.run_cell(i)
            except Exception:
                report_page(page, wire)
                raise
            yield Rig(tmp, lab, browser, page, wire, book)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report_page(page: Any, wire: Wire) -> None:
    """Say what the page showed and logged, to stderr (when setting up failed)."""
    print("page errors:", *wire.errors[-10:], sep="\n  ", file=sys.stderr)
    print("console (last 20):", *wire.console[-20:], sep="\n  ", file=sys.stderr)
    try:
        outputs = page.evaluate(
            "() => [...document.querySelectorAll('.jp-OutputArea-output')].map(e => e.innerText)"
        )
        print("cell outputs:", *[o[:800] for o in outputs], sep="\n  ", file=sys.stderr)
    except Exception as exc:
        print(f"(no outputs: {exc})", file=sys.stderr)


# ---- a bare page, served from its own origin -------------------------------------------------


class BareServer:
    """An aiohttp server on 127.0.0.1 serving one HTML page at ``/`` (on its own thread).

    With ``proxy_to`` it also forwards ``/v1/realtime/*`` to that base URL, so a page can reach a
    service that does not answer CORS preflight (same origin: no preflight at all).
    """

    def __init__(self, html: str, proxy_to: str | None = None) -> None:
        self.html = html
        self.proxy_to = proxy_to
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: Any = None
        self._client: Any = None

    def __enter__(self) -> BareServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _start(self) -> None:
        import aiohttp
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/", self._page)
        if self.proxy_to:
            self._client = aiohttp.ClientSession()
            app.router.add_route("*", "/v1/realtime/{tail:.*}", self._proxy)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _page(self, request: Any) -> Any:
        from aiohttp import web

        return web.Response(text=self.html, content_type="text/html")

    async def _proxy(self, request: Any) -> Any:
        from aiohttp import web

        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "content-type", "accept")
        }
        async with self._client.request(
            request.method,
            f"{self.proxy_to}{request.path_qs}",
            headers=headers,
            data=await request.read(),
        ) as upstream:
            body = await upstream.read()
            return web.Response(
                status=upstream.status,
                body=body,
                headers={"Content-Type": upstream.headers.get("Content-Type", "text/plain")},
            )


def cors_preflight_ok(base_url: str, origin: str) -> bool:
    """Does the service answer a browser's CORS preflight for ``POST /v1/realtime/calls``?"""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        f"{base_url}/v1/realtime/calls",
        method="OPTIONS",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as res:
            allowed_origin = res.headers.get("Access-Control-Allow-Origin", "")
            allowed_headers = res.headers.get("Access-Control-Allow-Headers", "").lower()
    except (urllib.error.URLError, OSError):
        return False
    return allowed_origin in ("*", origin) and (
        "authorization" in allowed_headers or allowed_headers == "*"
    )


# ---- processes ----------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / 2**20


def chromium_renderers() -> list[int]:
    """PIDs of the Chromium renderer processes started (indirectly) by this process."""
    import psutil

    me = psutil.Process(os.getpid())
    out = []
    for p in me.children(recursive=True):
        try:
            if "--type=renderer" in p.cmdline():
                out.append(p.pid)
        except psutil.Error:
            continue
    return out
