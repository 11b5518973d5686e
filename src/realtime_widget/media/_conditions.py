"""Conditions: a spoken turn's audio as it would reach the service in a real place.

``Condition(noise="babble", snr_db=10)`` adds voices in the background at 10 dB below the
speech; ``Condition(telephone=True)`` passes it through a phone line; ``gain_db`` makes it
quieter or louder. ``apply(samples, sample_rate)`` is the transform itself (float mono in,
float32 out, same rate and length); ``noise(ms, sample_rate)`` is the condition's noise alone.

The chain, in order: noise is added (the room), the gain is applied (the distance to the
microphone), samples are clipped to [-1, 1] (the converter), then the phone line runs. Every
random choice is drawn from the condition's ``seed`` and the clip's own samples, so a clip
comes out the same on every repeat. The DSP is scipy's filters and soxr's resampler (the
``conditions`` extra), imported when first used.
"""

from __future__ import annotations

import math
import os
import warnings
import zlib
from collections.abc import Mapping
from functools import lru_cache
from hashlib import sha256
from pathlib import Path
from typing import Any

from .._audio import array_wav
from ._noise import (
    _active_frames,
    _active_power,
    _babble_bed,
    _colour,
    _decode_av,
    _decode_wav,
    _file_bed,
    _frame_sums,
    _loop,
    _np,
    _resample,
    _signal,
    _unit,
)

__all__ = ["NOISE_COLOURS", "NOMINAL_SPEECH_DBFS", "Condition", "conditioned_clip", "decode_clip"]

NOISE_COLOURS = ("white", "pink", "brown")
NOISE_NAMES = (*NOISE_COLOURS, "babble")
"""The built-in noises a :class:`Condition` can add by name: ``"white"``, ``"pink"``, ``"brown"``
(generated, seeded) and ``"babble"`` (espeak-ng voices talking over each other). Any other
``noise=`` is a path to an audio file or an array of samples."""
# the active level of a clip with no speech in it (and of noise() alone): espeak-ng's voices
# speak at -17..-20 dBFS over their active frames
NOMINAL_SPEECH_DBFS = -20.0
CLIP_WARN_FRACTION = 0.001  # warn when more than this share of the samples hit full scale
PHONE_BAND_HZ = (300.0, 3400.0)
PHONE_RATE = 8000
MU = 255.0
MIN_RATE, MAX_RATE = 8000, 384_000


# -- checks ----------------------------------------------------------------------------------


def _number(field: str, value: Any, lo: float, hi: float, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{field} must be a number of {unit}; got {value!r}")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(
            f"{field} must be a finite number of {unit} in {lo:g}..{hi:g}; got {value!r}"
        )
    return float(value)


def _rate(value: Any, field: str = "sample_rate") -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise TypeError(f"{field} must be a whole number of samples per second; got {value!r}")
    if not MIN_RATE <= value <= MAX_RATE:
        raise ValueError(f"{field} must be {MIN_RATE}..{MAX_RATE} Hz; got {value!r}")
    return int(value)


def _mono(np: Any, samples: Any, field: str) -> Any:
    """``samples`` as a 1-D float32 array (float in [-1, 1], or int16 scaled to it)."""
    a = np.asarray(samples)
    if a.ndim == 2 and 1 in a.shape:
        a = a.reshape(-1)
    if a.ndim != 1:
        raise ValueError(f"{field} must be mono: shape (n,) or (n, 1); got shape {a.shape}")
    if a.dtype.kind == "f":
        out = a.astype(np.float32, copy=True)
        if not np.isfinite(out).all():
            raise ValueError(f"{field} holds NaN or infinite samples")
        return out
    if a.dtype == np.int16:
        return a.astype(np.float32) / 32768.0
    raise TypeError(f"{field} must hold float samples in [-1, 1] (or int16); got {a.dtype}")


def decode_clip(data: bytes, mime: str, what: str = "the clip") -> tuple[Any, int]:
    """Encoded audio (as ``say()`` loads it) as mono float32 samples and their rate."""
    np = _np()
    if mime == "audio/wav":
        return _decode_wav(np, data, what)
    return _decode_av(np, data, what, mime)


def conditioned_clip(condition: Condition | None, data: bytes, mime: str) -> tuple[bytes, str]:
    """A clip's (bytes, mime) under ``condition``.

    Its samples through ``apply()``, as a 16-bit WAV at the clip's own rate; the clip as it was when
    the condition is None.
    """
    if condition is None:
        return data, mime
    if not isinstance(condition, Condition):
        raise TypeError(f"condition must be a Condition (or None); got {type(condition).__name__}")
    samples, rate = decode_clip(data, mime)
    return array_wav(condition.apply(samples, rate), rate), "audio/wav"


# -- measurements ------------------------------------------------------------------------------


def active_level_dbfs(samples: Any, sample_rate: int) -> float | None:
    """The speech level of ``samples`` over its active part, in dBFS.

    The power of a full-scale sine is -3 dBFS here, as RMS. None when nothing in it is active.
    This is the level a condition's SNR is measured against.
    """
    np = _np()
    x = _mono(np, samples, "samples")
    power = _active_power(np, x, _rate(sample_rate))
    return 10 * math.log10(power) if power > 0 else None


# -- the phone line --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _phone_sos() -> Any:
    return _signal().butter(6, PHONE_BAND_HZ, btype="bandpass", fs=PHONE_RATE, output="sos")


@lru_cache(maxsize=1)
def _mu_law_levels() -> Any:
    """The 256 sample values an 8-bit mu-law code decodes to."""
    np = _np()
    y = np.arange(256, dtype=np.float64) / 127.5 - 1.0
    return (np.sign(y) * np.expm1(np.abs(y) * math.log1p(MU)) / MU).astype(np.float32)


def _telephone(np: Any, x: Any, sample_rate: int) -> Any:
    """``x`` through a phone line, at the same rate and length.

    8 kHz (soxr's anti-alias filter removes everything above 4 kHz), band 300-3,400 Hz, 8-bit
    mu-law, and back to ``sample_rate``.
    """
    n = x.size
    if n == 0:
        return x
    line = _resample(np, x, sample_rate, PHONE_RATE)
    if line.size == 0:  # shorter than one sample of the line
        return np.zeros(n, np.float32)
    line = _signal().sosfilt(_phone_sos(), line)
    # mu-law companding to 256 codes (G.711's curve in its continuous form), then decoded
    y = np.log1p(MU * np.minimum(np.abs(line), 1.0)) * (np.sign(line) / math.log1p(MU))
    code = np.rint((y + 1.0) * 127.5).astype(np.intp)
    line = _mu_law_levels()[code]
    out = _resample(np, line, PHONE_RATE, sample_rate)
    if out.size < n:
        out = np.concatenate([out, np.zeros(n - out.size, np.float32)])
    return np.ascontiguousarray(out[:n], dtype=np.float32)


# -- the condition ---------------------------------------------------------------------------

_FIELDS = ("name", "noise", "snr_db", "telephone", "gain_db", "seed")


class Condition:
    """How a spoken turn's audio is heard: background noise at an SNR, a phone line, a gain.

    A condition is an immutable, hashable value. Pass one to ``session.say(..., condition=...)``
    to hear a clip as it would arrive from a noisy room or a phone, or several to
    ``run_script(..., conditions={...})`` to compare the agent across them. The chain runs in
    order: the noise is added (the room), the gain is applied (the distance to the microphone),
    samples are clipped to [-1, 1] (the converter), then the phone line runs. The same clip and
    seed always give the same samples. Applying a condition needs the ``conditions`` extra
    (numpy, scipy, soxr).

    Args:
        noise: ``"white"``, ``"pink"``, ``"brown"`` (generated, seeded), ``"babble"`` (espeak-ng
            voices talking over each other), a path to an audio file (read as ``say()`` reads
            it), or an ``(array, sample_rate)`` / array (at the clip's own rate); each looped or
            cut to the clip. None: no noise.
        snr_db: The speech's power over its active frames (20 ms frames within 40 dB of the
            loudest, above -70 dBFS) against the noise's power over those same frames, in dB
            (-30..100). Needed with ``noise``, and only with it.
        telephone: Band-pass 300-3,400 Hz, 8 kHz, 8-bit mu-law, as a phone line.
        gain_db: Applied after the noise (so it keeps the SNR), in dB (-120..60); samples are
            then clipped to [-1, 1] as a converter would (a warning says when more than 0.1 %
            of them were).
        seed: The noise's draw (a whole number >= 0), together with the clip's own samples.
        name: A label for tables (the ``condition`` column of a grid's rows).

    Raises:
        ValueError: ``noise`` without ``snr_db`` (or ``snr_db`` without ``noise``), a number out
            of its range, a negative ``seed``, an empty ``name``, or an unknown noise name.
        TypeError: A value of the wrong type (``telephone`` not a bool, a number that is not
            one).

    Attributes:
        name: The label given, or None.
        noise_source: What the noise is: a noise name, the file's path, ``"array:<sha256>"``
            for array noise, or None.
        snr_db: The speech-to-noise ratio in dB, or None without noise.
        telephone: Whether the phone line runs.
        gain_db: The gain in dB.
        seed: The noise's seed.

    Example:
        >>> from realtime_widget.media import Condition
        >>> cafe = Condition(noise="babble", snr_db=10, name="cafe")
        >>> phone = Condition(telephone=True, gain_db=-6)
        >>> session.say("I'd like a table for two", condition=cafe)
        >>> runs = session.run_script(
        ...     script, conditions={"quiet": None, "cafe": cafe, "phone": phone}
        ... )
    """

    __slots__ = (
        "_array",
        "_array_rate",
        "_beds",
        "_key",
        "gain_db",
        "name",
        "noise_source",
        "seed",
        "snr_db",
        "telephone",
    )

    name: str | None
    noise_source: str | None
    _array: Any
    _array_rate: int | None
    _beds: dict[int, Any]
    _key: tuple[Any, ...]
    snr_db: float | None
    telephone: bool
    gain_db: float
    seed: int

    def __init__(
        self,
        noise: Any = None,
        snr_db: float | None = None,
        *,
        telephone: bool = False,
        gain_db: float = 0.0,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        array, array_rate, kind = None, None, None
        if noise is None:
            if snr_db is not None:
                raise ValueError("snr_db is the speech-to-noise ratio: it needs noise=...")
        else:
            kind, array, array_rate = _noise_kind(noise)
            if snr_db is None:
                raise ValueError(
                    "noise needs snr_db: the speech's level above the noise in dB (e.g. 10)"
                )
            snr_db = _number("snr_db", snr_db, -30.0, 100.0, "dB")
        if not isinstance(telephone, bool):
            raise TypeError(f"telephone must be True or False; got {telephone!r}")
        gain = _number("gain_db", gain_db, -120.0, 60.0, "dB")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a whole number >= 0; got {seed!r}")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ValueError(f"name must be a non-empty string or None; got {name!r}")
        put = object.__setattr__
        put(self, "name", name)
        put(self, "noise_source", kind)
        put(self, "snr_db", snr_db)
        put(self, "telephone", telephone)
        put(self, "gain_db", gain)
        put(self, "seed", seed)
        put(self, "_array", array)
        put(self, "_array_rate", array_rate)
        put(self, "_beds", {})
        put(self, "_key", (name, kind, array_rate, snr_db, telephone, gain, seed))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a Condition is immutable; make a new one (setting {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("a Condition is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __reduce__(self) -> Any:
        return (_rebuild, (self.to_dict(), self._noise_argument()))

    def __repr__(self) -> str:
        parts = []
        if self.name is not None:
            parts.append(f"name={self.name!r}")
        if self.noise_source is not None:
            if self._array is not None:
                rate = f" at {self._array_rate} Hz" if self._array_rate else ""
                parts.append(f"noise=<array of {self._array.size} samples{rate}>")
            else:
                parts.append(f"noise={self.noise_source!r}")
            parts.append(f"snr_db={self.snr_db:g}")
        if self.telephone:
            parts.append("telephone=True")
        if self.gain_db:
            parts.append(f"gain_db={self.gain_db:g}")
        if self.seed:
            parts.append(f"seed={self.seed}")
        return f"Condition({', '.join(parts)})"

    # -- storage --

    def to_dict(self) -> dict[str, Any]:
        """The condition as JSON-ready values.

        Array noise is stored by its digest (the samples stay out of the JSON): ``from_dict`` then
        needs the array again as ``noise=``.

        Returns:
            A dict of ``name``, ``noise``, ``snr_db``, ``telephone``, ``gain_db`` and ``seed``;
            ``noise`` is the noise name or path, or ``{"array_sha256", "samples",
            "sample_rate"}`` for array noise.

        Example:
            >>> Condition(noise="pink", snr_db=15, name="hiss").to_dict()
            {'name': 'hiss', 'noise': 'pink', 'snr_db': 15.0, 'telephone': False,
             'gain_db': 0.0, 'seed': 0}
        """
        noise: Any = self.noise_source
        if self._array is not None and self.noise_source:
            noise = {
                "array_sha256": self.noise_source.split(":", 1)[1],
                "samples": int(self._array.size),
                "sample_rate": self._array_rate,
            }
        return {
            "name": self.name,
            "noise": noise,
            "snr_db": self.snr_db,
            "telephone": self.telephone,
            "gain_db": self.gain_db,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, noise: Any = None) -> Condition:
        """A condition from ``to_dict()``'s values.

        Args:
            data: A mapping as :meth:`to_dict` returns it (missing fields take their defaults).
            noise: The array (or ``(array, sample_rate)``) of a condition that had array noise,
                checked against the stored digest; only for such a condition.

        Returns:
            The condition, equal to the one stored.

        Raises:
            TypeError: ``data`` is not a mapping.
            ValueError: ``data`` has unknown fields; the stored noise was an array and
                ``noise=`` is missing or is not the same array (its samples or sample rate
                differ); or ``noise=`` was given for a condition without array noise.

        Example:
            >>> c = Condition(noise="babble", snr_db=5, telephone=True)
            >>> Condition.from_dict(c.to_dict()) == c
            True
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"from_dict takes a mapping from to_dict(); got {type(data).__name__}")
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown Condition field(s) {unknown}; the fields are {', '.join(_FIELDS)}"
            )
        stored = data.get("noise")
        if isinstance(stored, Mapping):
            if noise is None:
                raise ValueError(
                    "this condition's noise was an array (sha256 "
                    f"{str(stored.get('array_sha256'))[:16]}…); pass it again: "
                    "Condition.from_dict(data, noise=(array, sample_rate))"
                )
            made = cls(noise, data.get("snr_db"))
            want = f"array:{stored.get('array_sha256')}"
            if made.noise_source != want or made._array_rate != stored.get("sample_rate"):
                raise ValueError(
                    "the noise= array is not the one this condition was stored with "
                    "(its samples or sample rate differ)"
                )
            stored = noise
        elif noise is not None:
            raise ValueError("noise= is only for a stored condition whose noise was an array")
        return cls(
            stored,
            data.get("snr_db"),
            telephone=data.get("telephone", False),
            gain_db=data.get("gain_db", 0.0),
            seed=data.get("seed", 0),
            name=data.get("name"),
        )

    def _noise_argument(self) -> Any:
        if self._array is None:
            return None
        return self._array if self._array_rate is None else (self._array, self._array_rate)

    # -- the transform --

    def apply(self, samples: Any, sample_rate: int) -> Any:
        """``samples`` (mono float in [-1, 1], or int16) under this condition.

        The same clip and seed always give the same samples.

        Args:
            samples: Mono audio: a numpy array of shape (n,) or (n, 1), float in [-1, 1] or int16.
            sample_rate: The samples' rate in Hz (8,000..384,000).

        Returns:
            A float32 numpy array at the same rate and of the same length.

        Raises:
            TypeError: The samples are neither float nor int16, or the rate is not a whole
                number.
            ValueError: The samples are not mono or hold NaN / infinite values, or the rate is
                out of range.

        Example:
            >>> import numpy as np
            >>> t = np.arange(16_000) / 16_000
            >>> tone = 0.1 * np.sin(2 * np.pi * 440 * t)
            >>> heard = Condition(noise="white", snr_db=20).apply(tone, 16_000)
            >>> heard.dtype, heard.shape
            (dtype('float32'), (16000,))
        """
        np = _np()
        rate = _rate(sample_rate)
        x = _mono(np, samples, "samples")
        return self._chain(np, x, rate)

    def noise(self, ms: float, sample_rate: int) -> Any:
        """``ms`` of this condition's noise alone: what :meth:`apply` makes of silence.

        The noise is levelled as it would sound behind speech at the nominal level (-20 dBFS
        active), then goes through the gain and the phone line. Silence when the condition has
        no noise.

        Args:
            ms: How long, in milliseconds (0..3,600,000).
            sample_rate: The rate of the samples returned, in Hz (8,000..384,000).

        Returns:
            A float32 numpy array of ``round(ms * sample_rate / 1000)`` samples.

        Example:
            >>> bed = Condition(noise="babble", snr_db=10).noise(2000, 24_000)
            >>> bed.shape
            (48000,)
        """
        np = _np()
        rate = _rate(sample_rate)
        ms = _number("ms", ms, 0.0, 3_600_000.0, "milliseconds")
        return self._chain(np, np.zeros(round(ms * rate / 1000), np.float32), rate)

    def _chain(self, np: Any, x: Any, rate: int) -> Any:
        if self.noise_source is not None and x.size:
            x = self._add_noise(np, x, rate)
        if self.gain_db:
            x *= np.float32(10 ** (self.gain_db / 20))
        self._clip(np, x)
        if self.telephone:
            x = _telephone(np, x, rate)
            np.clip(x, -1.0, 1.0, out=x)
        return x

    def _clip(self, np: Any, x: Any) -> None:
        over = int(np.count_nonzero(np.abs(x) > 1.0))
        if over:
            np.clip(x, -1.0, 1.0, out=x)
            if over > CLIP_WARN_FRACTION * x.size:
                warnings.warn(
                    f"{over / x.size:.1%} of the samples clipped at full scale under {self!r}: "
                    "lower gain_db (or raise snr_db)",
                    RuntimeWarning,
                    stacklevel=4,
                )

    def _add_noise(self, np: Any, x: Any, rate: int) -> Any:
        n = x.size
        rng = np.random.default_rng([self.seed, zlib.crc32(x.tobytes()), n, rate])
        bed = self._noise_samples(np, n, rate, rng)
        sums, counts = _frame_sums(np, x, rate)
        active = _active_frames(np, sums, counts)
        snr = 10 ** ((self.snr_db or 0.0) / 10)
        if active.any():
            speech = float(sums[active].sum() / counts[active].sum())
            noise_sums, _ = _frame_sums(np, bed, rate)
            noise = float(noise_sums[active].sum() / counts[active].sum())
        else:  # nothing spoken: the noise sits where it would behind nominal speech
            speech = 10 ** (NOMINAL_SPEECH_DBFS / 10)
            noise = float(np.mean(bed.astype(np.float64) ** 2))
        if noise <= 0:
            return x
        return x + bed * np.float32(math.sqrt(speech / (noise * snr)))

    def _noise_samples(self, np: Any, n: int, rate: int, rng: Any) -> Any:
        kind = self.noise_source or ""
        if kind in NOISE_COLOURS:
            return _colour(np, kind, n, rng)
        if kind == "babble":
            bed = _babble_bed(rate)
        elif self._array is not None:
            bed = self._array
            if self._array_rate is not None and self._array_rate != rate:
                bed = self._beds.get(rate)
                if bed is None:  # resampled once per rate
                    bed = _unit(np, _resample(np, self._array, self._array_rate, rate), "noise")
                    self._beds[rate] = bed
        else:
            stat = _stat(kind)
            bed = _file_bed(kind, stat.st_mtime_ns, stat.st_size, rate)
        return _loop(np, bed, n, int(rng.integers(bed.size)))


def _stat(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError as exc:
        raise FileNotFoundError(f"the noise file {path!r} is gone: {exc.strerror}") from None


def _noise_kind(noise: Any) -> tuple[str, Any, int | None]:
    """(what ``noise`` is, as the ``noise`` attribute holds it; the array; its rate)."""
    allowed = (
        'noise must be "white", "pink", "brown", "babble", a path to an audio file, or an '
        "(array, sample_rate) / array"
    )
    if isinstance(noise, str) and noise.strip().lower() in NOISE_NAMES:
        return noise.strip().lower(), None, None
    if isinstance(noise, str | os.PathLike):
        path = Path(noise)
        if not path.is_file():
            raise ValueError(f"{allowed}; got {str(noise)!r}, which is neither a name nor a file")
        return str(path), None, None
    array, rate = noise, None
    if isinstance(noise, tuple) and len(noise) == 2:
        array, rate = noise
        rate = _rate(rate, "the noise array's sample rate")
    if not hasattr(array, "__array__") and not isinstance(array, list):
        raise TypeError(f"{allowed}; got {type(noise).__name__}")
    np = _np()
    a = _mono(np, array, "the noise array")
    if a.size == 0 or not np.any(a):
        raise ValueError("the noise array is empty or silent: it needs some signal to scale")
    a.setflags(write=False)
    digest = sha256(a.tobytes()).hexdigest()
    return f"array:{digest}", a, rate


def _rebuild(data: dict[str, Any], noise: Any) -> Condition:
    return Condition.from_dict(data, noise=noise)


def conditions_from(stored: Any) -> dict[str, Any]:
    """A grid's conditions back from its manifest.

    The manifest holds name -> ``to_dict()``, or None for the audio as recorded. A condition
    whose noise was an array cannot be rebuilt without it: it stays as its stored dict.
    """
    out: dict[str, Any] = {}
    for name, data in (stored or {}).items():
        try:
            out[name] = Condition.from_dict(data) if data is not None else None
        except (TypeError, ValueError, FileNotFoundError):
            out[name] = data  # array noise, or a noise file that is gone
    return out


def check_conditions(conditions: Any) -> dict[str, Condition | None]:
    """A grid's ``conditions=`` checked: a dict of name -> Condition (None: the audio as it is).

    Empty for None: the grid has no condition axis.
    """
    if conditions is None:
        return {}
    example = '{"clean": None, "cafe": Condition(noise="babble", snr_db=10)}'
    if not isinstance(conditions, Mapping) or not conditions:
        raise TypeError(f"conditions must be a dict of name -> Condition or None, e.g. {example}")
    out: dict[str, Condition | None] = {}
    for name, condition in conditions.items():
        if not isinstance(name, str) or not name.strip():
            raise TypeError(f"a condition's name is a non-empty string; got {name!r}")
        if condition is not None and not isinstance(condition, Condition):
            raise TypeError(
                f"condition {name!r} must be a Condition or None; got {type(condition).__name__}"
            )
        out[name] = condition
    return out
