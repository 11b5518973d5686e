"""A call the kernel holds over the service's WebSocket (``RealtimeSession``) beside the page's
WebRTC call (``RealtimeWidget`` in JupyterLab + Chromium), against the same emulator.

Prints, from one run, against one emulator started in this process (the headless tier's fast
knobs: no speaking pauses, a formant voice, an energy VAD, no recognizer):
- connect: the kernel's ``connect()`` call -> the kernel hearing ``session.updated`` (that
  record's ``t_kernel_ms`` less the time taken just before the call), p50/p95 over ``--connects``
  calls each, WebSocket (a RealtimeSession in this process) vs page (a RealtimeWidget whose
  ``w.connect()`` runs in a kernel cell that then awaits ``w.ready()``), and the ratio; both
  with ``mic=False``, interleaved, after one warm-up call each that is not counted;
- a typed turn's ``to_first_output_ms`` (``reply = await w.ask(...)``; ``reply.latency_ms``:
  ask -> the reply's first audible sample, the kernel's speaker or the browser's ear), p50/p95
  over ``--turns`` turns each, interleaved, WebSocket vs page, and the ratio;
- the tool hop on the WebSocket transport: the kernel receives the function call's arguments
  (``response.function_call_arguments.done``, its ``t_kernel_ms``) -> the ``function_call_output``
  ``conversation.item.create`` written (its ``t_ms``), less the function's own time
  (``tool.finished``'s ``duration_ms``), for ``get_weather`` returning at once, over ``--tools``
  calls: p50/p95 and its legs (target p50 <= 2 ms);
- the recording's clip onset vs ``say.started`` on the WebSocket transport (``record=True``, a
  0.2 s tone loud from its first sample; its first sample above 0.01 in ``recording.user``,
  ``rec.time_of(index)`` against the ``say.started`` record's ``t_ms``): max and p95 of the
  difference over ``--clips`` clips (target within 5 ms; no browser clock in between);
- the shipped evaluation grid (notebooks/evaluation.ipynb: a spoken ``Caller``, two voice
  variants, ``record=True``; its code is written out here) on a second emulator with the shipped
  knobs (``Emulator()``: espeak-ng voice, Silero VAD, the bundled recognizer), in this process:
  the ``run_script`` wall time headless vs in the page, and the ratio. Only with ``--grid``: it
  takes about a minute each way, which doubles the run (about 2 minutes without it, 4-5 with
  it, on a loaded 2-core machine).

Opens WebRTC connections, so run it in a loopback-only namespace:
    scripts/in-netns .venv/bin/python benchmarks/headless.py [--connects 15] [--grid]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from collections.abc import Coroutine
from typing import Any

from _rig import lab_session, pct
from tests.headless.conftest import FAST

# Run both in the kernel (for the widget) and in this process (for the session): the same code
# measures both transports. ``w`` is a RealtimeWidget or a RealtimeSession.
MEASURE = '''
import asyncio as _asyncio
import time as _time


def playback_ends(w):
    """How many replies' sound ended: the service's buffer (WebRTC) or the kernel's speaker."""
    return sum(
        1
        for r in w.events
        if (r["direction"] == "server"
            and r["type"] in ("output_audio_buffer.stopped", "output_audio_buffer.cleared"))
        or (r["direction"] == "local" and r["type"] == "speaker.stopped")
    )


async def until(check, timeout=30.0):
    end = _time.monotonic() + timeout
    while not check():
        if _time.monotonic() > end:
            raise TimeoutError(f"not true within {timeout} s")
        await _asyncio.sleep(0.01)


async def one_connect(w):
    """connect() -> session.updated heard by the kernel (ms); the call is ended after."""
    t0 = _time.time() * 1000.0
    w.connect()
    await w.ready(timeout=30)
    rec = next(r for r in w.events.of_type("session.updated") if r["call_number"] == w.call_number)
    took = rec["t_kernel_ms"] - t0
    w.disconnect()
    await until(lambda: w.status == "disconnected")
    return took


async def one_turn(w, text):
    """A typed turn's felt latency (ms), once its sound has played out: the reply's own
    figure, and the log's turns() row for it (the same definition, folded afresh)."""
    ended = playback_ends(w)
    reply = await w.ask(text, timeout=30)
    await until(lambda: playback_ends(w) > ended)
    await _asyncio.sleep(0.1)  # the page's audible record may follow the buffer's stop
    turns = w.events.turns()
    row = turns[turns.response_id == reply.response_id]
    if not len(row):
        return [reply.latency_ms, None, None]
    return [reply.latency_ms, float(row.to_first_output_ms.iloc[0]),
            float(row.to_first_delta_ms.iloc[0])]


async def grid(w):
    """notebooks/evaluation.ipynb's grid: a spoken caller, two voice variants."""
    from realtime_widget import Caller

    caller = Caller(
        persona="A hurried traveller at the station, polite but short.",
        goal="Book a table for two at 8 pm at a vegetarian place.",
        max_turns=4, speak=True, voice="Dennis")
    t0 = _time.perf_counter()
    runs = await w.run_script(caller, variants={"Clive": {"voice": "Clive"},
                                                "Ashley": {"voice": "Ashley"}})
    wall = _time.perf_counter() - t0
    df = runs.turns()
    return {"wall_s": wall, "turns": len(df), "completed": int((df.status == "completed").sum()),
            "turns_s": runs.timing()["turns_s"], "error": runs.error}
'''
GRID_INSTRUCTIONS = "You are the booking line of a restaurant guide."
TURN_TEXT = "Hello there, what is on the menu?"
TOOL_TEXT = "Use get weather for Paris."
RATE = 24000


def page_cells(base_url: str, api_key: str) -> list[str]:
    widget = (
        f"{MEASURE}\n"
        "from realtime_widget import RealtimeWidget\n"
        f"w = RealtimeWidget(base_url={base_url!r}, api_key={api_key!r}, mic=False)\n"
        "w\n"
    )
    grid_widget = (  # GRID_URL, GRID_KEY set by the benchmark before this cell runs
        "g = RealtimeWidget(base_url=GRID_URL, api_key=GRID_KEY, mic=False, record=True,\n"
        f"                   instructions={GRID_INSTRUCTIONS!r})\n"
        "g\n"
    )
    return [widget, grid_widget]


class Loop:
    """An event loop on its own thread for the headless sessions (Playwright's sync API holds
    this one's)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ns: dict[str, Any] = {}
        exec(MEASURE, self.ns)

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 120.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


async def connected(session: Any) -> None:
    await session.connect()  # connect() needs the running loop: called on it


def in_page(book: Any, code: str) -> Any:
    """Await ``code`` (an expression) in a kernel cell; its value as JSON."""
    book.kernel_eval(f"_v = await {code}")
    return book.kernel_json("_v")


def fig(values: list[float], digits: int = 1) -> str:
    return f"p50 {pct(values, 0.5):.{digits}f} ms, p95 {pct(values, 0.95):.{digits}f} ms"


def ratio(page: list[float], ws: list[float]) -> str:
    return (
        f"page / WebSocket: p50 {pct(page, 0.5) / pct(ws, 0.5):.1f}x, "
        f"p95 {pct(page, 0.95) / pct(ws, 0.95):.1f}x"
    )


async def tool_hops(
    session: Any, calls: int, ns: dict[str, Any]
) -> tuple[list[float], dict[str, list[float]]]:
    """The kernel's tool hop for ``calls`` calls of a tool that returns at once; and its legs."""
    until, ends = ns["until"], ns["playback_ends"]

    @session.tool
    def get_weather(city: str) -> dict[str, str]:
        """The weather in a city."""
        return {"city": city, "sky": "clear"}

    since = len(session.events)
    for _ in range(calls):
        done = len(session.events.of_type("response.done"))
        ended = ends(session)
        session.send_text(TOOL_TEXT)
        # the call's response, then the reply reading its output back, played out
        await until(lambda d=done: len(session.events.of_type("response.done")) >= d + 2)
        await until(lambda e=ended: ends(session) > e)
    per: dict[str, dict[str, float]] = {}
    for r in list(session.events)[since:]:
        ev, etype, d = r["event"], r["type"], r["direction"]
        item = ev.get("item") if isinstance(ev.get("item"), dict) else {}
        call_id = ev.get("call_id") or item.get("call_id")
        if not call_id:
            continue
        c = per.setdefault(call_id, {})
        if d == "server" and (
            etype == "response.function_call_arguments.done"
            or (etype == "response.output_item.done" and item.get("type") == "function_call")
        ):
            c.setdefault("recv", r["t_kernel_ms"])
        elif d == "local" and etype == "tool.started":
            c["started"] = r["t_ms"]
        elif d == "local" and etype == "tool.finished":
            c["finished"], c["dur"] = r["t_ms"], float(ev.get("duration_ms") or 0.0)
        elif (
            d == "client"
            and etype == "conversation.item.create"
            and item.get("type") == "function_call_output"
        ):
            c.setdefault("sent", r["t_ms"])
    hops: list[float] = []
    legs: dict[str, list[float]] = {
        "arguments -> tool.started": [],
        "tool.started -> tool.finished, less the function": [],
        "tool.finished -> output written": [],
        "the function itself": [],
    }
    for c in per.values():
        if not {"recv", "started", "finished", "dur", "sent"} <= c.keys():
            continue
        hops.append(c["sent"] - c["recv"] - c["dur"])
        legs["arguments -> tool.started"].append(c["started"] - c["recv"])
        legs["tool.started -> tool.finished, less the function"].append(
            c["finished"] - c["started"] - c["dur"]
        )
        legs["tool.finished -> output written"].append(c["sent"] - c["finished"])
        legs["the function itself"].append(c["dur"])
    return hops, legs


async def clip_onsets(session: Any, clips: int, ns: dict[str, Any]) -> list[float]:
    """|clip onset in the recorded user track - say.started| (ms) for ``clips`` tone clips."""
    import numpy as np

    until = ns["until"]
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(RATE // 5) / RATE)).astype(np.float32)
    diffs: list[float] = []
    for _ in range(clips):
        n = len(session.events.of_type("say.started"))
        clip = session.say((tone, RATE))  # loud from its first sample
        await clip
        await asyncio.sleep(0.25)  # silence after it, and its chunks in the recording
        rec = session.recording
        started = session.events.of_type("say.started")[n]["t_ms"]
        await until(lambda r=rec, s=started: r.time_of(r.frames - 1) > s + 300)
        lo = max(0, rec.sample_at(started - 50.0))
        above = np.flatnonzero(np.abs(rec.user[lo:]) > 0.01)
        diffs.append(abs(rec.time_of(lo + int(above[0])) - started))
    return diffs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connects", type=int, default=15, help="connects per transport")
    parser.add_argument("--turns", type=int, default=15, help="typed turns per transport")
    parser.add_argument("--tools", type=int, default=30, help="tool calls (WebSocket)")
    parser.add_argument("--clips", type=int, default=20, help="recorded clips (WebSocket)")
    parser.add_argument(
        "--grid", action="store_true", help="also the evaluation grid, headless vs page (+3 min)"
    )
    args = parser.parse_args()

    from realtime_widget import Emulator, RealtimeSession

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    t_start = time.perf_counter()
    emu = Emulator(**FAST).start()
    loop = Loop()
    ns = loop.ns
    print(f"emulator in this process ({emu.base_url}), headless tier's knobs: {FAST}")

    made: list[Any] = []

    async def make(on: Any, **kw: Any) -> Any:  # made on the loop that runs it
        made.append(RealtimeSession(base_url=on.base_url, api_key=on.api_key, **kw))
        return made[-1]

    try:
        with lab_session(page_cells(emu.base_url, emu.api_key), prefix="rtw-bench-hl-") as rig:
            book = rig.book
            s = loop.run(make(emu, mic=False))

            # 1. connect, interleaved, one warm-up each
            in_page(book, "one_connect(w)")
            loop.run(ns["one_connect"](s))
            page_c, ws_c = [], []
            for _ in range(args.connects):
                page_c.append(float(in_page(book, "one_connect(w)")))
                ws_c.append(loop.run(ns["one_connect"](s)))
            print(
                f"connect, connect() -> session.updated in the kernel ({args.connects} each, "
                "mic=False; the page's w.connect() from a kernel cell awaiting w.ready()):"
            )
            print(f"  WebSocket (RealtimeSession) {fig(ws_c)}")
            print(f"  page (RealtimeWidget)       {fig(page_c)}")
            print(f"  {ratio(page_c, ws_c)}")

            # 2. typed turns, interleaved, one warm-up each
            book.kernel_eval("w.connect()\nawait w.ready(timeout=30)")
            loop.run(connected(s))
            in_page(book, f"one_turn(w, {TURN_TEXT!r})")
            loop.run(ns["one_turn"](s, TURN_TEXT))
            page_pairs, ws_pairs = [], []
            for _ in range(args.turns):
                page_pairs.append(in_page(book, f"one_turn(w, {TURN_TEXT!r})"))
                ws_pairs.append(loop.run(ns["one_turn"](s, TURN_TEXT)))
            page_t = [log for _, log, _ in page_pairs if log is not None]
            ws_t = [log for _, log, _ in ws_pairs if log is not None]
            print(
                f"typed turn, to_first_output_ms (ask -> the reply's first audible sample, from "
                f"the log's turns(); {args.turns} each):"
            )
            for name, values, pairs in (
                ("WebSocket (RealtimeSession)", ws_t, ws_pairs),
                ("page (RealtimeWidget)      ", page_t, page_pairs),
            ):
                off = sum(1 for own, log, _ in pairs if own is None or log is None or own != log)
                delta = [d for _, _, d in pairs if d is not None]
                print(
                    f"  {name} {fig(values)} (to its first transcript delta: p50 "
                    f"{pct(delta, 0.5):.1f} ms); reply.latency_ms differed from the log's "
                    f"(or was None) in {off} of {len(pairs)}"
                )
            print(f"  {ratio(page_t, ws_t)}")
            book.kernel_eval("w.disconnect()")

            # 3. the tool hop, WebSocket
            hops, legs = loop.run(tool_hops(s, args.tools, ns), timeout=600)
            loop.run(s.aclose())
            print(
                f"tool hop, WebSocket: arguments received -> function_call_output written, less "
                f"the function's own time ({len(hops)} calls): {fig(hops, 2)} (target p50 <= 2 ms)"
            )
            for name, values in legs.items():
                print(f"  {name}: {fig(values, 2)}")

            # 4. the recording's clip onset, WebSocket
            r = loop.run(make(emu, record=True, turn_detection=None))
            loop.run(connected(r))
            onsets = loop.run(clip_onsets(r, args.clips, ns), timeout=600)
            gaps = r.recording.gaps
            loop.run(r.aclose())
            print(
                f"recording, clip onset in the user track vs say.started, WebSocket "
                f"({len(onsets)} clips): |diff| max {max(onsets):.2f} ms, p95 "
                f"{pct(onsets, 0.95):.2f} ms, p50 {pct(onsets, 0.5):.2f} ms (target <= 5 ms); "
                f"{len(gaps)} gaps"
            )

            # 5. the evaluation grid
            if args.grid:
                shipped = Emulator().start()
                try:
                    shipped.wait_voice_ready(timeout=120)
                    g = loop.run(
                        make(shipped, mic=False, record=True, instructions=GRID_INSTRUCTIONS)
                    )
                    loop.run(connected(g))
                    ws_g = loop.run(ns["grid"](g), timeout=900)
                    loop.run(g.aclose())
                    book.kernel_eval(
                        f"GRID_URL, GRID_KEY = {shipped.base_url!r}, {shipped.api_key!r}"
                    )
                    book.run_cell(1)
                    book.kernel_eval("g.connect()\nawait g.ready(timeout=30)")
                    book.kernel_eval("_v = await grid(g)")
                    page_g = book.kernel_json("{k: v for k, v in _v.items()}")
                    book.kernel_eval("g.close()")
                finally:
                    shipped.stop()
                print(
                    "evaluation grid (notebooks/evaluation.ipynb: spoken caller, 2 variants; "
                    "the shipped emulator knobs), run_script wall:"
                )
                for name, got in (("headless (RealtimeSession)", ws_g), ("page", page_g)):
                    print(
                        f"  {name:<26} {got['wall_s']:.1f} s, {got['completed']}/{got['turns']} "
                        f"turns completed, their own time {got['turns_s']:.1f} s"
                        f"{'; error ' + str(got['error']) if got['error'] else ''}"
                    )
                print(f"  page / headless: {page_g['wall_s'] / ws_g['wall_s']:.2f}x")
            book.kernel_eval("w.close()")
    finally:
        for session in made:  # each safe to close twice
            loop.run(session.aclose(), timeout=10)
        loop.stop()
        emu.stop()
    print(
        f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"the run took {time.perf_counter() - t_start:.0f} s"
    )


if __name__ == "__main__":
    main()
