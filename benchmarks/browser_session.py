"""A real session in JupyterLab + Chromium against the emulator, measured from the browser.

Prints, from one run:
- connect time, click on Connect -> session.updated (browser clock; the click is the click
  event's own timestamp), for the widget and for the seed's own flow on a bare page
  (``bare_connect.html``: fetch the ICE config, getUserMedia, gather, POST the offer to the
  service with the key, session.update on open) against the same emulator, side by side and as
  a ratio; plain, and with a STUN server in the list that never answers. Each page is brought
  to the front before its click, as the tab a user clicks in is: Chromium defers a tab's tasks
  after an input until it draws a frame, capped at about 50 ms, and a tab behind another draws
  none, so every message, timer and WebRTC result of the first ~50 ms after a click waited;
- event delivery latency, browser receive -> kernel log (p50/p95), for single events on an idle
  kernel and during a 2,000-delta flood, and the floor: a bare anywidget whose front end sends
  a timestamped custom message, received by its Python side the same way; the ratios to it.
  For events set in a cell the floor's message leaves the page at the same moment (5 ms after
  the cell's own message, the kernel still finishing the cell), and the ratio to the idle
  kernel's floor is printed beside it;
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
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _legs import KERNEL_HOOK, PAGE_HOOK, PAGE_START, TAKEN, Legs, print_legs
from _rig import RECORD_CLICKS, BareServer, click, cors_preflight_ok, lab_session, pct

FLOOD_DELTAS = 2000
SINGLE_EVENTS = 30
TOOL_CALLS = 50

RESPONDER = f"""
from realtime_widget.emulator import default_responder

def responder(ctx):
    if (ctx.last_user_text or "").startswith("flood"):
        return "".join(f"w{{i}} " for i in range({FLOOD_DELTAS}))
    if "ping tool" in (ctx.last_user_text or "") or (ctx.last_item or {{}}).get("type") == "function_call_output":
        return default_responder(ctx)  # calls the tool; then reads its output back
    return "Hello from the benchmark."
"""
EMULATOR_KNOBS = {"delta_interval_ms": 1, "first_delta_delay_ms": 0}
EMULATOR_IN_KERNEL = f"""
from realtime_widget import Emulator
{RESPONDER}
emu = Emulator(responder=responder, **{EMULATOR_KNOBS!r}).start()
BASE_URL, API_KEY = emu.base_url, emu.api_key
"""
WIDGET = """
from realtime_widget import RealtimeWidget
# no turn detection: the fake microphone's beep must not interrupt the flood
w = RealtimeWidget(
    base_url=BASE_URL, api_key=API_KEY, output_modalities=["text"], turn_detection=None,
    sideband=False,  # the data-channel path: every event through the page
)
w
"""

# Diagnostic (--server-nodelay): TCP_NODELAY on the Jupyter server's sockets, through a
# sitecustomize the server (and kernel) load at start. Setting it once is not enough: tornado's
# HTTP connection turns Nagle back on when a request finishes (set_nodelay(False)), and the
# websocket upgrade is such a request, so every set_nodelay call is made to say True.
NODELAY_SITE = """
import socket
try:
    import tornado.iostream as _io
except ImportError:
    _io = None
if _io is not None:
    _set = _io.IOStream.set_nodelay
    def _always(self, value):
        return _set(self, True)
    _io.IOStream.set_nodelay = _always
    _init = _io.IOStream.__init__
    def _nodelay_init(self, sock, *a, **kw):
        _init(self, sock, *a, **kw)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
    _io.IOStream.__init__ = _nodelay_init
"""


class EmulatorHandle:
    """The emulator, wherever it runs: in the kernel (as a notebook user would start it) or
    in this process (the kernel then carries only the widget, as with a remote service)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.local: Any = None
        self.book: Any = None
        if where == "bench":
            from realtime_widget import Emulator

            scope: dict[str, Any] = {}
            exec(RESPONDER, scope)
            self.local = Emulator(responder=scope["responder"], **EMULATOR_KNOBS).start()

    def setup_cell(self) -> str:
        if self.local is None:
            return EMULATOR_IN_KERNEL + WIDGET
        return f"BASE_URL, API_KEY = {self.local.base_url!r}, {self.local.api_key!r}\n" + WIDGET

    def configure(self, **knobs: Any) -> None:
        if self.local is not None:
            self.local.configure(**knobs)
        else:
            self.book.kernel_eval(f"emu.configure(**{knobs!r})")

    def sent_by_service(self, etype: str) -> int:
        """How many events of ``etype`` the last call put on its data channel."""
        expr = (
            f"(lambda c: c['events_out_by_type'].get({etype!r}, 0) "
            "if 'events_out_by_type' in c else "
            f"sum(1 for e in c['events_out'] if e.get('type') == {etype!r}))"
        )
        if self.local is not None:
            return int(eval(expr)(self.local.calls[-1]))
        return int(self.book.kernel_json(f"{expr}(emu.calls[-1])"))

    def stop(self) -> None:
        if self.local is not None:
            self.local.stop()


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
          }, msg.delay ?? 30);
        });
      },
      render({ el }) { el.textContent = "echo"; el.dataset.testid = "echo"; },
    };
    '''

    def __init__(self):
        super().__init__()
        self.delivery_ms = []
        self.got = []  # (t_ms sent in the page, kernel receive), for the legs
        self.on_msg(self._got)

    def _got(self, _widget, content, buffers):
        now = _time.time() * 1000.0
        self.delivery_ms.append(now - content["t_ms"])
        self.got.append((content["t_ms"], now))

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


TOOL_EVENTS = ("response.function_call_arguments.done", "response.output_item.done")
LOGGED_FOR_TOOLS = (*TOOL_EVENTS, "tool.started", "tool.finished", "conversation.item.create")


def start_legs(page: Any, book: Any) -> None:
    page.evaluate(PAGE_START)
    book.kernel_eval("_klegs.start()")


def with_prefix(prefix: str, d: dict[str, float] | None) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in (d or {}).items()}


def connect_row(legs: Legs, t_click: float, recs: dict[str, float]) -> dict[str, float]:
    """Each step of one widget connect, on one clock (epoch ms)."""
    row = {"click": t_click, **recs}
    req = legs.sent(lambda w: w.get("kind") == "request" and w.get("action") == "connect")
    if req:
        row.update(with_prefix("req_", legs.to_kernel(req)))
    cid = legs.kernel_sent(lambda w: w.get("kind") == "connect")
    if cid:
        row.update(with_prefix("connect_", legs.to_page(cid)))
    offer = legs.sent(lambda w: w.get("kind") == "offer")
    if offer:
        row.update(with_prefix("offer_", legs.to_kernel(offer)))
    aid = legs.kernel_sent(lambda w: w.get("kind") == "answer")
    if aid:
        row.update(with_prefix("answer_", legs.to_page(aid)))
    return row


CONNECT_LEGS = (
    ("click -> request on the page's websocket", "click", "req_sent"),
    ("request: page -> kernel main thread", "req_sent", "req_kernel_in"),
    ("kernel: request -> connect message sent", "req_kernel_in", "connect_kernel_sent"),
    ("connect: kernel -> page websocket", "connect_kernel_sent", "connect_page_recv"),
    ("connect: waits in the page's message chain", "connect_page_recv", "connect_chain_begin"),
    ("click -> call.start (the page starts the call)", "click", "call.start"),
    ("call.start -> offer.sent (offer, gathering)", "call.start", "offer.sent"),
    ("offer.sent -> offer on the websocket", "offer.sent", "offer_sent"),
    ("offer: page -> kernel main thread", "offer_sent", "offer_kernel_in"),
    ("kernel: offer -> answer sent (the POST)", "offer_kernel_in", "answer_kernel_sent"),
    ("answer: kernel -> page websocket", "answer_kernel_sent", "answer_page_recv"),
    ("answer: waits in the page's message chain", "answer_page_recv", "answer_chain_begin"),
    ("answer handled -> channel.open", "answer_chain_begin", "channel.open"),
    ("channel.open -> session.updated", "channel.open", "session.updated"),
    ("total: click -> session.updated", "click", "session.updated"),
)
BARE_LEGS = (
    ("click -> ICE servers fetched", "t_click", "t_ice"),
    ("-> getUserMedia", "t_ice", "t_mic"),
    ("-> gathered (offer made, gathering)", "t_mic", "t_gathered"),
    ("-> answer applied (the POST)", "t_gathered", "t_answer"),
    ("-> channel.open", "t_answer", "t_open"),
    ("-> session.updated", "t_open", "t_updated"),
    ("total: click -> session.updated", "t_click", "t_updated"),
)


def tool_rows(legs: Legs, log: list[list[Any]]) -> tuple[list[dict[str, float]], list[str]]:
    """Each leg of each tool call's hop; and what the page's chain was busy with ahead of
    each output's message."""
    calls: dict[str, dict[str, float]] = {}
    for etype, direction, t_ms, _tk, call_id, dur in log:
        if not call_id:
            continue
        c = calls.setdefault(call_id, {})
        if etype in TOOL_EVENTS and direction == "server":
            c.setdefault("recv", t_ms)
        elif etype == "tool.started":
            c["started"] = t_ms
        elif etype == "tool.finished":
            c["finished"], c["dur"] = t_ms, dur or 0.0
        elif etype == "conversation.item.create" and direction == "client":
            c.setdefault("dc_sent", t_ms)
    rows, ahead = [], []
    for call_id, c in calls.items():
        if not {"recv", "started", "finished", "dc_sent"} <= c.keys():
            continue
        # the batch the kernel started the call on: the last one carrying it before tool.started
        batches = [
            m
            for m in legs.msgs
            if m["dir"] == "send"
            and any(r[3] == call_id for r in m["what"].get("records") or [])
            and legs.comm_in.get(m["id"], float("inf")) <= c["started"]
        ]
        if batches:
            c.update(with_prefix("batch_", legs.to_kernel(batches[-1])))
        out = legs.kernel_sent(
            lambda w, cid=call_id: (
                w.get("kind") == "send" and any(e[1] == cid for e in w.get("events") or [])
            )
        )
        if out:
            c.update(with_prefix("out_", legs.to_page(out)))
            ahead.extend(legs.ahead_in_chain(out))
        c["finished_less_dur"] = c["finished"] - c["dur"]
        c["hop_end"] = c["dc_sent"] - c["dur"]
        rows.append(c)
    return rows, ahead


TOOL_LEGS = (
    ("call received -> its batch on the websocket", "recv", "batch_sent"),
    ("batch: page -> kernel main thread", "batch_sent", "batch_kernel_in"),
    ("kernel: batch -> tool.started", "batch_kernel_in", "started"),
    ("kernel: tool.started -> finished, less the fn", "started", "finished_less_dur"),
    ("kernel: tool.finished -> output message sent", "finished", "out_kernel_sent"),
    ("output: kernel -> page websocket", "out_kernel_sent", "out_page_recv"),
    ("output: waits in the page's message chain", "out_page_recv", "out_chain_begin"),
    ("output handled -> sent on the data channel", "out_chain_begin", "dc_sent"),
    ("hop: call received -> output sent, less the fn", "recv", "hop_end"),
)


def delivery_rows(legs: Legs, log: list[list[Any]]) -> list[dict[str, float]]:
    """Each leg of each single event's way from the data channel to the kernel's log."""
    rows = []
    for event_id, t_ms, t_kernel in log:
        batch = legs.sent(lambda w, eid=event_id: any(r[2] == eid for r in w.get("records") or []))
        row = {"recv": t_ms, "logged": t_kernel}
        if batch:
            row.update(with_prefix("batch_", legs.to_kernel(batch)))
        rows.append(row)
    return rows


def floor_rows(legs: Legs, got: list[list[float]]) -> list[dict[str, float]]:
    rows = []
    for t_ms, t_got in got:
        msg = legs.sent(lambda w, t=t_ms: w.get("t_ms") == t)
        row = {"recv": t_ms, "logged": t_got}
        if msg:
            row.update(with_prefix("batch_", legs.to_kernel(msg)))
        rows.append(row)
    return rows


DELIVERY_LEGS = (
    ("received (stamped) -> on the page's websocket", "recv", "batch_sent"),
    ("page websocket -> kernel main thread", "batch_sent", "batch_kernel_in"),
    ("kernel main thread -> received by the widget", "batch_kernel_in", "logged"),
    ("total", "recv", "logged"),
)


def print_ahead(title: str, ahead: list[str]) -> None:
    counts: dict[str, int] = {}
    for a in ahead:
        counts[a] = counts.get(a, 0) + 1
    top = ", ".join(f"{k} x{v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:6])
    print(f"  {title}: {top or 'nothing'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connects", type=int, default=5, help="calls per connect case")
    parser.add_argument(
        "--emulator-in",
        choices=("bench", "kernel"),
        default="bench",
        help="where the emulator runs: this process (default; the kernel then carries only "
        "the widget, as with a remote service) or the notebook's kernel",
    )
    parser.add_argument(
        "--server-nodelay",
        action="store_true",
        help="diagnostic: TCP_NODELAY on the Jupyter server's sockets (what Nagle's "
        "algorithm on its websocket costs the kernel -> page messages)",
    )
    parser.add_argument(
        "--connect-only",
        action="store_true",
        help="measure the connects only (no flood, single events or tool calls)",
    )
    parser.add_argument("--dump", type=Path, help="write every phase's raw leg logs here (JSON)")
    args = parser.parse_args()
    html = (Path(__file__).parent / "bare_connect.html").read_text()
    env: dict[str, str] = {}
    if args.server_nodelay:
        site = Path(tempfile.mkdtemp(prefix="rtw-nodelay-"))
        (site / "sitecustomize.py").write_text(NODELAY_SITE)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    emu = EmulatorHandle(args.emulator_in)
    print(
        f"emulator in {'the kernel' if args.emulator_in == 'kernel' else 'the benchmark process'}"
        f"{'; TCP_NODELAY on the Jupyter server' if args.server_nodelay else ''}"
    )
    try:
        run(args, html, env, emu)
    finally:
        emu.stop()
        if args.dump:
            args.dump.write_text(json.dumps(TAKEN))


def run(args: argparse.Namespace, html: str, env: dict[str, str], emu: EmulatorHandle) -> None:
    with lab_session(
        [emu.setup_cell(), ECHO], run_cells=[1], init_scripts=[OBSERVE_LONG_TASKS], env=env
    ) as rig:
        page, book, wire = rig.page, rig.book, rig.wire
        emu.book = book
        page.locator("[data-testid=echo]").first.wait_for(timeout=30_000)
        base_url, api_key = book.kernel_json("[BASE_URL, API_KEY]")
        book.kernel_eval(KERNEL_HOOK)
        assert page.evaluate(PAGE_HOOK), "no kernel connection to hook"
        connect_legs: list[dict[str, float]] = []
        connect_ahead: list[str] = []

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
                # Each page is the tab in front when clicked, as for a user: Chromium defers
                # a background tab's tasks for ~50 ms after an input (it waits for a frame
                # that a tab behind another never draws), which the front tab does not pay.
                page.bring_to_front()
                start_legs(page, book)
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
                legs = Legs.take(page, book)
                recs = book.kernel_json(
                    "{r['type']: r['t_ms'] for r in reversed(list(w.events)) "
                    "if r['call_number'] == w.call_number and r['type'] in "
                    "('call.start', 'offer.sent', 'channel.open', 'session.updated')}"
                )
                connect_legs.append(connect_row(legs, t_click, recs))
                for kind in ("connect", "answer"):
                    mid = legs.kernel_sent(lambda w, k=kind: w.get("kind") == k)
                    if mid:
                        connect_ahead.extend(f"{kind}: {a}" for a in legs.ahead_in_chain(mid))
                page.locator(CONNECT).first.click()  # Disconnect
                book.poll("w.status == 'disconnected'")
                return float(t_updated) - t_click

            def bare_connect() -> dict[str, Any]:
                bare_page.bring_to_front()
                n = bare_page.evaluate("() => window.__results.length")
                bare_page.locator("#connect").click()
                bare_page.wait_for_function(f"() => window.__results.length > {n}", timeout=20_000)
                r: dict[str, Any] = bare_page.evaluate(f"() => window.__results[{n}]")
                if "error" in r:
                    raise RuntimeError(f"bare page: {r['error']}")
                # the page stamps no time after gathering: mic + its gathering is close (the
                # peer connection and the offer in between take a millisecond or two)
                r["t_gathered"] = r["t_mic"] + r["gather_ms"]
                return r

            def side_by_side(n: int) -> tuple[list[float], list[dict[str, Any]]]:
                widget, seed = [], []
                for _ in range(n):  # interleaved, so both see the same machine
                    widget.append(widget_connect())
                    seed.append(bare_connect())
                return widget, seed

            plain = side_by_side(args.connects)
            # the same, with a STUN server in the list that never answers (a socket that swallows)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
                hole.bind(("127.0.0.1", 0))
                emu.configure(ice_servers=[{"urls": [f"stun:127.0.0.1:{hole.getsockname()[1]}"]}])
                silent = side_by_side(args.connects)
                emu.configure(ice_servers=())
            bare_page.close()
            page.bring_to_front()

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
        print_legs("widget connect, plain", connect_legs[: args.connects], CONNECT_LEGS)
        print_ahead("ahead of connect/answer in the page's chain", connect_ahead)
        print_legs("bare page connect, plain", plain[1], BARE_LEGS)
        print_legs("widget connect, silent STUN", connect_legs[args.connects :], CONNECT_LEGS)
        if args.connect_only:
            return

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
        sent_by_service = emu.sent_by_service("response.output_text.delta")

        # single events: session.update -> session.updated round trips, interleaved with the
        # floor's echoes so both see the same kernel and machine. Two ways: set by the cell
        # itself (the answer comes back while the kernel still finishes that cell), and set
        # 30 ms after the cell has ended (the kernel idle when it arrives, as for the floor,
        # whose page waits 30 ms before it sends)
        book.kernel_eval("import asyncio as _aio")
        results: dict[
            str, tuple[list[float], list[float], list[dict[str, float]], list[dict[str, float]]]
        ] = {}
        for how in ("in the cell", "idle kernel"):
            n_mark = book.kernel_json("len(w.events)")
            book.kernel_eval("echo.delivery_ms.clear(); echo.got.clear()")
            start_legs(page, book)
            for i in range(SINGLE_EVENTS):
                speed = 1.0 + (i % 2) * 0.1
                if how == "in the cell":
                    book.kernel_eval(f"w.speed = {speed}")
                else:
                    book.kernel_eval(
                        f"_aio.get_running_loop().call_later(0.03, setattr, w, 'speed', {speed})"
                    )
                time.sleep(0.15)
                # the floor's message leaves the page as the widget's event does: in the
                # cell, a few ms after the cell's own message (the kernel still finishing it)
                delay = 5 if how == "in the cell" else 30
                book.kernel_eval(f"echo.send({{'n': {i}, 'delay': {delay}}})")
                time.sleep(0.15)
            legs = Legs.take(page, book)
            log = book.kernel_json(
                f"[(r['event'].get('event_id'), r['t_ms'], r['t_kernel_ms']) "
                f"for r in list(w.events)[{n_mark}:] if r['type'] == 'session.updated']"
            )
            got = book.kernel_json("echo.got")
            results[how] = (
                [tk - t for _, t, tk in log],
                [g - t for t, g in got],
                delivery_rows(legs, log),
                floor_rows(legs, got),
            )

        for how, (single, floor, rows, frows) in results.items():
            f50, f95 = pct(floor, 0.5), pct(floor, 0.95)
            p50, p95 = pct(single, 0.5), pct(single, 0.95)
            print(
                f"single events, session.update set {how}: delivery browser -> kernel log "
                f"({len(single)} session.updated) p50 {p50:.1f} ms, p95 {p95:.1f} ms; floor, a "
                f"bare anywidget message ({len(floor)}) p50 {f50:.1f} ms, p95 {f95:.1f} ms; "
                f"x floor: p50 {p50 / f50:.2f}x, p95 {p95 / f95:.2f}x"
            )
            if how == "in the cell":  # beside the floor of an idle kernel too
                i50 = pct(results["idle kernel"][1], 0.5)
                print(f"  x the idle kernel's floor ({i50:.1f} ms): p50 {p50 / i50:.2f}x")
            print_legs(f"  widget delivery, set {how}", rows, DELIVERY_LEGS)
            print_legs(f"  floor delivery, set {how}", frows, DELIVERY_LEGS)
        print("  (target: single-event p50 <= 1.3x the floor)")
        single, floor = results["idle kernel"][0], results["idle kernel"][1]
        f50, f95 = pct(floor, 0.5), pct(floor, 0.95)
        p50, p95 = pct(flood, 0.5), pct(flood, 0.95)
        print(
            f"delivery browser -> kernel log during the flood ({len(flood)} server events): "
            f"p50 {p50:.1f} ms, p95 {p95:.1f} ms; x floor: p50 {p50 / f50:.2f}x, p95 {p95 / f95:.2f}x"
        )

        # the kernel hop of a tool that returns at once
        book.kernel_eval("w.tool(lambda: 'pong', name='ping_tool', description='Answers pong.')")
        done0 = book.kernel_json("len(w.events.of_type('response.done'))")
        n_tools = book.kernel_json("len(w.events)")
        start_legs(page, book)
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
        legs = Legs.take(page, book)
        log = book.kernel_json(
            f"[(r['type'], r['direction'], r['t_ms'], r['t_kernel_ms'], "
            f"r['event'].get('call_id') or ((r['event'].get('item') or {{}}).get('call_id') "
            f"if isinstance(r['event'].get('item'), dict) else None), "
            f"r['event'].get('duration_ms')) for r in list(w.events)[{n_tools}:] "
            f"if r['type'] in {LOGGED_FOR_TOOLS!r}]"
        )
        rows, ahead = tool_rows(legs, log)
        hops = book.kernel_json("[x for x in w.events.turns()['tool_hop_ms'] if x == x]")
        own = book.kernel_json("[x for x in w.events.turns()['tool_ms'] if x == x]")
        print(
            f"tool kernel hop, call received in the browser -> output sent, less the function's "
            f"own time ({len(hops)} calls of a tool that returns at once): p50 "
            f"{pct(hops, 0.5):.1f} ms, p95 {pct(hops, 0.95):.1f} ms (the function itself: p50 "
            f"{pct(own, 0.5):.2f} ms); single-event delivery in this run: p50 "
            f"{pct(single, 0.5):.1f} ms (target: hop p50 <= 10 ms, p95 <= 30 ms)"
        )
        print_legs("tool kernel hop", rows, TOOL_LEGS)
        print_ahead("ahead of the output's message in the page's chain", ahead)
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
