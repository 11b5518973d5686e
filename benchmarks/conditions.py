"""What applying a condition costs: each condition on a 10 s clip at 24 kHz (target <= 50 ms),
beside a bare float32 copy of the same clip in the same run.

The clip is espeak-ng speech looped to 10 s. Each condition is applied once to warm up (the
babble bed is built and cached then, and scipy/soxr are imported: reported apart), then
``--repeats`` times; min, p50 and p95 are printed in milliseconds (min is the figure on an
idle core; p95 shows what other processes on the machine took).

    .venv/bin/python benchmarks/conditions.py [--repeats 30]

``--wer`` adds the emulator's ear under conditions: 20 phrases spoken by espeak-ng as
``say(text=...)`` speaks them (voice en-us, 175 wpm, 22,050 Hz), each padded with the silence a
VAD turn carries (300 ms before, 500 ms after), put through each condition (seeded) at that
rate, resampled to 48 kHz with soxr (the rate the emulator's mic track delivers) and handed as
int16 to the emulator's own transcription path for a turn (``_turns.recognize``: faster-whisper
tiny.en, greedy). No peer connection and no Opus codec: the figure is the recognizer's, not the
line's. It prints each condition's word error rate (``experiments.wer``: lower case,
punctuation stripped, numbers not converted) and the median recognizer time per phrase.

    .venv/bin/python benchmarks/conditions.py --wer [--no-timing] [--seeds 3] [--show]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soxr
from scipy.io import wavfile

from _phrases import PHRASES
from realtime_widget._audio import synthesize
from realtime_widget.evaluate._wer import WordErrors, word_errors
from realtime_widget.media._conditions import Condition

RATE = 24_000
SECONDS = 10.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def clip() -> np.ndarray:
    rate, pcm = wavfile.read(
        io.BytesIO(synthesize("What's on the menu tonight? I'd like a table for two."))
    )
    speech = soxr.resample(pcm.astype(np.float32) / 32768, rate, RATE).astype(np.float32)
    n = int(SECONDS * RATE)
    return np.resize(speech, n).astype(np.float32)


def timed(fn: Any, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def timing(repeats: int) -> None:
    x = clip()
    with tempfile.TemporaryDirectory(prefix="rtw-cond-") as tmp:
        noise_file = Path(tmp) / "hum.wav"
        t = np.arange(3 * 16_000) / 16_000
        hum = 0.2 * np.sin(2 * np.pi * 120 * t) + 0.05 * np.random.default_rng(0).standard_normal(
            t.size
        )
        wavfile.write(noise_file, 16_000, (hum * 32767).astype(np.int16))
        conditions = {
            "clean (Condition())": Condition(),
            "white, 10 dB": Condition(noise="white", snr_db=10),
            "pink, 10 dB": Condition(noise="pink", snr_db=10),
            "brown, 10 dB": Condition(noise="brown", snr_db=10),
            "babble, 10 dB": Condition(noise="babble", snr_db=10),
            "file (16 kHz WAV), 10 dB": Condition(noise=noise_file, snr_db=10),
            "telephone": Condition(telephone=True),
            "far: gain -18, pink 20 dB": Condition(gain_db=-18, noise="pink", snr_db=20),
            "babble 10 dB + telephone": Condition(noise="babble", snr_db=10, telephone=True),
        }
        print(f"clip: {SECONDS:g} s at {RATE} Hz ({x.size} samples), {repeats} repeats each\n")
        first: dict[str, float] = {}
        for label, cond in conditions.items():
            first[label] = timed(lambda cond=cond: cond.apply(x, RATE), 1)[0]
        baseline = timed(lambda: np.array(x, dtype=np.float32, copy=True), repeats)
        rows = [("bare float32 copy (baseline)", baseline)]
        for label, cond in conditions.items():
            rows.append((label, timed(lambda cond=cond: cond.apply(x, RATE), repeats)))
        print(
            f"{'condition':32} {'min ms':>8} {'p50 ms':>8} {'p95 ms':>8} {'first ms':>9}  p50 <= 50 ms"
        )
        for label, values in rows:
            p50, p95 = statistics.median(values), pct(values, 95)
            cold = f"{first[label]:9.1f}" if label in first else f"{'':9}"
            verdict = "" if label not in first else ("ok" if p50 <= 50 else "OVER")
            print(f"{label:32} {min(values):8.2f} {p50:8.2f} {p95:8.2f} {cold}  {verdict}")
        print(
            "\nfirst: the first apply() in this process (imports scipy.signal/soxr; babble's builds "
            "the bed from espeak-ng and caches it; a file's is read, resampled and cached)"
        )


# -- the emulator's ear under conditions ------------------------------------------------------

MIC_RATE = 48_000  # the emulator's mic track (WebRTC Opus delivers 48 kHz)
LEAD_MS, TAIL_MS = 300, 500  # a VAD turn's prefix padding and end-of-turn silence
TRANSCRIPTION_MODEL = "inworld/inworld-stt-1"  # the session's setting; the emulator ignores it
EAR_CONDITIONS: dict[str, Condition | None] = {
    "clean": None,
    "pink, 20 dB": Condition(noise="pink", snr_db=20),
    "pink, 10 dB": Condition(noise="pink", snr_db=10),
    "pink, 5 dB": Condition(noise="pink", snr_db=5),
    "babble, 20 dB": Condition(noise="babble", snr_db=20),
    "babble, 10 dB": Condition(noise="babble", snr_db=10),
    "babble, 5 dB": Condition(noise="babble", snr_db=5),
    "telephone": Condition(telephone=True),
    "telephone + babble, 10 dB": Condition(noise="babble", snr_db=10, telephone=True),
}


def spoken(text: str) -> tuple[np.ndarray, int]:
    """``text`` as say(text=...) speaks it, padded as a VAD turn would be: float32, its rate."""
    rate, pcm = wavfile.read(io.BytesIO(synthesize(text)))
    x = pcm.astype(np.float32) / 32768
    lead, tail = np.zeros(rate * LEAD_MS // 1000, np.float32), np.zeros(rate * TAIL_MS // 1000)
    return np.concatenate([lead, x, tail]).astype(np.float32), int(rate)


def as_heard(x: np.ndarray, rate: int, condition: Condition | None, seed: int) -> np.ndarray:
    """The turn's audio as the emulator's recognizer gets it: int16 at the mic's rate."""
    if condition is not None:
        x = Condition.from_dict({**condition.to_dict(), "seed": seed}).apply(x, rate)
    y = soxr.resample(x, rate, MIC_RATE)
    return np.asarray(np.clip(np.round(y * 32767), -32768, 32767), np.int16)


async def hear(pcm: np.ndarray) -> tuple[str, float]:
    """One turn through the emulator's own transcription path; its text and wall time."""
    from realtime_widget.emulator._responder import TranscriptionRequest
    from realtime_widget.emulator._turns import recognize

    request = TranscriptionRequest(pcm, MIC_RATE, TRANSCRIPTION_MODEL, "en", None)
    t0 = time.perf_counter()
    words = await recognize(request, "auto")
    return "".join(words).strip(), time.perf_counter() - t0


async def ear(seeds: int, show: bool) -> None:
    from realtime_widget.emulator import _stt

    model = _stt.resolve_model("auto")
    why = _stt.missing()
    if model is None or why is not None:
        raise SystemExit(f'{why}: pip install "realtime-widget[voice]"')
    t0 = time.perf_counter()
    await asyncio.to_thread(_stt.load, model)  # once, as a running emulator does
    load_s = time.perf_counter() - t0
    clips = [spoken(p) for p in PHRASES]
    for cond in EAR_CONDITIONS.values():  # build the babble bed and import the DSP up front
        if cond is not None:
            cond.apply(clips[0][0], clips[0][1])
    await hear(as_heard(*clips[0], None, 0))  # one warm-up turn, not counted
    audio_s = [len(x) / rate for x, rate in clips]
    print(
        f"\nthe emulator's ear: {len(PHRASES)} phrases (espeak-ng en-us, 175 wpm, median "
        f"{statistics.median(audio_s):.2f} s with padding), seeds 0..{seeds - 1}, "
        f"faster-whisper tiny.en (loaded in {load_s:.2f} s); load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n"
    )
    print(
        f"{'condition':28} {'WER %':>6} {'sub':>4} {'del':>4} {'ins':>4} {'words':>6} "
        f"{'median ms':>10} {'min ms':>7}"
    )
    for label, cond in EAR_CONDITIONS.items():
        total, times, wrong = WordErrors(0, 0, 0, 0), [], []
        draws = seeds if cond is not None and cond.noise_source is not None else 1
        for seed in range(draws):  # without noise there is nothing to draw: one pass
            for phrase, (x, rate) in zip(PHRASES, clips, strict=True):
                text, seconds = await hear(as_heard(x, rate, cond, seed))
                e = word_errors(phrase, text)
                total += e
                times.append(seconds)
                if e.errors:
                    wrong.append((seed, phrase, text))
        print(
            f"{label:28} {100 * total.rate:6.1f} {total.substitutions:4} {total.deletions:4} "
            f"{total.insertions:4} {total.reference_words:6} {1000 * statistics.median(times):10.0f} "
            f"{1000 * min(times):7.0f}"
        )
        if show:
            for seed, phrase, text in wrong:
                print(f"    seed {seed}: {phrase!r} -> {text!r}")
    print(
        "\nWER: (sub + del + ins) / reference words over all phrases and seeds; lower case, "
        "punctuation stripped, numbers NOT converted ('ten' vs '10' is a substitution). "
        "median/min ms: the recognizer's wall time per phrase on this machine (min: the least "
        "contended)."
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=30, help="timing: applies per condition")
    ap.add_argument("--wer", action="store_true", help="add the emulator's ear under conditions")
    ap.add_argument("--no-timing", action="store_true", help="skip the apply() timing section")
    ap.add_argument("--seeds", type=int, default=1, help="--wer: noise draws per condition")
    ap.add_argument("--show", action="store_true", help="--wer: print each misheard phrase")
    args = ap.parse_args()
    if args.seeds < 1:
        ap.error("--seeds must be at least 1")
    if not args.no_timing:
        timing(args.repeats)
    if args.wer:
        asyncio.run(ear(args.seeds, args.show))


if __name__ == "__main__":
    main()
