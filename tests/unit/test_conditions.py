"""Conditions: noise at an SNR, the phone line, gain, seeding, storage and bad input."""

from __future__ import annotations

import io
import json
import math
import pickle
import shutil
import warnings
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
signal = pytest.importorskip("scipy.signal")
wavfile = pytest.importorskip("scipy.io.wavfile")
soxr = pytest.importorskip("soxr")

from realtime_widget.media._conditions import (  # noqa: E402
    NOMINAL_SPEECH_DBFS,
    Condition,
    _babble_bed,
    active_level_dbfs,
)

RATE = 24_000
HAS_ESPEAK = shutil.which("espeak-ng") is not None or (
    __import__("importlib").util.find_spec("espeakng_loader") is not None
)
needs_espeak = pytest.mark.skipif(not HAS_ESPEAK, reason="babble and speech need espeak-ng")


def db(power: float) -> float:
    return 10 * math.log10(power)


def bursts(rate: int = RATE) -> tuple[np.ndarray, np.ndarray]:
    """Speech-like bursts (a vowel's harmonics, 0.4 s on / 0.4 s off, three times) and the mask
    of the samples where they sound: the active part is known exactly."""
    t = np.arange(int(2.4 * rate)) / rate
    voice = sum(0.2 / k * np.sin(2 * np.pi * 140 * k * t) for k in range(1, 12))
    on = (t % 0.8) < 0.4
    return (voice * on).astype(np.float32), on


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    if not HAS_ESPEAK:
        pytest.skip("needs espeak-ng")
    from realtime_widget._audio import synthesize

    rate, pcm = wavfile.read(io.BytesIO(synthesize("I'd like a table for two people, at eight.")))
    return soxr.resample(pcm.astype(np.float32) / 32768, rate, RATE).astype(np.float32)


def measured_snr(clean: np.ndarray, noisy: np.ndarray, mask: np.ndarray) -> float:
    noise = noisy.astype(np.float64) - clean
    return db(np.mean(clean[mask].astype(np.float64) ** 2) / np.mean(noise[mask] ** 2))


def speech_mask(x: np.ndarray, rate: int, frame_ms: int = 10, below_db: float = 40) -> np.ndarray:
    """The test's own active-speech estimate (finer frames than the condition's)."""
    size = rate * frame_ms // 1000
    full = x.size // size * size
    power = (x[:full].astype(np.float64) ** 2).reshape(-1, size).mean(axis=1)
    frames = power >= power.max() * 10 ** (-below_db / 10)
    mask = np.zeros(x.size, bool)
    mask[:full] = np.repeat(frames, size)
    return mask


def band_power(x: np.ndarray, rate: int, lo: float, hi: float) -> float:
    f, p = signal.welch(x.astype(np.float64), fs=rate, nperseg=4096)
    return float(p[(f >= lo) & (f < hi)].sum())


# -- additive noise at an SNR ------------------------------------------------------------------


@pytest.mark.parametrize(
    "noise", ["white", "pink", "brown", pytest.param("babble", marks=needs_espeak)]
)
@pytest.mark.parametrize("snr_db", [20, 10, 0])
def test_snr_over_the_active_part_is_the_target(noise: str, snr_db: float) -> None:
    clean, on = bursts()
    out = Condition(noise=noise, snr_db=snr_db).apply(clean, RATE)
    assert abs(measured_snr(clean, out, on) - snr_db) < 0.5
    # the noise also fills the pauses: it is a bed, not gated with the speech
    assert np.mean((out[~on] - clean[~on]) ** 2) > 0.2 * np.mean((out[on] - clean[on]) ** 2)


@needs_espeak
@pytest.mark.parametrize("noise", ["white", "pink", "brown", "babble"])
def test_snr_on_real_speech_by_an_independent_estimate(noise: str, speech: np.ndarray) -> None:
    out = Condition(noise=noise, snr_db=10, seed=3).apply(speech, RATE)
    assert abs(measured_snr(speech, out, speech_mask(speech, RATE)) - 10) < 0.5


@pytest.mark.parametrize(("noise", "slope_db"), [("white", 0), ("pink", -9), ("brown", -18)])
def test_colours_have_their_spectral_slope(noise: str, slope_db: float) -> None:
    rate = 16_000
    n = Condition(noise=noise, snr_db=0).noise(20_000, rate)
    # density per Hz, 250-500 Hz against 2-4 kHz: three octaves apart
    low = band_power(n, rate, 250, 500) / 250
    high = band_power(n, rate, 2000, 4000) / 2000
    assert abs(db(high / low) - slope_db) < 2.0


@needs_espeak
def test_babble_is_several_voices_cached_and_continuous() -> None:
    bed = _babble_bed(RATE)
    assert _babble_bed(RATE) is bed  # built once, then cached
    assert not bed.flags.writeable
    assert bed.size >= 10 * RATE
    # one voice leaves silent gaps between words; several talking over each other do not
    size = RATE // 50
    power = (bed[: bed.size // size * size].astype(np.float64) ** 2).reshape(-1, size).mean(1)
    assert np.mean(power < np.median(power) * 0.01) < 0.02
    # and it is speech: most of its energy in the voice band
    assert band_power(bed, RATE, 100, 4000) > 0.8 * band_power(bed, RATE, 0, RATE / 2)


def test_noise_alone_is_at_the_nominal_speech_level_less_the_snr() -> None:
    cond = Condition(noise="white", snr_db=15)
    n = cond.noise(3000, RATE)
    assert n.dtype == np.float32 and n.shape == (3 * RATE,)
    assert abs(db(np.mean(n.astype(np.float64) ** 2)) - (NOMINAL_SPEECH_DBFS - 15)) < 0.2
    # what apply() makes of silence
    assert np.array_equal(cond.apply(np.zeros(n.size, np.float32), RATE), n)
    assert cond.noise(0, RATE).shape == (0,)
    assert not np.any(Condition(gain_db=-3).noise(500, RATE))


# -- the phone line ----------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [16_000, 24_000, 44_100, 48_000])
def test_telephone_leaves_no_energy_above_4_khz(rate: int) -> None:
    x = (np.random.default_rng(1).standard_normal(4 * rate) * 0.1).astype(np.float32)
    out = Condition(telephone=True).apply(x, rate)
    assert out.shape == x.shape and out.dtype == np.float32
    band = band_power(out, rate, 300, 3400)
    assert db(band_power(out, rate, 4000, rate / 2) / band) < -50
    assert db(band_power(out, rate, 0, 120) / band) < -25  # the low cut too
    # the input had as much above 4 kHz as in the band: the line removed it
    assert db(band_power(x, rate, 4000, rate / 2) / band_power(x, rate, 300, 3400)) > 0


def test_telephone_is_8_bit_mu_law() -> None:
    t = np.arange(2 * RATE) / RATE
    hz = 1037  # not a divisor of 8 kHz, so the quantization error is noise, not a pattern
    # 8-bit mu-law: about 38 dB of signal-to-quantization noise, kept for quiet speech too (a
    # linear 8-bit line would give ~10 dB at -40 dBFS); no codec at all would give far more
    for level in (0.5, 0.01):
        tone = (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)
        out = Condition(telephone=True).apply(tone, RATE).astype(np.float64)[RATE // 4 :]
        tt = t[RATE // 4 :]
        basis = np.stack([np.sin(2 * np.pi * hz * tt), np.cos(2 * np.pi * hz * tt)], 1)
        fit = basis @ np.linalg.lstsq(basis, out, rcond=None)[0]
        ratio = db(np.mean((out - fit) ** 2) / np.mean(fit**2))
        assert -42 < ratio < -30, (level, ratio)


def test_telephone_at_8_khz_and_with_noise() -> None:
    clean, _ = bursts(8000)
    out = Condition(noise="pink", snr_db=10, telephone=True).apply(clean, 8000)
    assert out.shape == clean.shape and np.all(np.abs(out) <= 1)


# -- gain and clipping -------------------------------------------------------------------------


def test_gain_scales_and_keeps_the_snr() -> None:
    clean, on = bursts()
    quiet = Condition(gain_db=-6).apply(clean, RATE)
    np.testing.assert_allclose(quiet, clean * 10 ** (-6 / 20), atol=1e-6)
    far = Condition(gain_db=-18, noise="pink", snr_db=20).apply(clean, RATE)
    g = 10 ** (-18 / 20)
    assert abs(measured_snr(clean * g, far, on) - 20) < 0.5
    # the speech is 18 dB down and the noise adds its 1 % on top
    want = db(np.mean(clean[on].astype(np.float64) ** 2)) - 18 + db(1.01)
    assert abs(db(np.mean(far[on].astype(np.float64) ** 2)) - want) < 0.1
    level = active_level_dbfs(clean * g, RATE)
    assert level is not None and abs(level - (active_level_dbfs(clean, RATE) - 18)) < 0.01
    assert active_level_dbfs(np.zeros(100), RATE) is None


def test_gain_clips_at_full_scale_and_warns() -> None:
    clean, _ = bursts()
    with pytest.warns(RuntimeWarning, match="clipped at full scale.*gain_db"):
        loud = Condition(gain_db=20).apply(clean, RATE)
    assert loud.max() == 1.0 and loud.min() == -1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clip that stays in range says nothing
        Condition(gain_db=3).apply(clean, RATE)


# -- seeding -----------------------------------------------------------------------------------


@pytest.mark.parametrize("noise", ["white", "brown", pytest.param("babble", marks=needs_espeak)])
def test_seeded_repeatable_and_seeds_differ(noise: str) -> None:
    clean, _ = bursts()
    a = Condition(noise=noise, snr_db=10).apply(clean, RATE)
    b = Condition(noise=noise, snr_db=10, seed=0).apply(clean.copy(), RATE)
    assert np.array_equal(a, b)
    c = Condition(noise=noise, snr_db=10, seed=1).apply(clean, RATE)
    assert not np.allclose(a, c)
    # another clip gets its own draw of the noise
    other = Condition(noise=noise, snr_db=10).apply(clean * 0.5, RATE)
    assert not np.allclose(other - clean * 0.5, (a - clean) * 0.5, atol=1e-4)


def test_input_is_not_modified() -> None:
    clean, _ = bursts()
    before = clean.copy()
    Condition(noise="white", snr_db=0, gain_db=-3, telephone=True).apply(clean, RATE)
    assert np.array_equal(clean, before)


# -- the user's own noise ----------------------------------------------------------------------


def hum(rate: int, seconds: float, freq: float = 600.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, rate: int) -> float:
    f, p = signal.welch(x.astype(np.float64), fs=rate, nperseg=8192)
    return float(f[np.argmax(p)])


def test_noise_from_a_wav_file_resampled_looped_and_at_the_snr(tmp_path: Path) -> None:
    path = tmp_path / "hum.wav"
    wavfile.write(
        path, 16_000, (hum(16_000, 0.7) * 32767).astype(np.int16)
    )  # shorter than the clip
    clean, on = bursts()
    cond = Condition(noise=str(path), snr_db=5)
    out = cond.apply(clean, RATE)
    assert out.shape == clean.shape
    assert abs(measured_snr(clean, out, on) - 5) < 0.5
    assert abs(peak_hz(out - clean, RATE) - 600) < 10  # the file's hum, at the clip's rate
    assert cond.noise_source == str(path)
    assert Condition.from_dict(json.loads(json.dumps(cond.to_dict()))) == cond
    # an edited file is read again
    wavfile.write(path, 16_000, (hum(16_000, 0.7, 1500) * 32767).astype(np.int16))
    assert abs(peak_hz(cond.apply(clean, RATE) - clean, RATE) - 1500) < 10


def test_noise_from_a_stereo_float_wav_and_an_encoded_file(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    wavfile.write(path, 48_000, np.stack([hum(48_000, 1.0), hum(48_000, 1.0)], 1))
    clean, on = bursts()
    out = Condition(noise=path, snr_db=0).apply(clean, RATE)
    assert abs(measured_snr(clean, out, on)) < 0.5
    av = pytest.importorskip("av")
    flac = tmp_path / "hum.flac"
    with av.open(str(flac), "w") as container:
        stream = container.add_stream("flac", rate=16_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            (hum(16_000, 1.0, 900) * 32767).astype(np.int16).reshape(1, -1),
            format="s16",
            layout="mono",
        )
        frame.sample_rate = 16_000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    out = Condition(noise=flac, snr_db=10).apply(clean, RATE)
    assert abs(measured_snr(clean, out, on) - 10) < 0.5
    assert abs(peak_hz(out - clean, RATE) - 900) < 10


def test_noise_from_an_array_with_and_without_its_rate() -> None:
    clean, on = bursts()
    with_rate = Condition(noise=(hum(8000, 0.5, 700), 8000), snr_db=10)
    out = with_rate.apply(clean, RATE)
    assert abs(measured_snr(clean, out, on) - 10) < 0.5
    assert abs(peak_hz(out - clean, RATE) - 700) < 10
    bare = Condition(noise=hum(RATE, 0.5, 1100), snr_db=10)  # at the clip's own rate
    assert abs(peak_hz(bare.apply(clean, RATE) - clean, RATE) - 1100) < 10
    assert "array of 4000 samples at 8000 Hz" in repr(with_rate)


# -- shapes and dtypes -------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 22_050, 44_100])
@pytest.mark.parametrize("n", [0, 1, 161, 33_333])
def test_shapes_dtypes_and_lengths_are_kept(rate: int, n: int) -> None:
    x = np.random.default_rng(0).uniform(-0.3, 0.3, n)  # float64 in
    for cond in (Condition(), Condition(noise="pink", snr_db=5, telephone=True, gain_db=-6)):
        out = cond.apply(x, rate)
        assert out.dtype == np.float32 and out.shape == (n,)
    np.testing.assert_array_equal(Condition().apply(x, rate), x.astype(np.float32))


def test_column_vectors_and_int16_are_accepted() -> None:
    clean, _ = bursts()
    as_int = (clean * 32767).astype(np.int16)
    out = Condition(gain_db=0).apply(as_int.reshape(-1, 1), RATE)
    assert out.shape == clean.shape
    np.testing.assert_allclose(out, clean, atol=1e-4)


# -- storage, identity ----------------------------------------------------------------------


def test_immutable_hashable_readable_and_stored() -> None:
    cafe = Condition(noise="babble", snr_db=10, name="cafe")
    assert cafe == Condition(noise="Babble", snr_db=10.0, name="cafe")
    assert len({cafe, Condition(noise="babble", snr_db=10, name="cafe"), Condition()}) == 2
    assert {cafe: 1}[Condition(noise="babble", snr_db=10, name="cafe")] == 1
    assert cafe != Condition(noise="babble", snr_db=10, name="cafe", seed=1)
    with pytest.raises(AttributeError, match="immutable"):
        cafe.snr_db = 5  # type: ignore[misc]
    assert repr(cafe) == "Condition(name='cafe', noise='babble', snr_db=10)"
    assert repr(Condition(telephone=True, gain_db=-18, seed=2)) == (
        "Condition(telephone=True, gain_db=-18, seed=2)"
    )
    assert repr(Condition()) == "Condition()"
    stored = json.loads(json.dumps(cafe.to_dict()))
    assert stored == {
        "name": "cafe",
        "noise": "babble",
        "snr_db": 10.0,
        "telephone": False,
        "gain_db": 0.0,
        "seed": 0,
    }
    assert Condition.from_dict(stored) == cafe
    phone = Condition(telephone=True, gain_db=-3)
    assert Condition.from_dict(phone.to_dict()) == phone
    assert pickle.loads(pickle.dumps(cafe)) == cafe


def test_array_noise_is_stored_by_digest() -> None:
    arr = hum(8000, 0.5)
    cond = Condition(noise=(arr, 8000), snr_db=3)
    stored = json.loads(json.dumps(cond.to_dict()))
    assert stored["noise"]["samples"] == 4000 and stored["noise"]["sample_rate"] == 8000
    assert len(stored["noise"]["array_sha256"]) == 64
    with pytest.raises(ValueError, match=r"noise was an array.*noise=\(array, sample_rate\)"):
        Condition.from_dict(stored)
    assert Condition.from_dict(stored, noise=(arr, 8000)) == cond
    with pytest.raises(ValueError, match="not the one this condition was stored with"):
        Condition.from_dict(stored, noise=(arr * 0.5, 8000))
    assert Condition(noise=(arr.copy(), 8000), snr_db=3) == cond
    assert pickle.loads(pickle.dumps(cond)) == cond


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        (
            {"noise": "pinkk", "snr_db": 10},
            ValueError,
            'noise must be "white", "pink", "brown", "babble"',
        ),
        ({"noise": 3, "snr_db": 10}, TypeError, "noise must be"),
        ({"noise": "white"}, ValueError, "noise needs snr_db"),
        ({"snr_db": 10}, ValueError, "snr_db .* needs noise"),
        ({"noise": "white", "snr_db": float("nan")}, ValueError, "snr_db must be a finite number"),
        ({"noise": "white", "snr_db": float("inf")}, ValueError, "snr_db must be a finite number"),
        ({"noise": "white", "snr_db": "10"}, TypeError, "snr_db must be a number of dB"),
        ({"gain_db": float("-inf")}, ValueError, "gain_db must be a finite number"),
        ({"gain_db": 200}, ValueError, "gain_db .* -120..60"),
        ({"telephone": "yes"}, TypeError, "telephone must be True or False"),
        ({"seed": -1}, ValueError, "seed must be a whole number >= 0"),
        ({"seed": 1.5}, ValueError, "seed must be"),
        ({"name": ""}, ValueError, "name must be a non-empty string"),
        ({"noise": np.zeros(100), "snr_db": 10}, ValueError, "noise array is empty or silent"),
        ({"noise": (np.ones(10), -8000), "snr_db": 10}, ValueError, "sample rate must be 8000"),
        ({"noise": np.ones((100, 2)), "snr_db": 10}, ValueError, "noise array must be mono"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        Condition(**kwargs)


@pytest.mark.parametrize(
    ("samples", "rate", "error", "words"),
    [
        (np.zeros(100, np.float32), -16000, ValueError, "sample_rate must be 8000..384000 Hz"),
        (np.zeros(100, np.float32), 4000, ValueError, "sample_rate must be 8000..384000 Hz"),
        (np.zeros(100, np.float32), 16000.5, TypeError, "sample_rate must be a whole number"),
        (np.zeros(100, np.float32), True, TypeError, "sample_rate must be a whole number"),
        (np.zeros((100, 2), np.float32), 16000, ValueError, "samples must be mono"),
        (np.array([0.0, np.nan]), 16000, ValueError, "samples holds NaN"),
        (np.array(["a"]), 16000, TypeError, "samples must hold float samples"),
    ],
)
def test_bad_clips_name_the_field(
    samples: np.ndarray, rate: object, error: type, words: str
) -> None:
    with pytest.raises(error, match=words):
        Condition(noise="white", snr_db=10).apply(samples, rate)  # type: ignore[arg-type]


def test_bad_noise_calls_and_stored_dicts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ms must be a finite number of milliseconds"):
        Condition(noise="white", snr_db=10).noise(-5, RATE)
    with pytest.raises(ValueError, match=r"unknown Condition field\(s\) \['snr'\]"):
        Condition.from_dict({"noise": "white", "snr": 10})
    with pytest.raises(ValueError, match="neither a name nor a file"):
        Condition(noise=tmp_path / "missing.wav", snr_db=10)
    gone = tmp_path / "gone.wav"
    wavfile.write(gone, 16_000, (hum(16_000, 0.2) * 32767).astype(np.int16))
    cond = Condition(noise=gone, snr_db=10)
    gone.unlink()
    with pytest.raises(FileNotFoundError, match=r"the noise file .* is gone"):
        cond.apply(bursts()[0], RATE)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(ValueError, match="not a WAV file scipy can read"):
        Condition(noise=junk, snr_db=10).apply(bursts()[0], RATE)
    if __import__("importlib").util.find_spec("av") is not None:
        broken = tmp_path / "broken.ogg"
        broken.write_bytes(b"OggS" + b"\x00" * 64)
        with pytest.raises(ValueError, match="could not be decoded"):
            Condition(noise=broken, snr_db=10).apply(bursts()[0], RATE)
    silent = tmp_path / "silent.wav"
    wavfile.write(silent, 16_000, np.zeros(1600, np.int16))
    with pytest.raises(ValueError, match="is silent"):
        Condition(noise=silent, snr_db=10).apply(bursts()[0], RATE)


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "soxr", None)  # as if not installed
    with pytest.raises(
        ImportError, match=r'Condition needs soxr: pip install "realtime-widget\[conditions\]"'
    ):
        Condition(telephone=True).apply(bursts()[0], RATE)
