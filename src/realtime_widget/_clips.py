"""Audio from Python into the call: ``w.say(...)``.

A clip (a file, WAV or other encoded bytes, a numpy array, or text synthesized here with
espeak-ng) travels to the page as ``play`` messages, chunks of at most
``limits.max_chunk_bytes`` in binary buffers (base64 in the message where the host drops
buffers, see ``_delivery.Delivery``). The page decodes it, plays it into the outgoing mix at
real time with the microphone ducked, and records ``say.started`` / ``say.ended`` /
``say.error`` on the log clock; those records fill in the clip's handle.

Clips wait, like client events, until the call's ``connect`` message has gone out; a call that
ends first takes its waiting clips with it (their handles say so).
"""

from __future__ import annotations

import base64
import importlib.util
import io
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import wave
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _bridge as B
from ._extras import missing, require
from ._pending import Pending, new_id
from ._turns import text as _str

if TYPE_CHECKING:
    from ._delivery import Delivery
    from ._port import CallPort

DEFAULT_DUCK = 0.1  # the microphone's gain while a clip plays: room noise must not hold a turn
ESPEAK_VOICE = "en-us"
ESPEAK_WPM = 175
_MAX_SOURCE_CHARS = 200
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
    """(sample rate, channels, bits per sample, frames) of a RIFF/WAVE file, or None. The frame
    count comes from the bytes present, so a streamed header (size 0xFFFFFFFF) still works."""
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
    """A numpy array (float in [-1, 1], or int16; shape (n,) or (n, channels) with 1-2
    channels) at ``sample_rate`` as a 16-bit WAV."""
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

_CHILD = "from realtime_widget._clips import _espeak_child; _espeak_child()"


def synthesize(text: str, *, voice: str = ESPEAK_VOICE, wpm: int = ESPEAK_WPM) -> bytes:
    """``text`` spoken by espeak-ng, as a WAV: the ``espeak-ng`` program when it is on PATH,
    else the ``espeakng-loader`` package's library, in a child process (espeak-ng is one global
    synthesizer per process, and the emulator may be using it in this one)."""
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


# -- the handle ------------------------------------------------------------------------------


class Clip(Pending):
    """One clip sent with ``say()``. Fills in from the page's records: ``started_ms`` /
    ``ended_ms`` (log clock, the clip's first and last sample in the outgoing mix),
    ``duration_ms``, ``stopped``, ``error``. ``await clip`` returns when it finished playing."""

    _what = "the clip"

    def __init__(
        self,
        delivery: Delivery,
        *,
        clip_id: str,
        call: int,
        source: str,
        data: bytes,
        mime: str,
        duck: float,
        suspended: Callable[[], str | None],
        stop: Callable[[Clip], None],
    ) -> None:
        super().__init__(delivery)
        self.clip_id = clip_id
        self.call = call
        self.source = source
        self.mime = mime
        self.duck = duck
        self.bytes = len(data)
        info = wav_info(data) if mime == "audio/wav" else None
        self.duration_ms: float | None = (
            round(info[3] * 1000.0 / info[0], 1) if info and info[0] else None
        )
        self.started_ms: float | None = None
        self.ended_ms: float | None = None
        self.stopped = False
        self.sent = False
        self.error: str | None = None
        self._data: bytes | None = data  # released once sent
        self._suspended = suspended
        self._stop = stop
        self._when_ended: list[Callable[[Clip], Any]] = []
        # generous: clips queue behind each other in the page
        self._default_timeout = (self.duration_ms or 60_000.0) / 1000.0 + 60.0

    def stop(self) -> None:
        """Stop playing (or drop the clip if it has not gone out yet)."""
        if not self._finished:
            self._stop(self)

    def _timeout_words(self, timeout: float) -> str:
        words = f"clip {self.clip_id} did not finish playing within {timeout:g} s"
        if self.started_ms is None:
            words += " (it never started"
            suspended = self._suspended()
            if suspended:
                words += (
                    f": the page's audio is suspended ({suspended}); click anywhere in the page, "
                    "browsers start audio only after a user gesture"
                )
            words += ")"
        return words

    def when_ended(self, fn: Callable[[Clip], Any]) -> None:
        """Call ``fn(clip)`` once the clip has played to its end (not when it failed)."""
        self._when_ended.append(fn)

    def take_data(self) -> bytes:
        """The clip's bytes, once: they are not kept after they went to the page."""
        data, self._data = self._data or b"", None
        return data

    def mark_ended(self, event: Mapping[str, Any], t_ms: float) -> None:
        """The page's ``say.ended`` record: the clip finished playing at ``t_ms``."""
        if self.ended_ms is None:
            self.ended_ms = t_ms
        self.stopped = bool(event.get("stopped")) or self.stopped
        dur = event.get("duration_ms")
        if isinstance(dur, int | float) and not isinstance(dur, bool):
            self.duration_ms = float(dur)
        if self.finish():
            for fn in self._when_ended:
                fn(self)

    def fail(self, words: str, exc_type: type[Exception] = RuntimeError) -> None:
        """The clip could not play (or finish): ``error`` says why, awaiters raise it."""
        if not self._finished:
            self.error = words
            self.finish(exc_type(words))

    def __repr__(self) -> str:
        if self.error:
            state = f"error: {self.error}"
        elif self.ended_ms is not None:
            state = "stopped" if self.stopped else "played"
        elif self.started_ms is not None:
            state = "playing"
        else:
            state = "sent" if self.sent else "queued"
        dur = f", {self.duration_ms / 1000:.2f} s" if self.duration_ms else ""
        src = self.source if len(self.source) <= 60 else self.source[:59] + "…"
        return f"<Clip {self.clip_id} {state}{dur}: {src!r}>"


class ClipPlayer:
    """The clips of one widget: sends them, hears their records, stops them."""

    def __init__(self, port: CallPort, delivery: Delivery) -> None:
        self._port = port
        self._delivery = delivery
        self._lock = threading.RLock()
        self._queue: list[Clip] = []  # waiting for the call's connect message
        self._clips: dict[str, Clip] = {}  # sent, not finished
        self.suspended: str | None = None  # the page's last audio.suspended message
        port.subscribe(self.on_record)

    def say(
        self,
        source: Any = None,
        *,
        text: str | None = None,
        duck: float = DEFAULT_DUCK,
        sample_rate: int | None = None,
        voice: str = ESPEAK_VOICE,
        wpm: int = ESPEAK_WPM,
        condition: Any = None,
    ) -> Clip:
        port = self._port
        if not port.live:
            raise RuntimeError(
                f"say() needs a call to play into (status {port.status!r}): connect() first, or "
                "click Connect"
            )
        if isinstance(duck, bool) or not isinstance(duck, int | float) or not 0 <= duck <= 1:
            raise ValueError(
                f"duck is the microphone's gain while the clip plays, 0..1; got {duck!r}"
            )
        data, mime, name = load_source(
            source, text=text, sample_rate=sample_rate, voice=voice, wpm=wpm
        )
        if condition is not None:  # the samples as a place or a phone line would pass them on
            from .experiments.conditions import conditioned_clip

            data, mime = conditioned_clip(condition, data, mime)
        if not data:
            raise ValueError("the clip is empty")
        clip = Clip(
            self._delivery,
            clip_id=new_id("clip"),
            call=port.call,
            source=name[:_MAX_SOURCE_CHARS],
            data=data,
            mime=mime,
            duck=float(duck),
            suspended=lambda: self.suspended,
            stop=self._stop,
        )
        with self._lock:
            self._queue.append(clip)
        self.flush()
        return clip

    def flush(self) -> None:
        """Send queued clips once the browser knows the call (its connect message went out)."""
        port = self._port
        with self._lock:
            if not self._queue or not port.browser_has_call:
                return
            queue, self._queue = self._queue, []
            for clip in queue:
                if clip.call != port.call:
                    clip.fail("its call ended before the clip could be sent", ConnectionError)
                    continue
                self._clips[clip.clip_id] = clip
                self._send(clip)

    def _send(self, clip: Clip) -> None:
        data = clip.take_data()
        as_b64 = not self._delivery.buffers_to_browser
        size = B.LIMITS["max_chunk_bytes"]
        if as_b64:  # the JSON field is 4/3 of the bytes: keep each message under the limit
            size = size * 3 // 4
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        page = self._port.page or ""
        for index, chunk in enumerate(chunks):
            message = B.message(
                B.PLAY,
                call=clip.call,
                page=page,
                clip_id=clip.clip_id,
                index=index,
                last=len(chunks) - 1,
                mime=clip.mime,
                duck=clip.duck,
                source=clip.source,
                b64=base64.b64encode(chunk).decode("ascii") if as_b64 else "",
            )
            self._port.post(message, [] if as_b64 else [chunk])
        clip.sent = True

    def _stop(self, clip: Clip) -> None:
        port = self._port
        with self._lock:
            if clip in self._queue:
                self._queue.remove(clip)
                clip.stopped = True
                clip.finish()
                return
        if clip.sent and port.browser_has_call and clip.call == port.call:
            port.post(
                B.message(B.STOP_CLIP, call=clip.call, page=port.page or "", clip_id=clip.clip_id)
            )

    def on_record(self, direction: str, event: Mapping[str, Any], t_ms: float, call: int) -> None:
        if direction != "local":
            if self._queue:  # a record of the current call: the browser knows the call
                self.flush()
            return
        etype = event.get("type")
        if etype == "audio.suspended":
            self.suspended = _str(event.get("message")) or "suspended"
            return
        if etype not in ("say.started", "say.ended", "say.error"):
            if self._queue:
                self.flush()
            return
        with self._lock:
            clip = self._clips.get(_str(event.get("clip_id")) or "")
            if clip is not None and etype != "say.started":
                del self._clips[clip.clip_id]
        if clip is None:
            return
        if etype == "say.started":
            self.suspended = None
            if clip.started_ms is None:
                clip.started_ms = t_ms
            dur = event.get("duration_ms")
            if isinstance(dur, int | float) and not isinstance(dur, bool) and math.isfinite(dur):
                clip.duration_ms = float(dur)
        elif etype == "say.ended":
            clip.mark_ended(event, t_ms)
        else:
            words = _str(event.get("message")) or "the page could not play it"
            clip.fail(f"the page could not play clip {clip.clip_id}: {words}")

    def call_ended(self, words: str) -> None:
        with self._lock:
            clips = [*self._queue, *self._clips.values()]
            self._queue, self._clips = [], {}
        for clip in clips:
            if clip.started_ms is not None:
                clip.stopped = True
            clip.fail(f"the call ended before the clip finished playing ({words})", ConnectionError)
