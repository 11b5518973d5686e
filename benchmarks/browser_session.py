"""A real session in JupyterLab + Chromium against the emulator, measured from the browser.

Prints, from one run:
- connect time, click on Connect -> session.updated (browser clock; the click is the click
  event's own timestamp), for the widget and for the seed's own flow on a bare page
  (``bare_connect.html``: fetch the ICE config, getUserMedia, gather, POST the offer to the
  service with the key, session.update on open) against the same emulator, side by side and as
  a ratio; plain, and with a STUN server in the list that never answers;
- event delivery latency, browser receive -> kernel log (p50/p95), for single events on an idle
  kernel and during a 2,000-delta flood, and the floor: a bare anywidget whose front end sends
  a timestamped custom message, received by its Python side the same way; the ratios to it;
- events per comm message during the flood, events lost, and main-thread long tasks (> 50 ms,
  PerformanceObserver) while the flood streams;
- the kernel hop of a Python tool: the browser receives the function call -> the tool's output
  goes out on the data channel, less the function's own time (turns()' ``tool_hop_ms``), for a
  tool that returns at once, over 50 calls, beside the single-event delivery of the same run.

Opens WebRTC connections, so run it in a loopback-only namespace:
    scripts/in-netns .venv/bin/python benchmarks/browser_session.py [--connects 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from _rig import RECORD_CLICKS, BareServer, click, cors_preflight_ok, lab_session, pct

FLOOD_DELTAS = 2000
SINGLE_EVENTS = 30
TOOL_CALLS = 50

SETUP = f"""
from realtime_widget import Emulator, RealtimeWidget
from realtime_widget.emulator import default_responder

def responder(ctx):
    if (ctx.last_user_text or "").startswith("flood"):
        return "".join(f"w{{i}} " for i in range({FLOOD_DELTAS}))
    if "ping tool" in (ctx.last_user_text or "") or (ctx.last_item or {{}}).get("type") == "function_call_output":
        return default_responder(ctx)  # calls the tool; then reads its output back
    return "Hello from the benchmark."

emu = Emulator(responder=responder, delta_interval_ms=1, first_delta_delay_ms=0).start()
# no turn detection: the fake microphone's beep must not interrupt the flood
w = RealtimeWidget(
    base_url=emu.base_url, api_key=emu.api_key, output_modalities=["text"], turn_detection=None
)
w
"""

# The delivery floor: the least a front-end -> kernel custom message can take. Asked by the
# kernel, the front end waits 30 ms (so the kernel is idle again, as it is when the widget's
# events arrive), stamps the browser clock and sends; Python stamps its clock on receipt.
ECHO = """
import time as _time
import anywidget

class Echo(anywidget.AnyWidget):
    _esm = '''
    export default {
      initialize({ model }) {
        model.on("msg:custom", (msg) => {
          setTimeout(() => {
            model.send({ n: msg.n, t_ms: performance.timeOrigin + performance.now() });
          }, 30);
        });
      },
      render({ el }) { el.textContent = "echo"; el.dataset.testid = "echo"; },
    };
    '''

    def __init__(self):
        super().__init__()
        self.delivery_ms = []
        self.on_msg(self._got)

    def _got(self, _widget, content, buffers):
        self.delivery_ms.append(_time.time() * 1000.0 - content["t_ms"])

echo = Echo()
echo
"""

OBSERVE_LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longTasks.push({start: e.startTime, ms: e.duration});
}).observe({type: 'longtask', buffered: true});
"""

CONNECT = "[data-testid=rtw-connect]"


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.0f} ms, min {min(values):.0f}, max {max(values):.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connects", type=int, default=5, help="calls per connect case")
    args = parser.parse_args()
    html = (Path(__file__).parent / "bare_connect.html").read_text()

    with lab_session([SETUP, ECHO], run_cells=[1], init_scripts=[OBSERVE_LONG_TASKS]) as rig:
        page, book, wire = rig.page, rig.book, rig.wire
        page.locator("[data-testid=echo]").first.wait_for(timeout=30_000)
        base_url, api_key = book.kernel_json("[emu.base_url, emu.api_key]")

        bare = BareServer("")
        if cors_preflight_ok(base_url, bare.url):
            how, page_base = f"the page POSTs to the emulator directly ({base_url}, CORS)", base_url
        else:
            how, page_base = (
                "through a same-origin proxy (the emulator answers no CORS preflight)",
                "",
            )
            bare.proxy_to = base_url
        bare.html = html.replace("__BASE_URL__", json.dumps(page_base)).replace(
            "__API_KEY__", json.dumps(api_key)
        )

        with bare:
            bare_page = rig.browser.new_page()
            bare_page.add_init_script(RECORD_CLICKS)
            bare_page.goto(bare.url)

            def widget_connect() -> float:
                t_click = click(page, CONNECT)
                # No kernel polling while the call starts: every poll is an execute request
                # whose messages share the kernel's channels with the call's own.
                time.sleep(1.5)
                t_updated = book.poll(
                    "next((r['t_ms'] for r in w.events.of_type('session.updated') "
                    "if r['call_number'] == w.call_number), None)",
                    timeout=20,
                    interval=0.05,
                )
                page.locator(CONNECT).first.click()  # Disconnect
                book.poll("w.status == 'disconnected'")
                return float(t_updated) - t_click

            def bare_connect() -> dict[str, Any]:
                n = bare_page.evaluate("() => window.__results.length")
                bare_page.locator("#connect").click()
                bare_page.wait_for_function(f"() => window.__results.length > {n}", timeout=20_000)
                r: dict[str, Any] = bare_page.evaluate(f"() => window.__results[{n}]")
                if "error" in r:
                    raise RuntimeError(f"bare page: {r['error']}")
                return r

            def side_by_side(n: int) -> tuple[list[float], list[dict[str, Any]]]:
                widget, seed = [], []
                for _ in range(n):  # interleaved, so both see the same machine
                    widget.append(widget_connect())
                    seed.append(bare_connect())
                return widget, seed

            plain = side_by_side(args.connects)
            # the same, with a STUN server in the list that never answers (a socket that swallows)
            book.kernel_eval(
                "import socket; hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                "hole.bind(('127.0.0.1', 0)); "
                "emu.configure(ice_servers=[{'urls': [f'stun:127.0.0.1:{hole.getsockname()[1]}']}])"
            )
            silent = side_by_side(args.connects)
            book.kernel_eval("emu.configure(ice_servers=()); hole.close()")
            bare_page.close()

        print(f"bare page (the seed's flow) served from {bare.url}, {how}")
        for name, (widget, seed) in (
            ("", plain),
            (" with a STUN server that never answers", silent),
        ):
            floor = [r["t_updated"] - r["t_click"] for r in seed]
            gather = [r["gather_ms"] for r in seed]
            ratio = statistics.median(widget) / statistics.median(floor)
            print(f"connect (click -> session.updated){name}, {args.connects} calls each:")
            print(f"  widget    {summary(widget)}")
            print(
                f"  bare page {summary(floor)} (its gathering: median {statistics.median(gather):.0f} ms)"
            )
            print(f"  widget / bare page: {ratio:.2f}x (median over median; target <= 1.1x)")

        page.locator(CONNECT).first.click()
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
        flood = book.kernel_json(
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
        gaps = book.kernel_json("len(w.events.of_type('log.gap'))")
        # what the emulator put on the data channel, against what reached the kernel's log
        # (from the call's own count by type when it has one: its event list is a window)
        sent_by_service = book.kernel_json(
            "(lambda c: c['events_out_by_type'].get('response.output_text.delta', 0) "
            "if 'events_out_by_type' in c else "
            "sum(1 for e in c['events_out'] if e.get('type') == 'response.output_text.delta'))"
            "(emu.calls[-1])"
        )

        # single events on an idle kernel: session.update -> session.updated round trips,
        # interleaved with the floor's echoes so both see the same kernel and machine
        n_mark = book.kernel_json("len(w.events)")
        book.kernel_eval("echo.delivery_ms.clear()")
        for i in range(SINGLE_EVENTS):
            book.kernel_eval(f"w.speed = {1.0 + (i % 2) * 0.1}")
            time.sleep(0.15)
            book.kernel_eval(f"echo.send({{'n': {i}}})")
            time.sleep(0.15)
        single = book.kernel_json(
            f"[(r['t_kernel_ms'] - r['t_ms']) for r in list(w.events)[{n_mark}:] if r['type'] == 'session.updated']"
        )
        floor = book.kernel_json("echo.delivery_ms")

        print(
            f"delivery floor, bare anywidget custom message front end -> kernel ({len(floor)} "
            f"messages): p50 {pct(floor, 0.5):.1f} ms, p95 {pct(floor, 0.95):.1f} ms"
        )
        f50, f95 = pct(floor, 0.5), pct(floor, 0.95)
        for name, values in (
            (f"single events on an idle kernel ({len(single)} session.updated)", single),
            (f"during the flood ({len(flood)} server events)", flood),
        ):
            p50, p95 = pct(values, 0.5), pct(values, 0.95)
            print(
                f"delivery browser -> kernel log, {name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms; "
                f"x floor: p50 {p50 / f50:.2f}x, p95 {p95 / f95:.2f}x"
            )
        print("  (target: single-event p50 <= 1.3x the floor)")

        # the kernel hop of a tool that returns at once
        book.kernel_eval("w.tool(lambda: 'pong', name='ping_tool', description='Answers pong.')")
        done0 = book.kernel_json("len(w.events.of_type('response.done'))")
        for i in range(TOOL_CALLS):  # one at a time: each call, then the reply reading it back
            book.kernel_eval("w.send_text('use ping tool')")
            time.sleep(0.4)  # not polling meanwhile (see widget_connect)
            book.poll(
                f"len(w.events.of_type('response.done')) >= {done0 + 2 * (i + 1)}",
                timeout=30,
                interval=0.2,
            )
        book.poll(
            f"len([x for x in w.events.turns()['tool_hop_ms'] if x == x]) >= {TOOL_CALLS}",
            timeout=30,
        )
        hops = book.kernel_json("[x for x in w.events.turns()['tool_hop_ms'] if x == x]")
        own = book.kernel_json("[x for x in w.events.turns()['tool_ms'] if x == x]")
        print(
            f"tool kernel hop, call received in the browser -> output sent, less the function's "
            f"own time ({len(hops)} calls of a tool that returns at once): p50 "
            f"{pct(hops, 0.5):.1f} ms, p95 {pct(hops, 0.95):.1f} ms (the function itself: p50 "
            f"{pct(own, 0.5):.2f} ms); single-event delivery in this run: p50 "
            f"{pct(single, 0.5):.1f} ms (target: hop p50 <= 10 ms, p95 <= 30 ms)"
        )
        print(
            f"flood: {deltas} of the {sent_by_service} text deltas the service sent reached the log "
            f"({sent_by_service - deltas} lost; {gaps} gaps in the browser's numbering), "
            f"in {batches} comm messages ({len(flood) / max(batches, 1):.1f} events per message)"
        )
        worst = max((t["ms"] for t in long_tasks), default=0.0)
        print(
            f"long tasks (> 50 ms) while the flood streamed: {len(long_tasks)}, longest {worst:.0f} ms"
        )


if __name__ == "__main__":
    main()
