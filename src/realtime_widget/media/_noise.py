"""The noise a condition adds.

Generated colours, a babble of espeak-ng voices, the user's own file or array, each looped to a
clip's length; and the decoding and resampling they need. ``conditions.py`` scales and mixes them
(see ``Condition``).
"""

from __future__ import annotations

import io
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

from .._audio import load_source, wav_info
from .._extras import require

FRAME_MS = 20  # the frames the active part of the speech is found in
ACTIVE_BELOW_PEAK_DB = 40.0  # a frame is active within this many dB of the loudest frame...
ACTIVE_FLOOR_DBFS = -70.0  # ...and above this absolute level


def _np() -> Any:
    return require("numpy", "conditions", "Condition")


def _signal() -> Any:
    return require("scipy.signal", "conditions", "Condition", "scipy")


def _soxr() -> Any:
    return require("soxr", "conditions", "Condition")


# -- noise beds ------------------------------------------------------------------------------


def _colour(np: Any, colour: str, n: int, rng: Any) -> Any:
    """``n`` samples of seeded, unit-RMS noise of a colour.

    The power falls as 1/f^0 (white), 1/f (pink) or 1/f^2 (brown): Gaussian noise, shaped in the
    frequency domain for pink and brown.
    """
    if n == 0:
        return np.zeros(0, np.float32)
    if colour == "white":
        out = rng.standard_normal(n, dtype=np.float32)
    else:
        fft = require("scipy.fft", "conditions", "Condition", "scipy")

        # a Gaussian spectrum is white noise's spectrum: one inverse transform, not two
        bins = n // 2 + 1
        spectrum = np.empty(bins, np.complex64)
        spectrum.real = rng.standard_normal(bins, dtype=np.float32)
        spectrum.imag = rng.standard_normal(bins, dtype=np.float32)
        spectrum *= _slope(colour, n)
        out = fft.irfft(spectrum, n)
    rms = float(np.sqrt(np.mean(np.square(out, dtype=np.float64))))
    return out / np.float32(rms) if rms > 0 else out


@lru_cache(maxsize=8)
def _slope(colour: str, n: int) -> Any:
    """The amplitude of each frequency bin for pink (1/sqrt(f)) or brown (1/f) noise."""
    np = _np()
    bins = np.arange(n // 2 + 1, dtype=np.float32)
    # below ~1/1000 of the band the slope stops: a brown walk must not drift off as DC
    knee = max(1, bins.size // 1000)
    bins[:knee] = knee
    slope = bins ** np.float32(-0.5 if colour == "pink" else -1.0)
    slope[0] = 0.0
    slope.setflags(write=False)
    return slope


_BABBLE_VOICES = (
    ("en-us+m3", 165),
    ("en-gb+f2", 180),
    ("en-us+f4", 170),
    ("en-gb-scotland+m1", 160),
    ("en-029+f1", 175),
    ("en-us+m7", 185),
    ("en-gb-x-rp+f5", 168),
)
_BABBLE_LINES = (
    "Did you see the game last night? I could not believe the second half.",
    "We are thinking of going to the coast in August, if the weather holds.",
    "She told me the new place on the corner does a very good breakfast.",
    "Honestly, the train was late again, so I missed the first meeting.",
    "Can you pass me the menu? I think I will have the soup today.",
    "My brother just moved into a flat with two cats and a balcony.",
    "The report is due on Friday, but nobody has started on the figures.",
    "They say it might snow this weekend, which would be a first in years.",
    "I ordered the blue one, but they sent me a green one instead.",
    "Let us meet at half past six by the fountain in the square.",
    "He has been learning the piano for a year and he is getting good.",
    "Are you coming to the party on Saturday? Bring something to drink.",
    "The kids want pizza again, so I suppose that settles dinner.",
    "Our neighbours are building an extension and the noise never stops.",
)
_BABBLE_SECONDS = 16.0
_babble_lock = threading.Lock()
_babble_beds: dict[int, Any] = {}


def _babble_bed(sample_rate: int) -> Any:
    """The babble bed at ``sample_rate``.

    Seven espeak-ng voices, each speaking two different sentences, levelled to the same active
    loudness, each looped from its own start point and mixed, unit RMS. Built once per process (then
    resampled once per rate) and cached.
    """
    np = _np()
    with _babble_lock:
        bed = _babble_beds.get(sample_rate)
        if bed is not None:
            return bed
        base = _babble_beds.get(0)
        if base is None:
            base = _build_babble(np)
            _babble_beds[0] = base
        rate, mix = base
        bed = mix if rate == sample_rate else _resample(np, mix, rate, sample_rate)
        bed = bed / float(np.sqrt(np.mean(bed.astype(np.float64) ** 2)))
        bed.setflags(write=False)
        _babble_beds[sample_rate] = bed
        return bed


def _build_babble(np: Any) -> tuple[int, Any]:
    from .._audio import synthesize

    def speak(index: int) -> tuple[Any, int]:
        voice, wpm = _BABBLE_VOICES[index]
        lines = (
            _BABBLE_LINES[2 * index % len(_BABBLE_LINES)],
            _BABBLE_LINES[(2 * index + 1) % len(_BABBLE_LINES)],
        )
        try:
            wav = synthesize(" ".join(lines), voice=voice, wpm=wpm)
        except (ImportError, RuntimeError) as exc:
            raise type(exc)(f'noise="babble" is spoken by espeak-ng, which failed: {exc}') from None
        return _decode_wav(np, wav, "the babble voice")

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        voices = list(pool.map(speak, range(len(_BABBLE_VOICES))))
    rate = voices[0][1]
    length = int(_BABBLE_SECONDS * rate)
    mix = np.zeros(length, np.float64)
    for index, (samples, voice_rate) in enumerate(voices):
        if voice_rate != rate:
            samples = _resample(np, samples, voice_rate, rate)
        level = _active_power(np, samples, rate)
        track = samples.astype(np.float64) / math.sqrt(level or 1.0)
        # each voice starts at its own point of the loop, so pauses do not line up
        start = (index * length) // len(voices)
        mix += np.roll(_loop(np, track, length, 0), start)
    return rate, mix.astype(np.float32)


def _decode_wav(np: Any, data: bytes, where: str) -> tuple[Any, int]:
    """A WAV file's samples as mono float32 (channels averaged) and its rate."""
    wavfile = require("scipy.io.wavfile", "conditions", "Condition", "scipy")

    if wav_info(data) is None:
        raise ValueError(f"{where} is not a WAV file scipy can read: no format and data chunks")
    try:
        rate, a = wavfile.read(io.BytesIO(data))
    except (ValueError, EOFError, UnboundLocalError) as exc:  # scipy's parser raises all three
        raise ValueError(f"{where} is not a WAV file scipy can read: {exc}") from None
    a = np.asarray(a)
    if a.dtype == np.uint8:
        a = (a.astype(np.float32) - 128.0) / 128.0
    elif a.dtype.kind == "i":
        a = a.astype(np.float32) / float(2 ** (8 * a.dtype.itemsize - 1))
    a = a.astype(np.float32)
    if a.ndim == 2:
        a = a.mean(axis=1, dtype=np.float32)
    return a, int(rate)


def _decode_file(np: Any, path: str) -> tuple[Any, int]:
    data, mime, _ = load_source(path, text=None, sample_rate=None, voice="", wpm=175)
    if mime == "audio/wav":
        samples, rate = _decode_wav(np, data, f"the noise file {path!r}")
    else:
        samples, rate = _decode_av(np, data, f"the noise file {path!r}", mime)
    if samples.size == 0:
        raise ValueError(f"the noise file {path!r} holds no samples")
    return samples, rate


def _decode_av(np: Any, data: bytes, what: str, mime: str) -> tuple[Any, int]:
    try:
        import av
    except ImportError:
        raise ImportError(
            f"{what} is {mime}; without PyAV only WAV files can be read: "
            'pip install "realtime-widget[emulator]" (or: pip install av), or convert it to WAV'
        ) from None
    errors = (getattr(av, "FFmpegError", OSError), IndexError, ValueError)
    try:
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.audio[0]
            rate = int(stream.rate)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks: list[Any] = []
            for frame in container.decode(stream):
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    except errors as exc:
        raise ValueError(f"{what} could not be decoded: {exc}") from None
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)).astype(np.float32), rate


@lru_cache(maxsize=16)
def _file_bed(path: str, mtime_ns: int, size: int, sample_rate: int) -> Any:
    """A noise file at ``sample_rate``, unit RMS (keyed on its time and size, so an edit shows)."""
    np = _np()
    samples, rate = _decode_file(np, path)
    if rate != sample_rate:
        samples = _resample(np, samples, rate, sample_rate)
    return _unit(np, samples, f"the noise file {path!r}")


def _unit(np: Any, samples: Any, what: str) -> Any:
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0.0
    if rms == 0.0:
        raise ValueError(f"{what} is silent: noise needs some signal to scale to the SNR")
    out = (samples / rms).astype(np.float32)
    out.setflags(write=False)
    return out


def _loop(np: Any, bed: Any, n: int, start: int) -> Any:
    """``n`` samples of ``bed`` from ``start``, wrapping round as often as needed."""
    if n == 0:
        return bed[:0]
    idx = (np.arange(n) + start) % bed.size if n + start > bed.size else slice(start, start + n)
    return bed[idx]


def _resample(np: Any, samples: Any, rate_in: int, rate_out: int) -> Any:
    if rate_in == rate_out or samples.size == 0:
        return samples
    return _soxr().resample(samples.astype(np.float32), rate_in, rate_out, quality="HQ")


# -- levels (the speech's active part, which the SNR is measured over) --------------------


def _frame_sums(np: Any, samples: Any, sample_rate: int) -> tuple[Any, Any]:
    """The sum of squares and the sample count of each ``FRAME_MS`` frame (the last partial)."""
    size = max(1, sample_rate * FRAME_MS // 1000)
    squares = np.square(samples, dtype=np.float32)
    full = samples.size // size
    sums = squares[: full * size].reshape(full, size).sum(axis=1, dtype=np.float64)
    counts = np.full(full, size, np.int64)
    if samples.size > full * size:
        sums = np.append(sums, squares[full * size :].sum(dtype=np.float64))
        counts = np.append(counts, samples.size - full * size)
    return sums, counts


def _active_frames(np: Any, sums: Any, counts: Any) -> Any:
    """Frames within ``ACTIVE_BELOW_PEAK_DB`` of the loudest and above ``ACTIVE_FLOOR_DBFS``."""
    power = sums / np.maximum(counts, 1)
    if power.size == 0:
        return power > 0
    floor = max(
        float(power.max()) * 10 ** (-ACTIVE_BELOW_PEAK_DB / 10), 10 ** (ACTIVE_FLOOR_DBFS / 10)
    )
    return power >= floor


def _active_power(np: Any, samples: Any, sample_rate: int) -> float:
    sums, counts = _frame_sums(np, samples, sample_rate)
    active = _active_frames(np, sums, counts)
    return float(sums[active].sum() / counts[active].sum()) if active.any() else 0.0
