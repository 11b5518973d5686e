"""Tracing on vs off, side by side in one run (target: on <= 1.05x off).

1. Event delivery: records/s through a session's log (its scrubber, columns) and its port's
   listeners, one record at a time as a call delivers them, a realistic mix (mostly transcript
   and audio deltas, a response every 50 records, a tool call every 200). "on" has the session's
   live trace attached with the SDK configured (a BatchSpanProcessor, in-memory exporter).
2. The headless tool hop: a RealtimeSession on the emulator calls a Python tool; the kernel's hop
   (arguments received -> function_call_output sent, less the function's own time: the log's
   ``tool_hop_ms``) with tracing off and on, the two sessions taking turns.

    scripts/in-netns .venv/bin/python benchmarks/tracing.py [records] [tool_calls]
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

from realtime_widget import EventLog, RealtimeSession  # noqa: E402
from realtime_widget._otel import attach  # noqa: E402
from realtime_widget._secrets import Scrubber  # noqa: E402
from realtime_widget._turns import TurnTracker  # noqa: E402


def sdk() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, exporter


def mix(n: int) -> list[tuple[str, dict[str, Any]]]:
    rows: list[tuple[str, dict[str, Any]]] = [("local", {"type": "call.start", "call": 1})]
    for i in range(n):
        k, rid = i % 50, f"resp_{i // 50}"
        if k == 0:
            rows.append(("client", {"type": "response.create"}))
            rows.append(("server", {"type": "response.created", "event_id": f"e{i}",
                                    "response": {"id": rid, "status": "in_progress"}}))  # fmt: skip
        elif k == 49:
            rows.append(("server", {"type": "response.done", "event_id": f"e{i}", "response": {
                "id": rid, "status": "completed",
                "usage": {"input_tokens": 80, "output_tokens": 40}}}))  # fmt: skip
            if i % 200 == 199:
                cid = f"call_{i}"
                rows.append(("local", {"type": "tool.started", "call_id": cid, "name": "f",
                                       "arguments": "{}", "response_id": rid}))  # fmt: skip
                rows.append(("local", {"type": "tool.finished", "call_id": cid, "name": "f",
                                       "status": "ok", "duration_ms": 0.1}))  # fmt: skip
        elif k % 3 == 0:
            rows.append(("server", {"type": "response.output_audio.delta", "event_id": f"e{i}",
                                    "response_id": rid, "item_id": f"item_{i // 50}",
                                    "delta_bytes": 4800}))  # fmt: skip
        else:
            rows.append(("server", {"type": "response.output_audio_transcript.delta",
                                    "event_id": f"e{i}", "response_id": rid,
                                    "item_id": f"item_{i // 50}", "output_index": 0,
                                    "content_index": 0, "delta": "word "}))  # fmt: skip
    return rows


def deliver(rows: list[tuple[str, dict[str, Any]]], traced: bool) -> float:
    """Records/s: each appended to a scrubbed log and published to a turn tracker (the port's
    listeners), as the inbox does; with the session's live trace attached when ``traced``."""
    scrub = Scrubber(lambda: ["sk-not-a-real-key-0123456789"])
    log = EventLog(scrub=scrub.json_text)
    provider, _ = sdk()
    tracing = attach(log, True, provider, None, scrub.text) if traced else None
    tracker = TurnTracker(keep_all=False)
    t = 1_764_000_000_000.0
    start = time.perf_counter()
    for i, (direction, event) in enumerate(rows):
        now = t + i
        log._append(direction, event, t_ms=now, t_kernel_ms=now, call_number=1)
        tracker.feed(1, direction, event, now)
    took = time.perf_counter() - start
    if tracing is not None:
        tracing.close()
    provider.shutdown()
    return len(rows) / took


async def tool_hops(calls: int) -> tuple[list[float], list[float]]:
    from realtime_widget.emulator import Emulator
    from tests.headless.conftest import FAST

    provider, exporter = sdk()
    hops: dict[bool, list[float]] = {False: [], True: []}
    with Emulator(**FAST) as emu:
        sessions = {
            traced: RealtimeSession(
                base_url=emu.base_url,
                api_key=emu.api_key,
                mic=False,
                tracing=traced,
                tracer_provider=provider if traced else None,
            )
            for traced in (False, True)
        }
        for s in sessions.values():

            @s.tool
            def get_weather(city: str) -> str:
                """The weather in a city."""
                return f"sunny in {city}"

            await s.connect()
        for _ in range(calls):
            for s in sessions.values():
                done = len(s.events.of_type("response.done"))
                await s.ask("use get weather for Paris")
                while len(s.events.of_type("response.done")) < done + 2:
                    await asyncio.sleep(0.005)
        for traced, s in sessions.items():
            hops[traced] = [float(h) for h in s.events.turns()["tool_hop_ms"].dropna()]
            await s.aclose()
    provider.force_flush()
    spans = len(exporter.get_finished_spans())
    provider.shutdown()
    print(f"(the traced session made {spans} spans)")
    return hops[False], hops[True]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    rows = mix(n)
    # The input (n event dicts) is the benchmark's, not a session's (whose log keeps JSON
    # bytes): out of the collector's way, so neither side pays for scanning it.
    gc.collect()
    gc.freeze()
    deliver(rows[:2000], False), deliver(rows[:2000], True)  # warm up
    off: list[float] = []
    on: list[float] = []
    for _ in range(5):  # interleaved, so drift on a shared machine hits both
        off.append(deliver(rows, False))
        on.append(deliver(rows, True))
    a, b = statistics.median(off), statistics.median(on)
    print(f"event delivery, {len(rows)} records x5: off {a:,.0f} rec/s, on {b:,.0f} rec/s; "
          f"time on/off {a / b:.3f}x")  # fmt: skip
    hop_off, hop_on = asyncio.run(tool_hops(calls))
    p_off, p_on = statistics.median(hop_off), statistics.median(hop_on)
    print(f"headless tool hop, {len(hop_off)} / {len(hop_on)} calls: off p50 {p_off:.3f} ms, "
          f"on p50 {p_on:.3f} ms; on/off {p_on / p_off:.3f}x")  # fmt: skip


if __name__ == "__main__":
    main()
