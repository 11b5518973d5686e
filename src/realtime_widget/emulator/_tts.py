"""A speaking voice: espeak-ng through ctypes, a sentence at a time, ahead of playback.

The library comes from the ``espeakng-loader`` wheel (``libespeak-ng`` and its data, part of
``realtime-widget[voice]``), else from the system (Debian's ``espeak-ng``). espeak-ng is one
global synthesizer per process, so every synthesis holds ``_LOCK``.

:class:`SpokenText` has the interface of the formant :class:`~._audio.Speech` (``len``,
``render``) plus what a streamed voice needs: ``complete`` (its length is final) and
``char_sample`` (where the voice reaches a character of the text, from espeak-ng's word
events). A reply is cut into sentences of at most ``SEGMENT_CHARS``; a worker thread
synthesizes them no more than ``AHEAD_S`` ahead of what has been played, and segments that have
been played are dropped, so a 60 KB reply holds a few seconds of samples, not an hour.
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import hashlib
import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._audio import SAMPLE_RATE, Speech

log = logging.getLogger(__name__)

SEGMENT_CHARS = 240  # a sentence, or a slice of a long one cut at a space
AHEAD_S = 8.0  # synthesized audio kept ahead of the playback position
BASE_WPM = 175  # espeak-ng's own default rate, at session speed 1.0 and speech_rate 15
MIN_WPM, MAX_WPM = 80, 450  # espeak-ng's range

# espeak-ng's API (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000  # a sentence pause after each piece, as within a text
_EVENT_WORD = 1
_EVENT_LIST_TERMINATED = 0
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_POS_CHARACTER = 1


class _EspeakEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character position of the word
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms from the start of this synthesis
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
)


@dataclass(frozen=True)
class VoiceStyle:
    """An espeak-ng voice: a language voice, a variant and a pitch (0-100)."""

    name: str  # espeak-ng voice name, e.g. "en-us+m3"
    pitch: int
    pitch_range: int = 50


# The provider's voices, each its own sound; any other name picks one of these by its hash.
VOICES: dict[str, VoiceStyle] = {
    "clive": VoiceStyle("en-gb+m3", 38),
    "ashley": VoiceStyle("en-us+f2", 62),
    "dennis": VoiceStyle("en-us+m1", 48),
    "sarah": VoiceStyle("en-gb+f3", 70),
    "hades": VoiceStyle("en-us+m7", 18, 30),
}


def voice_style(voice: str) -> VoiceStyle:
    """The espeak-ng voice for a session's ``voice`` name.

    Names are case-insensitive; unknown names are mapped deterministically onto the known ones.
    """
    key = voice.strip().lower()
    if key in VOICES:
        return VOICES[key]
    styles = list(VOICES.values())
    return styles[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(styles)]


def words_per_minute(speed: float, speech_rate: float = 15.0) -> int:
    """The espeak-ng rate for a session ``speed`` and the emulator's ``speech_rate`` knob.

    15 characters/s, the knob's default, is espeak-ng's own 175 words/min.
    """
    return int(min(MAX_WPM, max(MIN_WPM, round(BASE_WPM * speed * speech_rate / 15.0))))


def _find_library() -> tuple[str, str | None] | None:
    try:
        import espeakng_loader

        return str(espeakng_loader.get_library_path()), str(espeakng_loader.get_data_path())
    except (ImportError, RuntimeError, OSError):
        pass
    name = ctypes.util.find_library("espeak-ng")
    return (name, None) if name else None


class Espeak:
    """The process's espeak-ng: load once (:func:`engine`), then :meth:`synthesize`."""

    def __init__(self, library: str, data_path: str | None) -> None:
        self.library = library
        lib = ctypes.CDLL(library)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 200, data_path.encode() if data_path else None, 0
        )
        if rate <= 0:
            raise OSError(f"espeak_Initialize failed ({rate}) with {library}")
        self.sample_rate = int(rate)
        self._lib = lib
        self._chunks: list[np.ndarray] = []
        self._words: list[tuple[int, int]] = []  # (0-based char position, sample offset)
        self._callback = _CALLBACK(self._on_audio)  # kept: espeak-ng holds the pointer
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: Any, count: int, events: Any) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_WORD:
                self._words.append((events[i].text_position - 1, int(events[i].sample)))
            i += 1
        return 0

    def synthesize(
        self, text: str, style: VoiceStyle, wpm: int
    ) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Mono int16 at ``sample_rate`` and the (character, sample) where each word starts."""
        with _LOCK:
            self._chunks, self._words = [], []
            self._lib.espeak_SetVoiceByName(style.name.encode())
            self._lib.espeak_SetParameter(_RATE, wpm, 0)
            self._lib.espeak_SetParameter(_PITCH, style.pitch, 0)
            self._lib.espeak_SetParameter(_RANGE, style.pitch_range, 0)
            data = text.encode("utf-8") + b"\0"
            buf = ctypes.create_string_buffer(data)
            self._lib.espeak_Synth(
                buf, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None
            )
            pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            # espeak-ng counts characters (UTF-8 decoded); map them onto the str's indexes.
            return pcm.astype(np.int16), list(self._words)


_LOCK = threading.Lock()
_ENGINE: Espeak | None = None
_ENGINE_TRIED = False


def engine() -> Espeak | None:
    """The loaded espeak-ng, or None when no library is found (logged once)."""
    global _ENGINE, _ENGINE_TRIED
    with _LOCK:
        if _ENGINE_TRIED:
            return _ENGINE
        _ENGINE_TRIED = True
        found = _find_library()
        try:
            _ENGINE = Espeak(*found) if found else None
        except OSError as exc:
            log.warning("espeak-ng could not be loaded: %s", exc)
            _ENGINE = None
        return _ENGINE


def split_segments(text: str, limit: int = SEGMENT_CHARS) -> list[tuple[int, str]]:
    """``text`` as (start offset, piece) sentences of at most ``limit`` characters.

    Cut after sentence punctuation, else at the last space before the limit.
    """
    out: list[tuple[int, str]] = []
    for match in re.finditer(r"[^.!?;]*(?:[.!?;]+|$)", text):
        piece_start, piece = match.start(), match.group()
        while len(piece) > limit:
            cut = piece.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            out.append((piece_start, piece[:cut]))
            piece_start, piece = piece_start + cut, piece[cut:]
        if piece.strip():
            out.append((piece_start, piece))
    return out


def _resample(pcm: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE or not len(pcm):
        return pcm
    n = round(len(pcm) * SAMPLE_RATE / rate)
    x = np.interp(np.arange(n) * rate / SAMPLE_RATE, np.arange(len(pcm)), pcm.astype(np.float64))
    return np.asarray(np.round(x), dtype=np.int16)


class SpokenText:
    """espeak-ng saying ``text``: mono int16 at 48 kHz, synthesized ahead of playback.

    The constructor synthesizes the first sentence (so playback can start at once); a worker
    thread does the rest, never more than ``AHEAD_S`` ahead of the last frame rendered.
    """

    def __init__(
        self, text: str, voice: str = "", speed: float = 1.0, speech_rate: float = 15.0
    ) -> None:
        found = engine()
        if found is None:
            raise RuntimeError("espeak-ng is not available")
        self._engine = found
        self.text = text
        self.style = voice_style(voice)
        self.wpm = words_per_minute(speed, speech_rate)
        self._segments = split_segments(text)
        self._cond = threading.Condition()
        self._pcm: dict[int, np.ndarray] = {}  # segment -> samples, only those not yet played
        self._starts: list[int] = [0]  # sample where each synthesized segment starts
        self._char_marks: list[tuple[int, int]] = [(0, 0)]  # (char, sample), increasing
        self._next = 0  # next segment to synthesize
        self._played = 0  # furthest sample rendered
        self._closed = False
        self.peak_segment_samples = 0
        self._synthesize_next()
        if self._next < len(self._segments):
            threading.Thread(target=self._work, name="espeak-ahead", daemon=True).start()

    # --- synthesis ------------------------------------------------------------------------
    def _synthesize_next(self) -> None:
        index = self._next
        offset, piece = self._segments[index]
        raw, words = self._engine.synthesize(piece, self.style, self.wpm)
        pcm = _resample(raw, self._engine.sample_rate)
        scale = SAMPLE_RATE / self._engine.sample_rate
        with self._cond:
            base = self._starts[-1]
            for char, sample in words:
                mark = (offset + char, base + round(sample * scale))
                if mark[0] > self._char_marks[-1][0] and mark[1] >= self._char_marks[-1][1]:
                    self._char_marks.append(mark)
            self._pcm[index] = pcm
            self._starts.append(base + len(pcm))
            self.peak_segment_samples = max(self.peak_segment_samples, len(pcm))
            self._next = index + 1
            if self._next == len(self._segments):  # the text's end is where the audio ends
                self._char_marks.append((len(self.text), self._starts[-1]))
            self._cond.notify_all()

    def _work(self) -> None:
        try:
            while True:
                with self._cond:
                    while (
                        not self._closed and self._starts[-1] - self._played > AHEAD_S * SAMPLE_RATE
                    ):
                        self._cond.wait()
                    if self._closed or self._next >= len(self._segments):
                        return
                self._synthesize_next()
        except Exception:  # the voice stops early; playback ends where the audio does
            log.exception("espeak-ng synthesis failed")
            with self._cond:
                self._segments = self._segments[: self._next]
                self._cond.notify_all()

    def close(self) -> None:
        """Stop synthesizing (the reply was cut)."""
        with self._cond:
            self._closed = True
            self._pcm.clear()
            self._cond.notify_all()

    # --- the Sound interface ----------------------------------------------------------------
    @property
    def complete(self) -> bool:
        """True once every segment is synthesized: ``len`` is final."""
        return self._next >= len(self._segments)

    def __len__(self) -> int:
        return self._starts[-1]

    def char_sample(self, offset: int) -> int | None:
        """The sample where the voice reaches character ``offset``.

        That is the start of the word at or before it; None while that part is not synthesized
        yet.
        """
        with self._cond:
            marks = self._char_marks
            if offset > marks[-1][0] and not self.complete:
                return None
            i = bisect.bisect_right(marks, (offset, 1 << 62)) - 1
            return marks[max(i, 0)][1]

    def char_at(self, sample: int) -> int:
        """How many characters of the text the voice has started by ``sample``."""
        with self._cond:
            i = bisect.bisect_right([s for _, s in self._char_marks], sample) - 1
            return self._char_marks[max(i, 0)][0]

    def render(self, lo: int, hi: int) -> np.ndarray:
        out = np.zeros(max(hi - lo, 0), np.int16)
        with self._cond:
            starts = self._starts
            first = max(bisect.bisect_right(starts, lo) - 1, 0)
            for index in range(first, len(starts) - 1):
                a, b = starts[index], starts[index + 1]
                if a >= hi:
                    break
                pcm = self._pcm.get(index)
                x, y = max(a, lo), min(b, hi)
                if pcm is not None and y > x:
                    out[x - lo : y - lo] = pcm[x - a : y - a]
            if hi > self._played:
                self._played = hi
                for index in [i for i in self._pcm if starts[i + 1] <= lo]:
                    del self._pcm[index]  # played: never needed again
                self._cond.notify_all()
        return out

    def held_samples(self) -> int:
        """Samples kept in memory right now (tests check that this stays bounded)."""
        with self._cond:
            return sum(len(p) for p in self._pcm.values())


_MISSING_SAID = False


def make_speech(
    text: str, tts: str, speech_rate: float, speed: float, voice: str
) -> SpokenText | Speech:
    """The reply's voice per the ``tts`` knob.

    Espeak-ng (``"auto"`` when it is installed, ``"espeak"``), else the formant voice
    (``"formant"``, or ``"auto"`` without espeak-ng, which is said once). Blocking for one sentence
    of synthesis: call it in a thread.
    """
    global _MISSING_SAID
    if tts != "formant":
        if engine() is not None:
            return SpokenText(text, voice, speed, speech_rate)
        if tts == "espeak":
            raise RuntimeError(
                'tts="espeak": no espeak-ng library (pip install "realtime-widget[voice]", '
                "or the espeak-ng system package)"
            )
        if not _MISSING_SAID:
            _MISSING_SAID = True
            log.warning(
                "realtime emulator: espeak-ng is not installed, so replies use the synthetic "
                'formant voice. For a speaking voice: pip install "realtime-widget[voice]"'
            )
    return Speech(text, speech_rate, speed, voice)
