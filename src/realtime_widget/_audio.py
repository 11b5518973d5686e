"""Audio as bytes.

WAV in and out, the MIME type of encoded audio, numpy arrays as WAV, text spoken by espeak-ng, and
the one reader of a clip's source (``say()``'s, a script's turn's, a condition's noise file). No
dependency beyond the standard library; numpy only for arrays.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import wave
from pathlib import Path
from typing import Any

from . import _bridge as B
from ._extras import missing, require

ESPEAK_VOICE = "en-us"
ESPEAK_WPM = 175
MAX_SOURCE_CHARS = 200
_AUDIO_SUFFIXES = {".wav", ".wave", ".mp3", ".ogg", ".oga", ".opus", ".flac", ".m4a", ".webm"}


# -- encoding --------------------------------------------------------------------------------


def wav_bytes(pcm: bytes, sample_rate: int, channels: int = 1) -> bytes:
    """16-bit PCM (little-endian, interleaved) as a WAV file."""
    out = io.BytesIO()
    with wave.open(out, "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(int(sample_rate))
        f.writeframes(pcm)
    return out.getvalue()


def wav_info(data: bytes) -> tuple[int, int, int, int] | None:
    """(sample rate, channels, bits per sample, frames) of a RIFF/WAVE file, or None.

    The frame count comes from the bytes present, so a streamed header (size 0xFFFFFFFF) still
    works.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if cid == b"fmt " and size >= 16:
            _, channels, rate, _, align, bits = struct.unpack("<HHIIHH", data[body : body + 16])
            fmt = (rate, channels, bits, align)
        elif cid == b"data" and fmt is not None:
            rate, channels, bits, align = fmt
            available = min(size, len(data) - body)
            return rate, channels, bits, available // max(align, 1)
        pos = body + size + (size & 1)
    return None


def sniff_mime(data: bytes, name: str = "") -> str:
    """The audio type of encoded bytes, from their magic numbers (then the file name)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[:4] == b"OggS":
        return "audio/ogg"
    if data[:4] == b"fLaC":
        return "audio/flac"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    if data[4:8] == b"ftyp":
        return "audio/mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "audio/webm"
    suffix = Path(name).suffix.lower()
    return {
        ".mp3": "audio/mpeg",
        ".ogg": "audio/ogg",
        ".opus": "audio/ogg",
        ".flac": "audio/flac",
        ".m4a": "audio/mp4",
        ".webm": "audio/webm",
    }.get(suffix, "application/octet-stream")


def numpy_or_raise(what: str) -> Any:
    return require("numpy", "emulator", what)


def array_wav(array: Any, sample_rate: Any) -> bytes:
    """A numpy array at ``sample_rate`` as a 16-bit WAV.

    The array holds float samples in [-1, 1], or int16; its shape is (n,) or (n, channels) with
    1-2 channels.
    """
    np = numpy_or_raise("say() of an array")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | float):
        raise TypeError(f"sample_rate must be a number of samples per second; got {sample_rate!r}")
    if not 3000 <= sample_rate <= 384_000:
        raise ValueError(f"sample_rate must be 3000..384000 Hz; got {sample_rate!r}")
    a = np.asarray(array)
    if a.ndim == 2 and a.shape[1] not in (1, 2) and a.shape[0] in (1, 2):
        a = a.T  # (channels, n) as numpy audio libraries often hold it
    if a.ndim not in (1, 2) or (a.ndim == 2 and a.shape[1] not in (1, 2)) or a.size == 0:
        raise ValueError(
            f"the array must be mono (n,) or (n, 1 | 2) samples, not empty; got shape {a.shape}"
        )
    if a.dtype.kind == "f":
        pcm = np.round(np.clip(np.nan_to_num(a), -1.0, 1.0) * 32767.0).astype("<i2")
    elif a.dtype.kind in "iu":
        pcm = a.astype("<i2") if a.dtype.itemsize <= 2 else (a >> (8 * a.dtype.itemsize - 16))
        pcm = pcm.astype("<i2")
    else:
        raise TypeError(f"the array must hold float or integer samples; got {a.dtype}")
    channels = 1 if a.ndim == 1 else a.shape[1]
    return wav_bytes(np.ascontiguousarray(pcm).tobytes(), int(sample_rate), channels)


# -- text to speech ----------------------------------------------------------------------------

_CHILD = "from realtime_widget._audio import _espeak_child; _espeak_child()"


def synthesize(text: str, *, voice: str = ESPEAK_VOICE, wpm: int = ESPEAK_WPM) -> bytes:
    """``text`` spoken by espeak-ng, as a WAV.

    The ``espeak-ng`` program when it is on PATH, else the ``espeakng-loader`` package's library, in
    a child process (espeak-ng is one global synthesizer per process, and the emulator may be using
    it in this one).
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty string; got {text!r}")
    if not isinstance(wpm, int) or isinstance(wpm, bool) or not 80 <= wpm <= 450:
        raise ValueError(f"wpm must be an integer in 80..450 (espeak-ng's range); got {wpm!r}")
    exe = shutil.which("espeak-ng")
    if exe is not None:
        with tempfile.TemporaryDirectory(prefix="rtw-say-") as tmp:
            out = Path(tmp) / "say.wav"
            run = subprocess.run(
                [exe, "-v", voice, "-s", str(wpm), "-w", str(out), "--stdin"],
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=120,
            )
            if run.returncode != 0 or not out.exists():
                raise RuntimeError(
                    f"espeak-ng failed (exit {run.returncode}): "
                    f"{run.stderr.decode(errors='replace').strip()[:300]}"
                )
            return out.read_bytes()
    if importlib.util.find_spec("espeakng_loader") is not None:
        run = subprocess.run(
            [sys.executable, "-c", _CHILD, voice, str(wpm)],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=120,
        )
        if run.returncode != 0 or wav_info(run.stdout) is None:
            raise RuntimeError(
                "espeak-ng (espeakng-loader) failed: "
                f"{run.stderr.decode(errors='replace').strip()[-300:]}"
            )
        return run.stdout
    raise missing(
        "voice",
        "espeakng-loader",
        "say(text=...)",
        "the espeak-ng program: apt-get install espeak-ng",
    )


def _espeak_child() -> None:  # pragma: no cover - runs in a child process
    """argv: voice, wpm; stdin: the text; stdout: a WAV (espeakng-loader's library)."""
    import ctypes

    import espeakng_loader

    voice, wpm = sys.argv[1], int(sys.argv[2])
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    rate = lib.espeak_Initialize(2, 200, espeakng_loader.get_data_path().encode(), 0)
    if rate <= 0:
        raise SystemExit(f"espeak_Initialize failed ({rate})")
    chunks: list[bytes] = []
    callback_type = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
    )

    def on_audio(wav: Any, count: int, _events: Any) -> int:
        if count > 0:
            chunks.append(ctypes.string_at(wav, count * 2))
        return 0

    callback = callback_type(on_audio)
    lib.espeak_SetSynthCallback(callback)
    lib.espeak_SetVoiceByName(voice.encode())
    lib.espeak_SetParameter(1, wpm, 0)  # espeakRATE
    data = sys.stdin.buffer.read() + b"\0"
    buf = ctypes.create_string_buffer(data)
    lib.espeak_Synth(buf, len(data), 0, 1, 0, 1, None, None)  # POS_CHARACTER, CHARS_UTF8
    sys.stdout.buffer.write(wav_bytes(b"".join(chunks), rate))


# -- sources ---------------------------------------------------------------------------------


def load_source(
    source: Any,
    *,
    text: str | None,
    sample_rate: int | None,
    voice: str,
    wpm: int,
) -> tuple[bytes, str, str]:
    """(encoded bytes, mime type, the source as the log names it) of what ``say()`` got."""
    if text is not None:
        if source is not None:
            raise TypeError("say() takes a source or text=..., not both")
        if len(text) > B.LIMITS["max_text_chars"]:
            raise ValueError(f"text is over {B.LIMITS['max_text_chars']} characters")
        return synthesize(text, voice=voice, wpm=wpm), "audio/wav", f"text: {text}"
    if source is None:
        raise TypeError(
            "say() needs something to play: a path, WAV/other audio bytes, (array, sample_rate), "
            "or text='...'"
        )
    if isinstance(source, tuple) and len(source) == 2 and sample_rate is None:
        source, sample_rate = source
    if isinstance(source, bytes | bytearray | memoryview):
        if sample_rate is not None:
            raise TypeError("sample_rate is for arrays; audio bytes carry their own")
        data = bytes(source)
        return data, sniff_mime(data), "bytes"
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            hint = (
                " (to speak text, use say(text=...))"
                if isinstance(source, str) and path.suffix.lower() not in _AUDIO_SUFFIXES
                else ""
            )
            raise FileNotFoundError(f"no audio file at {str(path)!r}{hint}")
        data = path.read_bytes()
        return data, sniff_mime(data, path.name), str(path)
    if hasattr(source, "__array__") or isinstance(source, list):
        if sample_rate is None:
            raise TypeError("an array needs its rate: say((array, sample_rate)) or sample_rate=")
        return array_wav(source, sample_rate), "audio/wav", "array"
    raise TypeError(
        "say() plays a path, WAV/other audio bytes, (numpy array, sample_rate) or text='...'; "
        f"got {type(source).__name__}"
    )
