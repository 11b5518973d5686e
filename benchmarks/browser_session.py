"""A real session in JupyterLab + Chromium against the emulator, measured from the browser.

Prints: connect time (click on Connect -> session.updated, browser clock), event delivery
latency browser receive -> kernel log (p50/p95), events per comm message during a flood,
and main-thread long tasks (> 50 ms, PerformanceObserver) while a 2,000-delta reply streams.

Opens WebRTC connections, so run it in a loopback-only namespace:
    scripts/in-netns .venv/bin/python benchmarks/browser_session.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.harness import NO_KEY_ENV, Notebook, Wire, chromium, code_notebook, jupyter_lab

CONNECTS = 5
FLOOD_DELTAS = 2000

SETUP = f"""
from realtime_widget import Emulator, RealtimeWidget

def responder(ctx):
    if (ctx.last_user_text or "").startswith("flood"):
        return "".join(f"w{{i}} " for i in range({FLOOD_DELTAS}))
    return "Hello from the benchmark."

emu = Emulator(responder=responder, delta_interval_ms=1, first_delta_delay_ms=0).start()
# no turn detection: the fake microphone's beep must not interrupt the flood
w = RealtimeWidget(
    base_url=emu.base_url, api_key=emu.api_key, output_modalities=["text"], turn_detection=None
)
w
"""

OBSERVE_LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longTasks.push({start: e.startTime, ms: e.duration});
}).observe({type: 'longtask', buffered: true});
"""


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="rtw-bench-"))
    path = code_notebook(tmp / "bench.ipynb", SETUP)
    wire = Wire()
    with jupyter_lab(tmp / "lab", [path], env=NO_KEY_ENV) as lab, chromium(tmp) as browser:
        page = browser.new_page()
        wire.attach(page)
        page.add_init_script(OBSERVE_LONG_TASKS)
        book = Notebook.open(page, lab, "bench.ipynb", widget_cell=0)

        def connects(n: int) -> list[float]:
            out = []
            for _ in range(n):
                t_click = page.evaluate("() => performance.timeOrigin + performance.now()")
                page.locator("[data-testid=rtw-connect]").first.click()
                t_updated = book.poll(
                    "next((r['t_ms'] for r in w.events.of_type('session.updated') "
                    "if r['call'] == w.call), None)",
                    timeout=20,
                    interval=0.05,
                )
                out.append(t_updated - t_click)
                page.locator("[data-testid=rtw-connect]").first.click()  # Disconnect
                book.poll("w.status == 'disconnected'")
            return out

        plain = connects(CONNECTS)
        # the same, with a STUN server in the list that never answers (a socket that swallows)
        book.kernel_eval(
            "import socket; hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "hole.bind(('127.0.0.1', 0)); "
            "emu.configure(ice_servers=[{'urls': [f'stun:127.0.0.1:{hole.getsockname()[1]}']}])"
        )
        silent = connects(CONNECTS)
        book.kernel_eval("emu.configure(ice_servers=()); hole.close()")
        for name, values in (("", plain), (" with a STUN server that never answers", silent)):
            print(
                f"connect (click -> session.updated){name}, {CONNECTS} calls: median "
                f"{statistics.median(values):.0f} ms, min {min(values):.0f}, max {max(values):.0f}"
            )
        page.locator("[data-testid=rtw-connect]").first.click()
        book.poll("w.status == 'connected'", timeout=20)

        n_before = book.kernel_json("len(w.events)")
        frames_before = len(wire.frames)
        t_mark = page.evaluate("() => performance.now()")
        book.kernel_eval("w.send_text('flood please')")
        # Wait in the browser, not by polling the kernel: a busy kernel would delay delivery.
        page.wait_for_function(
            f"() => (document.querySelector('[data-testid=rtw-transcript]')?.textContent || '')"
            f".includes('w{FLOOD_DELTAS - 1}')",
            timeout=120_000,
        )
        time.sleep(1.0)
        stats = book.kernel_json(
            f"[(r['t_kernel_ms'] - r['t_ms']) for r in list(w.events)[{n_before}:] if r['direction'] == 'server']"
        )
        deltas = book.kernel_json(
            f"sum(1 for r in list(w.events)[{n_before}:] if r['type'] == 'response.output_text.delta')"
        )
        status = book.kernel_json(
            "w.events.of_type('response.done')[-1]['event']['response']['status']"
        )
        assert status == "completed", status
        batches = sum(
            1
            for f in wire.frames[frames_before:]
            if b'"kind":"events"' in f or b'"kind": "events"' in f
        )
        long_tasks = [t for t in page.evaluate("() => window.__longTasks") if t["start"] >= t_mark]
        print(
            f"delivery browser -> kernel log over {len(stats)} server events: "
            f"p50 {pct(stats, 0.5):.1f} ms, p95 {pct(stats, 0.95):.1f} ms"
        )
        gaps = book.kernel_json("len(w.events.of_type('log.gap'))")
        # what the emulator put on the data channel, against what reached the kernel's log
        sent_by_service = book.kernel_json(
            "sum(1 for e in emu.calls[-1]['events_out'] if e.get('type') == 'response.output_text.delta')"
        )
        print(
            f"flood: {deltas} of the {sent_by_service} text deltas the service sent reached the log "
            f"({sent_by_service - deltas} lost; {gaps} gaps in the browser's numbering), "
            f"in {batches} comm messages ({len(stats) / max(batches, 1):.1f} events per message)"
        )
        # single events on an idle kernel: 20 session.update -> session.updated round trips
        n_mark = book.kernel_json("len(w.events)")
        for i in range(20):
            book.kernel_eval(f"w.speed = {1.0 + (i % 2) * 0.1}")
            time.sleep(0.15)
        single = book.kernel_json(
            f"[(r['t_kernel_ms'] - r['t_ms']) for r in list(w.events)[{n_mark}:] if r['type'] == 'session.updated']"
        )
        print(
            f"delivery of single events on an idle kernel ({len(single)} session.updated): "
            f"p50 {pct(single, 0.5):.1f} ms, p95 {pct(single, 0.95):.1f} ms"
        )
        worst = max((t["ms"] for t in long_tasks), default=0.0)
        print(
            f"long tasks (> 50 ms) while the flood streamed: {len(long_tasks)}, longest {worst:.0f} ms"
        )


if __name__ == "__main__":
    main()
