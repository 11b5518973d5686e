"""Soak: one long call in JupyterLab + Chromium against the emulator, memory and loss measured.

Audio goes both ways: Chromium's fake microphone plays a speech WAV (espeak-ng, looped, with
silence between utterances, so the emulator's VAD takes turns and answers with its synthetic
voice), or the stock fake device (``--mic stock``: a beep). A text turn is sent every
``--turn-every`` seconds. Every ``--sample-every`` seconds the script samples:

- the kernel's RSS (the kernel process, read from /proc by PID: nothing runs in the kernel);
- the page: JS heap used after a forced garbage collection and DOM nodes (CDP
  ``HeapProfiler.collectGarbage`` + ``Performance.getMetrics``), and the RSS of Chromium's
  renderer processes;
- the emulator's RSS (it runs as its own process, so its memory is not the kernel's);
- events: logged by the widget, and data-channel messages the page received;
- the log's own memory (the EventLog's buffer and columns, ``sys.getsizeof`` of each) and the
  kernel's C heap in use (glibc ``mallinfo2``), so the kernel's RSS slope has a yardstick.

With ``--tracemalloc N`` the kernel also traces its Python allocations (``tracemalloc``) and
takes a snapshot every N minutes; each snapshot prints the allocation sites (file:line) that grew
most since the previous one, and the end prints the sites that grew most from the first
snapshot after the warm-up to the last, in KB/min beside the log's own growth, with the calling
lines of the biggest. Tracing costs memory and time in the kernel, so that run's RSS figures
are not the untraced ones: measure the slopes without it.

At the end the microphone's turns are switched off (turn_detection=None) until the call is
quiet, and the events the emulator sent on the call (its own count) are compared with the
server events in the widget's log. Prints the samples, the least-squares slope (MB/min) of
each memory series over the samples after the warm-up, and the loss.

Opens WebRTC connections, so run it in a loopback-only namespace:
    scripts/in-netns .venv/bin/python benchmarks/soak.py --minutes 3
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _rig import (
    COUNT_CHANNEL_MESSAGES,
    chromium_renderers,
    free_port,
    lab_session,
    least_squares_slope,
    rss_mb,
    speech_wav,
)

API_KEY = "soak-key"
CONNECT = "[data-testid=rtw-connect]"
SPEECH = "What is the weather in Paris today?"
SILENCE_S = 6.0  # after each utterance in the WAV, so the agent's replies have room
# No reply in flight: the last response event in the log is a response.done.
REPLY_DONE = (
    "(lambda rs: not rs or rs[-1]['type'] == 'response.done')"
    "(w.events.of_type('response.created', 'response.done'))"
)


# Run once in the kernel: what each sample reads there. The log's memory is what its
# containers hold (their strings are interned type names, shared); the C heap in use is
# glibc's count of allocated bytes (None where mallinfo2 is missing), which RSS also holds.
KERNEL_PROBES = """
import ctypes as _soak_ct, gc as _soak_gc, sys as _soak_sys

def _soak_log_bytes(log):
    parts = (log._buf, log._off, log._call, log._dir, log._t, log._tk, log._tsb, log._via,
             log._type)
    return sum(_soak_sys.getsizeof(p) for p in parts)

class _SoakMallinfo(_soak_ct.Structure):
    _fields_ = [(n, _soak_ct.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

try:
    _soak_mallinfo2 = _soak_ct.CDLL(None).mallinfo2
    _soak_mallinfo2.restype = _SoakMallinfo
except (AttributeError, OSError):
    _soak_mallinfo2 = None

def _soak_heap_bytes():
    if _soak_mallinfo2 is None:
        return None
    m = _soak_mallinfo2()
    return m.uordblks + m.hblkhd

def _soak_sample():
    return [len(w.events), w.status, _soak_log_bytes(w.events), _soak_heap_bytes()]
"""

# Run once in the kernel with --tracemalloc: snapshots compared by file:line. Only the first
# snapshot after the warm-up and the latest are kept, so tracing itself stays small.
KERNEL_TRACEMALLOC = """
import tracemalloc as _soak_tm

class _SoakTrace:
    SKIP = (_soak_tm.Filter(False, _soak_tm.__file__),
            _soak_tm.Filter(False, "<frozen importlib._bootstrap*>"),
            _soak_tm.Filter(False, "<unknown>"))

    def __init__(self, frames):
        _soak_tm.start(frames)
        self.first = self.prev = None

    def _take(self, t_min):
        _soak_gc.collect()
        return (t_min, _soak_tm.take_snapshot().filter_traces(self.SKIP),
                _soak_log_bytes(w.events), len(w.events))

    @staticmethod
    def _rows(new, old, top):
        stats = new[1].compare_to(old[1], "lineno")
        stats.sort(key=lambda s: s.size_diff, reverse=True)
        return [[f"{s.traceback[0].filename}:{s.traceback[0].lineno}", s.size_diff, s.size,
                 s.count_diff] for s in stats[:top]]

    def snap(self, t_min, after_warmup, top):
        snap = self._take(t_min)
        rows = self._rows(snap, self.prev, top) if self.prev is not None else []
        out = {"t_min": t_min, "traced": _soak_tm.get_traced_memory()[0], "log": snap[2],
               "events": snap[3], "since_prev": rows,
               "prev_t_min": self.prev[0] if self.prev is not None else None}
        if after_warmup and self.first is None:
            self.first = snap
        self.prev = snap
        return out

    def report(self, top, callers, depth):
        if self.first is None or self.prev is self.first:
            return None
        new, old = self.prev, self.first
        rows = self._rows(new, old, top)
        stats = new[1].compare_to(old[1], "traceback")
        stats.sort(key=lambda s: s.size_diff, reverse=True)
        chains = [[s.size_diff, [f"{f.filename}:{f.lineno}" for f in list(s.traceback)[-depth:]]]
                  for s in stats[:callers]]
        total_new = sum(s.size for s in new[1].statistics("filename"))
        total_old = sum(s.size for s in old[1].statistics("filename"))
        return {"from_min": old[0], "to_min": new[0], "rows": rows, "chains": chains,
                "traced_diff": total_new - total_old, "log_diff": new[2] - old[2],
                "events_diff": new[3] - old[3]}
"""


def short_path(path: str) -> str:
    """A traced file's path from its package on (site-packages/..., realtime_widget/...)."""
    for marker in ("site-packages/", "realtime_widget/", "lib/python"):
        i = path.find(marker)
        if i >= 0:
            return path[i + len(marker) :] if marker == "site-packages/" else path[i:]
    return path


def widget_cell(base_url: str) -> str:
    return f"""
import os
from realtime_widget import RealtimeWidget

w = RealtimeWidget(base_url={base_url!r}, api_key={API_KEY!r}, instructions="Be brief.")
kernel_pid = os.getpid()
w
"""


@contextmanager
def emulator_process(
    log: Path, extra: Sequence[str] = ()
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The emulator as its own process on 127.0.0.1, logging at INFO (stopped by its PID on
    exit); ``extra`` are more of its command-line options."""
    port = free_port()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "realtime_widget.emulator",
                "--port",
                str(port),
                "--api-key",
                API_KEY,
                "--log-level",
                "INFO",
                *extra,
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while b"listening on" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the emulator did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield base_url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def emulator_calls(base_url: str) -> list[dict[str, Any]]:
    req = urllib.request.Request(
        f"{base_url}/emulator/calls", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    with urllib.request.urlopen(req, timeout=30) as res:
        calls: list[dict[str, Any]] = json.loads(res.read())
    return calls


def sent_count(call: dict[str, Any]) -> int:
    """Server events the emulator sent on a call: its count (the snapshot keeps a window)."""
    count = call.get("events_out_count")
    return int(count) if isinstance(count, int) else len(call["events_out"])


@dataclass
class Sample:
    t_min: float
    kernel_mb: float
    heap_mb: float
    dom_nodes: int
    renderers_mb: float
    emulator_mb: float
    log_mb: float
    heap_in_use_mb: float | None
    logged: int
    channel_msgs: int
    turns: int
    status: str


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30, help="length of the call")
    parser.add_argument("--turn-every", type=float, default=20, help="seconds between text turns")
    parser.add_argument("--sample-every", type=float, default=60, help="seconds between samples")
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="minutes left out of the slopes (default: 2, or a third of a shorter run)",
    )
    parser.add_argument(
        "--mic", choices=("speech", "stock"), default="speech", help="what the fake mic plays"
    )
    parser.add_argument("--json", type=Path, help="also write the samples and results here")
    parser.add_argument(
        "--kernel-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for JupyterLab and its kernel (repeatable), e.g. "
        "MALLOC_MMAP_THRESHOLD_=131072 to fix glibc's mmap threshold",
    )
    parser.add_argument(
        "--emulator-args",
        default="",
        help="more options for the emulator, e.g. '--vad energy --stt-model none' (lighter "
        "on a loaded machine: a loudness VAD and no recognizer)",
    )
    parser.add_argument(
        "--tracemalloc",
        type=float,
        metavar="N",
        default=None,
        help="trace the kernel's Python allocations and snapshot them every N minutes",
    )
    parser.add_argument(
        "--top", type=int, default=15, help="allocation sites printed per comparison"
    )
    parser.add_argument(
        "--frames", type=int, default=8, help="frames tracemalloc keeps per allocation"
    )
    args = parser.parse_args()
    if args.tracemalloc is not None and not args.tracemalloc > 0:
        parser.error(f"--tracemalloc takes minutes between snapshots (> 0); got {args.tracemalloc}")
    for pair in args.kernel_env:
        if "=" not in pair or not pair.split("=", 1)[0]:
            parser.error(f"--kernel-env takes NAME=VALUE; got {pair!r}")
    warmup = args.warmup if args.warmup is not None else min(2.0, args.minutes / 3)

    with tempfile.TemporaryDirectory(prefix="rtw-soak-") as tmp:
        soak(args, warmup, Path(tmp))


def soak(args: argparse.Namespace, warmup: float, work: Path) -> None:
    chromium_args = []
    mic = "Chromium's stock fake device (a beep every 500 ms)"
    if args.mic == "speech":
        wav = speech_wav(work / "speech.wav", SPEECH, silence_s=SILENCE_S)
        if wav is None:
            print("espeak-ng or sox missing: the fake mic plays its stock beep", file=sys.stderr)
        else:
            chromium_args.append(f"--use-file-for-fake-audio-capture={wav}")
            mic = f"espeak-ng speech ({SPEECH!r} + {SILENCE_S:g} s of silence, looped)"

    with (
        emulator_process(work / "emulator.log", shlex.split(args.emulator_args)) as (
            base_url,
            emulator,
        ),
        lab_session(
            [widget_cell(base_url)],
            chromium_args=chromium_args,
            init_scripts=[COUNT_CHANNEL_MESSAGES],
            env=dict(pair.split("=", 1) for pair in args.kernel_env),
            prefix="rtw-soak-",
        ) as rig,
    ):
        page, book = rig.page, rig.book
        kernel_pid = int(book.kernel_json("kernel_pid"))
        book.kernel_eval(KERNEL_PROBES)
        cdp = rig.cdp()
        cdp.send("Performance.enable")

        def sample(t0: float, turns: int) -> Sample:
            cdp.send("HeapProfiler.collectGarbage")
            metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            renderers = 0.0
            for pid in chromium_renderers():
                try:
                    renderers += rss_mb(pid)
                except Exception:
                    continue  # a renderer that exited meanwhile
            logged, status, log_bytes, heap = book.kernel_json("_soak_sample()")
            return Sample(
                t_min=(time.monotonic() - t0) / 60,
                kernel_mb=rss_mb(kernel_pid),
                heap_mb=metrics["JSHeapUsedSize"] / 2**20,
                dom_nodes=int(metrics["Nodes"]),
                renderers_mb=renderers,
                emulator_mb=rss_mb(emulator.pid),
                log_mb=log_bytes / 2**20,
                heap_in_use_mb=heap / 2**20 if heap is not None else None,
                logged=int(logged),
                channel_msgs=int(page.evaluate("() => window.__dcMessages")),
                turns=turns,
                status=str(status),
            )

        page.locator(CONNECT).first.click()
        book.poll("w.status == 'connected'", timeout=30)
        print(f"soak: {args.minutes:g} min, a text turn every {args.turn_every:g} s, mic: {mic}")

        samples: list[Sample] = []
        traced: list[dict[str, Any]] = []
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        next_turn, next_sample, turns = t0 + args.turn_every, t0, 0
        next_snap = math.inf
        if args.tracemalloc is not None:
            book.kernel_eval(KERNEL_TRACEMALLOC + f"\n_soak_trace = _SoakTrace({args.frames})")
            next_snap = t0
        while True:
            now = time.monotonic()
            if now >= next_snap:
                t_min = (now - t0) / 60
                snap = book.kernel_json(
                    f"_soak_trace.snap({t_min}, {t_min >= warmup - 1e-6}, {args.top})"
                )
                traced.append(snap)
                print_snapshot(snap)
                next_snap += args.tracemalloc * 60
            if now >= next_sample:
                s = sample(t0, turns)
                samples.append(s)
                print(
                    f"  {s.t_min:5.1f} min  kernel {s.kernel_mb:6.1f} MB  heap {s.heap_mb:6.1f} MB"
                    f"  nodes {s.dom_nodes:6d}  events {s.logged:6d}  {s.status}",
                    flush=True,
                )
                next_sample += args.sample_every
            if now >= end:
                break
            if now >= next_turn:
                # A reply to the microphone may be under way: let it finish (up to 10 s), as a
                # person would, so that the text turn is answered rather than refused.
                with suppress(TimeoutError):
                    book.poll(REPLY_DONE, timeout=10, interval=0.2)
                turns += 1
                book.kernel_eval(f"w.send_text('Soak turn {turns}: tell me something short.')")
                next_turn += args.turn_every
            time.sleep(max(0.0, min(next_turn, next_sample, next_snap, end) - time.monotonic()))

        trace_report = None
        if args.tracemalloc is not None:
            t_min = (time.monotonic() - t0) / 60
            if traced and t_min - traced[-1]["t_min"] > args.tracemalloc / 2:
                snap = book.kernel_json(f"_soak_trace.snap({t_min}, True, {args.top})")
                traced.append(snap)
                print_snapshot(snap)
            trace_report = book.kernel_json(f"_soak_trace.report({args.top}, 6, 8)")

        # Quiet the call (no more turns from the microphone), then count both sides.
        book.kernel_eval("w.turn_detection = None")
        deadline, last, sent, logged = time.monotonic() + 60, None, -1, -2
        while time.monotonic() < deadline:
            call = max(emulator_calls(base_url), key=lambda c: c["created_at"])
            sent = sent_count(call)
            logged = int(
                book.kernel_json(
                    "sum(1 for r in w.events if r['direction'] == 'server' and r['call_number'] == w.call_number)"
                )
            )
            if (sent, logged) == last and sent == logged:
                break
            last = (sent, logged)
            time.sleep(2)
        received = int(page.evaluate("() => window.__dcMessages"))
        gaps = int(book.kernel_json("len(w.events.of_type('log.gap'))"))
        errors = book.kernel_json(
            "__import__('collections').Counter("
            "(r['event'].get('error') or {}).get('code') for r in w.events.of_type('error'))"
        )
        by_type = call.get("events_out_by_type", {})
        status = book.kernel_json("w.status")
        if status != "connected":
            print(f"the call ended early: {book.kernel_json('w.error')}", file=sys.stderr)
            if call.get("ended_at"):
                after = call["ended_at"] - call["created_at"]
                print(f"the emulator ended it ({call.get('end_reason')}) {after:.0f} s in")
            print("the emulator's log (its end):")
            print(*(work / "emulator.log").read_text().splitlines()[-15:], sep="\n  ")
        page.locator(CONNECT).first.click()  # hang up

    print()
    print(
        " min   kernel MB  C heap MB  log MB  page heap MB  DOM nodes  renderers MB  emulator MB"
        "  events  turns"
    )
    for s in samples:
        heap = f"{s.heap_in_use_mb:9.1f}" if s.heap_in_use_mb is not None else "        -"
        print(
            f"{s.t_min:5.1f}  {s.kernel_mb:9.1f}  {heap}  {s.log_mb:6.2f}  {s.heap_mb:12.1f}"
            f"  {s.dom_nodes:9d}  {s.renderers_mb:12.1f}  {s.emulator_mb:11.1f}  {s.logged:6d}"
            f"  {s.turns:5d}"
        )
    kept = [s for s in samples if s.t_min >= warmup - 1e-6]
    xs = [s.t_min for s in kept]

    def slope(field: str) -> float:
        ys = [getattr(s, field) for s in kept]
        if any(y is None for y in ys):
            return math.nan
        return least_squares_slope(xs, ys)

    print(f"\nslopes over the {len(kept)} samples from {warmup:.1f} min on (least squares):")
    results: dict[str, Any] = {}
    for field, name in (
        ("kernel_mb", "kernel RSS"),
        ("heap_in_use_mb", "kernel C heap in use"),
        ("log_mb", "the log's own memory"),
        ("heap_mb", "page JS heap (after GC)"),
        ("renderers_mb", "Chromium renderers RSS"),
        ("emulator_mb", "emulator RSS"),
    ):
        results[f"{field}_per_min"] = slope(field)
        print(f"  {name:26s} {results[f'{field}_per_min']:+7.2f} MB/min")
    results["dom_nodes_per_min"] = slope("dom_nodes")
    results["events_per_min"] = slope("logged")
    print(f"  {'DOM nodes':26s} {results['dom_nodes_per_min']:+7.1f} /min")
    print(
        f"  {'events logged':26s} {results['events_per_min']:+7.1f} /min (the log keeps them all)"
    )
    if results["events_per_min"] > 0:
        per_k = 1000 * results["kernel_mb_per_min"] / results["events_per_min"]
        print(f"  kernel RSS per 1,000 events logged: {per_k:+.2f} MB")
    if results["log_mb_per_min"] > 0:
        ratio = results["kernel_mb_per_min"] / results["log_mb_per_min"]
        results["kernel_to_log"] = ratio
        print(f"  kernel RSS slope / the log's own growth: {ratio:.2f}x")
    if trace_report is not None:
        results["tracemalloc"] = {"snapshots": traced, "report": trace_report}
        print_trace_report(trace_report)
    lost = sent - logged
    results.update(
        sent=sent, logged=logged, received_by_page=received, lost=lost, gaps=gaps, errors=errors
    )
    print(
        f"\nevents: the emulator sent {sent} on the call, the page's data channel received "
        f"{received}, the widget logged {logged} server events: {lost} lost, {gaps} gaps in the "
        f"browser's numbering; call status at the end: {status}"
    )
    responses = by_type.get("response.done", "?")
    speech = by_type.get("input_audio_buffer.speech_started", "?")
    print(
        f"turns: {turns} text turns sent, {speech} speech turns heard, {responses} responses; "
        f"error events by code: {errors or 'none'}"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"samples": [asdict(s) for s in samples], **results}, indent=1)
        )


def print_snapshot(snap: dict[str, Any]) -> None:
    print(
        f"  tracemalloc at {snap['t_min']:.1f} min: {snap['traced'] / 2**20:.1f} MB traced,"
        f" the log {snap['log'] / 2**20:.2f} MB ({snap['events']} events)",
        flush=True,
    )
    for site, diff, size, count in snap["since_prev"][:5]:
        print(
            f"      {diff / 1024:+9.1f} KB  (now {size / 1024:8.1f} KB, {count:+6d} blocks)"
            f"  {short_path(site)}"
        )


def print_trace_report(report: dict[str, Any]) -> None:
    span = report["to_min"] - report["from_min"]
    per_min = 1 / 1024 / span if span > 0 else math.nan
    print(
        f"\ntracemalloc, {report['from_min']:.1f} -> {report['to_min']:.1f} min "
        f"({report['events_diff']} events): Python allocations "
        f"{report['traced_diff'] * per_min:+.1f} KB/min, the log's own memory "
        f"{report['log_diff'] * per_min:+.1f} KB/min"
    )
    print("  growing allocation sites (file:line), KB/min and the size now:")
    for site, diff, size, count in report["rows"]:
        print(
            f"  {diff * per_min:+8.1f} KB/min  {size / 1024:9.1f} KB  {count:+7d} blocks"
            f"  {short_path(site)}"
        )
    print("  the biggest, with their callers (innermost last):")
    for diff, chain in report["chains"]:
        print(f"  {diff * per_min:+8.1f} KB/min")
        for frame in chain:
            print(f"      {short_path(frame)}")


if __name__ == "__main__":
    main()
