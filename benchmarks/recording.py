"""Scripted audio and recording, measured in JupyterLab + Chromium against the emulator.

Prints, from one run:
- ``say()`` of a 5 s clip: kernel call -> ``say.started`` (the clip's first sample entering the
  mix, on the page's clock), and where the clip's onset lies in the recorded user track
  against ``say.started`` (after the file's own lead-in of silence);
- voice to voice from the recording: the clip's end -> the reply's first sound in the agent
  track, against the emulator's injected delay (``first_delta_delay_ms``: its reply starts
  that long after ``response.created``) plus what the log says the service took to create it;
- a recording of ``--minutes`` (default 10) with the call idle but both tracks live: main-
  thread long tasks (> 50 ms), the kernel's memory for the recording against the raw PCM it
  holds, and chunks lost (gaps on the log clock).

Opens WebRTC connections, so run it in a loopback-only namespace:
    scripts/in-netns .venv/bin/python benchmarks/recording.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import time

from _rig import lab_session, pct

DELAY_MS = 400
SETUP = f"""
import numpy as np, time as _time
from realtime_widget import Emulator, RealtimeWidget

emu = Emulator(first_delta_delay_ms={DELAY_MS}, vad="energy", stt_model="none").start()
w = RealtimeWidget(base_url=emu.base_url, api_key=emu.api_key, mic=False, record=True,
                   instructions="Be brief.")
rate = 24000
t = np.arange(int(5.0 * rate)) / rate
lead_ms = 300.0
tone = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > -0.5)).astype(np.float32)
clip_audio = np.concatenate([np.zeros(int(lead_ms / 1000 * rate), np.float32), tone])
w
"""

OBSERVE_LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longTasks.push({start: e.startTime, ms: e.duration});
}).observe({type: 'longtask', buffered: true});
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long recording")
    parser.add_argument("--clips", type=int, default=5, help="say() clips to time")
    args = parser.parse_args()

    with lab_session([SETUP], init_scripts=[OBSERVE_LONG_TASKS]) as rig:
        page, book = rig.page, rig.book
        page.locator("[data-testid=rtw-connect]").first.click()
        time.sleep(2.0)
        book.poll("w.status == 'connected' and bool(w.server_session)", timeout=30)

        starts, onsets, v2v, injected = [], [], [], []
        for _ in range(args.clips):
            book.kernel_eval("_t_call = _time.time() * 1000; h = w.say((clip_audio, rate)); _h = h")
            time.sleep(8.0)  # the clip (5.3 s), the reply, no polling meanwhile
            row = book.poll(
                "(lambda h, rec: None if h.ended_ms is None or rec is None else {"
                "'start': h.started_ms - _t_call,"
                "'onset': rec.time_of(int(np.argmax(np.abs(rec.user[rec.sample_at(h.started_ms):]) > 0.02))"
                " + rec.sample_at(h.started_ms)) - h.started_ms - lead_ms,"
                "'ended': h.ended_ms})(_h, w.recording)",
                timeout=20,
            )
            starts.append(row["start"])
            onsets.append(row["onset"])
            # the reply to this clip (energy VAD: the tone is speech): its first sound
            reply = book.poll(
                f"(lambda rec, created: None if rec is None or not created else {{"
                f"'first': rec.time_of(int(np.argmax(np.abs(rec.agent[rec.sample_at({row['ended']}):]) > 0.02))"
                f" + rec.sample_at({row['ended']})), 'created': created[0]['t_ms']}})"
                f"(w.recording, [r for r in w.events.of_type('response.created') if r['t_ms'] > {row['ended']}])",
                timeout=20,
            )
            v2v.append(reply["first"] - row["ended"])
            injected.append(reply["created"] - row["ended"] + DELAY_MS)
            book.kernel_eval("w.cancel_response()")
            time.sleep(2.0)

        print(f"say() of a 5 s clip, {args.clips} times:")
        print(
            f"  kernel call -> say.started: p50 {pct(starts, 0.5):.0f} ms, max {max(starts):.0f} ms "
            "(target <= 150 ms)"
        )
        print(
            f"  clip onset in the recorded user track vs say.started: p50 {pct(onsets, 0.5):+.1f} ms,"
            f" worst {max(onsets, key=abs):+.1f} ms (target within 20 ms)"
        )
        diffs = [a - b for a, b in zip(v2v, injected, strict=True)]
        print(
            f"  voice to voice from the recording: p50 {pct(v2v, 0.5):.0f} ms; against the service's"
            f" own time to speak (response.created - clip end + the injected {DELAY_MS} ms): "
            f"p50 {pct(diffs, 0.5):+.1f} ms, worst {max(diffs, key=abs):+.1f} ms (target within 20 ms;"
            " the difference is the network and jitter buffer)"
        )

        # the long recording: the call idle, both tracks live
        book.kernel_eval("import tracemalloc, gc; gc.collect(); tracemalloc.start()")
        t_mark = page.evaluate("() => performance.now()")
        frames0 = book.kernel_json("w.recording.frames if w.recording else 0")
        t0 = time.time()
        while time.time() - t0 < args.minutes * 60:
            time.sleep(min(30.0, args.minutes * 60 - (time.time() - t0)))
            book.kernel_json("w.status")
        out = book.kernel_json(
            "(lambda rec, cur: {'frames': rec.frames, 'rate': rec.sample_rate, 'gaps': rec.gaps,"
            " 'traced': cur, 'status': w.status})(w.recording, tracemalloc.get_traced_memory()[0])"
        )
        long_tasks = [t for t in page.evaluate("() => window.__longTasks") if t["start"] >= t_mark]
        new_frames = out["frames"] - frames0
        raw = new_frames * 2 * 2  # stereo int16
        print(f"recording {args.minutes:g} min (call {out['status']}, {out['rate']} Hz stereo):")
        longest = max((t["ms"] for t in long_tasks), default=0.0)
        print(f"  main-thread long tasks (> 50 ms): {len(long_tasks)}, longest {longest:.0f} ms")
        print(
            f"  kernel memory allocated while recording: {out['traced'] / 1e6:.1f} MB for "
            f"{raw / 1e6:.1f} MB of raw PCM ({out['traced'] / max(raw, 1):.2f}x; target <= 1.2x)"
        )
        print(f"  gaps in the recording (chunks lost): {len(out['gaps'])}")


if __name__ == "__main__":
    main()
