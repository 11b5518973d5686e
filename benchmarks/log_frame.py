"""EventLog at scale: 100k events to a DataFrame, and the memory it holds.

Prints, in one run: to_pandas() time against a naive baseline (pandas.json_normalize over the
raw dicts), and the log's memory against the events' own JSON size and a list of dicts.

    python benchmarks/log_frame.py [N]
"""

from __future__ import annotations

import gc
import json
import sys
import time
import tracemalloc

import pandas as pd

from realtime_widget import EventLog


def synthetic(n: int) -> list[tuple[str, dict, float, float, int]]:
    """A realistic mix: mostly transcript deltas, with items, responses and stats between."""
    rows = []
    t = 1_764_000_000_000.0
    for i in range(n):
        k = i % 50
        if k == 0:
            ev = {
                "type": "response.created",
                "event_id": f"evt_{i}",
                "response": {"id": f"resp_{i // 50}", "status": "in_progress", "output": []},
            }
        elif k == 49:
            ev = {
                "type": "response.done",
                "event_id": f"evt_{i}",
                "response": {
                    "id": f"resp_{i // 50}",
                    "status": "completed",
                    "usage": {"total_tokens": 120, "input_tokens": 80, "output_tokens": 40},
                },
            }
        elif k == 25:
            ev = {
                "type": "stats",
                "rtt_ms": 0.6,
                "jitter_ms": 1.2,
                "packets_lost": 0,
                "audio_level": 0.12,
            }
        else:
            ev = {
                "type": "response.output_audio_transcript.delta",
                "event_id": f"evt_{i}",
                "response_id": f"resp_{i // 50}",
                "item_id": f"item_{i // 50}",
                "output_index": 0,
                "content_index": 0,
                "delta": "word ",
            }
        direction = "local" if ev["type"] == "stats" else "server"
        rows.append((direction, ev, t + i * 2.5, t + i * 2.5 + 1.5, 1))
    return rows


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def allocated(fn) -> tuple[int, object]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    obj = fn()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, obj


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rows = synthetic(n)
    json_bytes = sum(len(json.dumps(ev, separators=(",", ":"))) for _, ev, *_ in rows)

    log = EventLog()
    t_ingest = timed(lambda: EventLog().extend(rows), repeat=1)
    log._extend(rows)
    t_frame = timed(log.to_pandas)

    records = [
        {"seq": i, "direction": d, "t_ms": t, "t_kernel_ms": tk, "event": ev}
        for i, (d, ev, t, tk, _) in enumerate(rows)
    ]
    t_naive = timed(lambda: pd.json_normalize(records))

    # memory: build each structure from JSON text, as it would arrive, inside the measurement
    texts = [(d, json.dumps(ev), t, tk, c) for d, ev, t, tk, c in rows]
    mem_log, _ = allocated(lambda: _fill(EventLog(), texts))
    mem_dicts, _ = allocated(
        lambda: [
            {"direction": d, "t_ms": t, "t_kernel_ms": tk, "event": json.loads(s)}
            for d, s, t, tk, c in texts
        ]
    )

    print(f"events: {n:,}  (their compact JSON: {json_bytes / 1e6:.1f} MB)")
    print(f"ingest (EventLog.extend):            {t_ingest * 1000:8.0f} ms")
    print(f"to_pandas():                         {t_frame * 1000:8.0f} ms")
    print(
        f"baseline pandas.json_normalize:      {t_naive * 1000:8.0f} ms   -> to_pandas is {t_naive / t_frame:.1f}x faster"
    )
    print(
        f"EventLog memory:                     {mem_log / 1e6:8.1f} MB   = {mem_log / json_bytes:.2f}x the events' JSON"
    )
    print(
        f"baseline list of dicts memory:       {mem_dicts / 1e6:8.1f} MB   = {mem_dicts / json_bytes:.2f}x the events' JSON"
    )


def _fill(log: EventLog, texts: list) -> EventLog:
    log._extend((d, json.loads(s), t, tk, c) for d, s, t, tk, c in texts)
    return log


if __name__ == "__main__":
    main()
