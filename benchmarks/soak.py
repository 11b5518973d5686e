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
- events: logged by the widget, and data-channel messages the page received.

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
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
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


def widget_cell(base_url: str) -> str:
    return f"""
import os
from realtime_widget import RealtimeWidget

w = RealtimeWidget(base_url={base_url!r}, api_key={API_KEY!r}, instructions="Be brief.")
kernel_pid = os.getpid()
w
"""


@contextmanager
def emulator_process(log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The emulator as its own process on 127.0.0.1 (stopped by its PID on exit)."""
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
    args = parser.parse_args()
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
        emulator_process(work / "emulator.log") as (base_url, emulator),
        lab_session(
            [widget_cell(base_url)],
            chromium_args=chromium_args,
            init_scripts=[COUNT_CHANNEL_MESSAGES],
            prefix="rtw-soak-",
        ) as rig,
    ):
        page, book = rig.page, rig.book
        kernel_pid = int(book.kernel_json("kernel_pid"))
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
            logged, status = book.kernel_json("[len(w.events), w.status]")
            return Sample(
                t_min=(time.monotonic() - t0) / 60,
                kernel_mb=rss_mb(kernel_pid),
                heap_mb=metrics["JSHeapUsedSize"] / 2**20,
                dom_nodes=int(metrics["Nodes"]),
                renderers_mb=renderers,
                emulator_mb=rss_mb(emulator.pid),
                logged=int(logged),
                channel_msgs=int(page.evaluate("() => window.__dcMessages")),
                turns=turns,
                status=str(status),
            )

        page.locator(CONNECT).first.click()
        book.poll("w.status == 'connected'", timeout=30)
        print(f"soak: {args.minutes:g} min, a text turn every {args.turn_every:g} s, mic: {mic}")

        samples: list[Sample] = []
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        next_turn, next_sample, turns = t0 + args.turn_every, t0, 0
        while True:
            now = time.monotonic()
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
            time.sleep(max(0.0, min(next_turn, next_sample, end) - time.monotonic()))

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
        page.locator(CONNECT).first.click()  # hang up

    print()
    print(" min   kernel MB  page heap MB  DOM nodes  renderers MB  emulator MB  events  turns")
    for s in samples:
        print(
            f"{s.t_min:5.1f}  {s.kernel_mb:9.1f}  {s.heap_mb:12.1f}  {s.dom_nodes:9d}"
            f"  {s.renderers_mb:12.1f}  {s.emulator_mb:11.1f}  {s.logged:6d}  {s.turns:5d}"
        )
    kept = [s for s in samples if s.t_min >= warmup - 1e-6]
    xs = [s.t_min for s in kept]

    def slope(field: str) -> float:
        return least_squares_slope(xs, [getattr(s, field) for s in kept])

    print(f"\nslopes over the {len(kept)} samples from {warmup:.1f} min on (least squares):")
    results: dict[str, Any] = {}
    for field, name in (
        ("kernel_mb", "kernel RSS"),
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


if __name__ == "__main__":
    main()
