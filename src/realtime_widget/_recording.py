"""Both sides of a call, recorded in the browser and kept in the kernel on the log's clock.

With ``record`` on, the page sends ``recording`` chunks (about 250 ms each): int16 stereo,
channel 0 what the service heard (the outgoing mix: microphone and clips), channel 1 what the
user heard (the remote track and back-channel audio), each with ``t0_ms``, the log-clock time
of its first sample. A :class:`Recording` keeps the chunks exactly as they came (memory stays
at the raw PCM's size) and lays them out on access: sample 0 is at ``t0_ms``, each chunk at its
own time, and a gap between chunks (recording paused, a chunk lost) is silence, so an event at
``t_ms`` is always at sample ``(t_ms - t0_ms) * sample_rate / 1000`` in both tracks.

With ``log_path``, each chunk is also appended (and flushed) to a file beside the log
(``session.jsonl`` -> ``session.audio``) as it arrives; :func:`read_recordings` loads it.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import _bridge as B
from ._audio import numpy_or_raise, wav_bytes

if TYPE_CHECKING:
    from ._log import EventLog
    from ._port import CallPort

TRACKS = ("both", "user", "agent")
PREVIEW_S = 60.0  # what a cell's players hold at most (to_wav writes everything)
PREVIEW_RATE = 16_000
_FILE_MAGIC = {"format": "realtime-widget recording", "version": 1}


def recordings_of(log: Any) -> dict[int, Recording]:
    """The recordings that belong with an event log (empty when none, or for plain records)."""
    return dict(getattr(log, "recordings", None) or {})


def audio_path(log_path: str | os.PathLike[str]) -> Path:
    """Where a log's recordings are kept: beside it, ``.audio`` for its suffix."""
    return Path(log_path).with_suffix(".audio")


class Recording:
    """One call, both sides, on the event log's clock.

    ``user`` is what the service heard (microphone and clips), ``agent`` what the user heard
    (the agent's voice and back-channel audio): numpy float32 at ``sample_rate``,
    sample-aligned, sample 0 at ``t0_ms`` on the log clock, so an event at ``t_ms`` is sample
    ``sample_at(t_ms)`` in both tracks; a gap between chunks is silence. Arrays are built on
    each access from the int16 chunks; keep a reference. In a notebook a recording shows two
    players (the first 60 s, at 16 kHz).

    A widget or session with ``record=True`` makes one per call (``w.recording``,
    ``w.recordings[n]``); ``read_recordings`` loads saved ones.

    Args:
        call_number: The call it records (1, 2, ...: the log's ``call_number``).
        sample_rate: Samples per second of both tracks.
        page: The page that records the call (a widget's chunks from another page are refused).
        log: The EventLog its times refer to, which ``clip()`` finds turns in.

    Example:
        >>> w = RealtimeWidget(record=True)
        >>> # ... a call ...
        >>> rec = w.recording
        >>> rec.user, rec.agent              # float32 at rec.sample_rate
        >>> rec.to_wav("call.wav")           # stereo: user left, agent right
        >>> rec.clip(reply.response_id)      # one turn, cut by the log's times
    """

    def __init__(self, call_number: int, sample_rate: int, *, page: str = "", log: Any = None):
        self.call_number = call_number
        self.sample_rate = int(sample_rate)
        self.page = page
        self._log = log  # the EventLog its times refer to (for clip())
        self._lock = threading.Lock()
        self._chunks: list[tuple[int, float, bytes]] = []  # (seq, t0_ms, int16 stereo)
        self._seqs: set[int] = set()
        self._layout_cache: tuple[int, _Layout] | None = None

    # -- filling ---------------------------------------------------------------------------

    def _add(self, seq: int, t0_ms: float, data: bytes) -> str | None:
        """Keep one chunk; returns why it was refused, else None."""
        if len(data) % 4:
            return "a chunk must hold whole stereo int16 frames (4 bytes each)"
        with self._lock:
            if seq in self._seqs:
                return f"chunk {seq} arrived twice; the second was dropped"
            self._seqs.add(seq)
            self._chunks.append((seq, float(t0_ms), bytes(data)))
        return None

    @classmethod
    def _from_pcm(
        cls, call_number: int, sample_rate: int, t0_ms: float, pcm: Any, *, log: Any = None
    ) -> Recording:
        """A recording of int16 stereo frames (numpy (n, 2)) starting at ``t0_ms``.

        ``log`` is the EventLog its times refer to.
        """
        np = numpy_or_raise("Recording")
        rec = cls(call_number, sample_rate, log=log)
        data = np.ascontiguousarray(np.asarray(pcm, dtype="<i2").reshape(-1, 2)).tobytes()
        if data:
            rec._add(0, t0_ms, data)
        return rec

    # -- layout ----------------------------------------------------------------------------

    def _layout(self) -> _Layout:
        with self._lock:
            n = len(self._chunks)
            if self._layout_cache is not None and self._layout_cache[0] == n:
                return self._layout_cache[1]
            chunks = sorted(self._chunks, key=lambda c: c[0])
        layout = _Layout.of(chunks, self.sample_rate)
        with self._lock:
            self._layout_cache = (n, layout)
        return layout

    @property
    def t0_ms(self) -> float | None:
        """Log-clock time (epoch ms) of sample 0; None before the first chunk."""
        return self._layout().t0_ms

    @property
    def frames(self) -> int:
        """Samples per track, gaps included."""
        return self._layout().frames

    @property
    def duration_s(self) -> float:
        """Length in seconds, gaps included (``frames / sample_rate``)."""
        return self.frames / self.sample_rate

    @property
    def chunks(self) -> int:
        """How many chunks were kept (the page sends one about every 250 ms)."""
        with self._lock:
            return len(self._chunks)

    @property
    def gaps(self) -> list[tuple[float, float]]:
        """(log-clock start ms, length ms) of each stretch filled with silence."""
        return list(self._layout().gaps)

    @property
    def nbytes(self) -> int:
        """The PCM kept (int16, both tracks), without gaps: what the chunks hold."""
        with self._lock:
            return sum(len(c[2]) for c in self._chunks)

    def sample_at(self, t_ms: float) -> int:
        """The sample index of a log-clock time (may lie outside the recording).

        Args:
            t_ms: A time on the log's clock (epoch ms), such as a record's ``t_ms``.

        Returns:
            The index into ``user`` and ``agent``: negative before sample 0, ``frames`` or more
            after the end.

        Raises:
            ValueError: When the recording has no chunk yet.

        Example:
            >>> done = w.events.of_type("response.done")[-1]
            >>> rec.agent[: rec.sample_at(done["t_ms"])]
        """
        t0 = self.t0_ms
        if t0 is None:
            raise ValueError("the recording is empty")
        return round((t_ms - t0) * self.sample_rate / 1000.0)

    def time_of(self, sample: int) -> float:
        """The log-clock time (epoch ms) of a sample index; ``sample_at``'s inverse.

        Args:
            sample: An index into the tracks.

        Returns:
            The time on the log's clock, in epoch ms.

        Raises:
            ValueError: When the recording has no chunk yet.

        Example:
            >>> rec.time_of(0) == rec.t0_ms
            True
        """
        t0 = self.t0_ms
        if t0 is None:
            raise ValueError("the recording is empty")
        return t0 + sample * 1000.0 / self.sample_rate

    # -- audio -----------------------------------------------------------------------------

    def pcm(self) -> Any:
        """Both tracks as int16, shape (frames, 2): column 0 user, column 1 agent.

        Gaps between chunks are zeros. Built on each call; needs numpy.

        Returns:
            A numpy int16 array of shape ``(frames, 2)``.

        Example:
            >>> pcm = rec.pcm()
            >>> pcm.shape == (rec.frames, 2)
            True
        """
        np = numpy_or_raise("Recording audio")
        layout = self._layout()
        out = np.zeros((layout.frames, 2), dtype=np.int16)
        for pos, data in layout.placed:
            frames = np.frombuffer(data, dtype="<i2").reshape(-1, 2)
            out[pos : pos + len(frames)] = frames
        return out

    def _track(self, column: int) -> Any:
        np = numpy_or_raise("Recording audio")
        return self.pcm()[:, column].astype(np.float32) / np.float32(32768.0)

    @property
    def user(self) -> Any:
        """What the service heard (the outgoing mix: microphone and clips), float32."""
        return self._track(0)

    @property
    def agent(self) -> Any:
        """What the user heard (the agent's voice and back-channel audio), float32."""
        return self._track(1)

    def wav(self, track: str = "both") -> bytes:
        """The recording as 16-bit WAV bytes at ``sample_rate``.

        Args:
            track: ``"both"`` (stereo, user left, agent right), ``"user"`` or ``"agent"``
                (mono).

        Returns:
            The WAV file's bytes.

        Raises:
            ValueError: When ``track`` is none of the three.

        Example:
            >>> from IPython.display import Audio
            >>> Audio(rec.wav("agent"))
        """
        if track not in TRACKS:
            raise ValueError(f"track must be one of {TRACKS}; got {track!r}")
        pcm = self.pcm()
        if track != "both":
            pcm = pcm[:, 0 if track == "user" else 1]
        return wav_bytes(pcm.astype("<i2").tobytes(), self.sample_rate, 2 if track == "both" else 1)

    def to_wav(self, path: str | os.PathLike[str], track: str = "both") -> Path:
        """Write the recording as a 16-bit WAV file (all of it, however long).

        Args:
            path: The file to write (overwritten).
            track: ``"both"`` (stereo: user left, agent right), ``"user"`` or ``"agent"``.

        Returns:
            The path written.

        Example:
            >>> rec.to_wav("call.wav")
            PosixPath('call.wav')
            >>> rec.to_wav("agent.wav", track="agent")
        """
        out = Path(path)
        out.write_bytes(self.wav(track))
        return out

    def window(self, start_ms: float, end_ms: float) -> Recording:
        """The part of the recording between two log-clock times (clamped to it).

        Args:
            start_ms: Where the part starts, on the log's clock (epoch ms).
            end_ms: Where it ends; a time before ``start_ms`` gives an empty part.

        Returns:
            A new Recording of that stretch, for the same call and log.

        Raises:
            ValueError: When the recording has no chunk yet.

        Example:
            >>> first = w.events.of_type("response.done")[0]
            >>> rec.window(rec.t0_ms, first["t_ms"])
        """
        t0 = self.t0_ms
        if t0 is None:
            raise ValueError("the recording is empty")
        lo = max(0, self.sample_at(start_ms))
        hi = min(self.frames, max(lo, self.sample_at(end_ms)))
        return Recording._from_pcm(
            self.call_number, self.sample_rate, self.time_of(lo), self.pcm()[lo:hi], log=self._log
        )

    def clip(self, response_id: str, *, pad_ms: float = 300.0) -> Recording:
        """The audio of one turn, cut by the log's times.

        It runs from the start of the user's turn that ``response_id`` answered (speech start,
        the clip that spoke it, or the text's ``response.create``) to the end of the reply's
        audio, with ``pad_ms`` either side.

        Args:
            response_id: The response whose turn to cut (``reply.response_id``, or the
                ``response_id`` column of ``EventLog.turns()``).
            pad_ms: Extra audio kept before and after the turn, in ms.

        Returns:
            A new Recording of that turn.

        Raises:
            ValueError: When the recording has no event log (pass ``log=`` to
                ``read_recordings``), or is empty.
            KeyError: When this call's log has no response ``response_id``.

        Example:
            >>> reply = await w.ask("Where is Paris?")
            >>> w.recording.clip(reply.response_id, pad_ms=500)
        """
        if self._log is None:
            raise ValueError("this recording has no event log to find turns in (pass log=)")
        from ._turns import collect_turns

        records = [r for r in self._log if r["call_number"] == self.call_number]
        turn = next((t for t in collect_turns(records) if t.response_id == response_id), None)
        if turn is None:
            raise KeyError(f"no response {response_id!r} in call {self.call_number}'s log")
        starts = [turn.t.get(k) for k in ("speech_started", "turn_start", "created")]
        start = min(v for v in starts if v is not None)
        if turn.trigger == "clip":  # the clip's first sample, before the VAD noticed it
            said = [
                r["t_ms"]
                for r in records
                if r["type"] == "say.started" and r["direction"] == "local" and r["t_ms"] <= start
            ]
            if said:
                start = said[-1]
        ends = [turn.t.get(k) for k in ("audio_stopped", "done", "first_audible", "created")]
        end = max(v for v in ends if v is not None)
        return self.window(start - pad_ms, end + pad_ms)

    # -- display ---------------------------------------------------------------------------

    def _repr_html_(self) -> str:
        import html

        head = html.escape(repr(self))
        if not self.chunks:
            return f"<div>{head}</div>"
        np = numpy_or_raise("Recording audio")
        pcm = self.pcm()
        rate = self.sample_rate
        cut = int(PREVIEW_S * rate)
        note = ""
        if len(pcm) > cut:
            pcm = pcm[:cut]
            note = f" (the first {PREVIEW_S:g} s; rec.to_wav() writes all of it)"
        if rate > PREVIEW_RATE:  # a lighter notebook: the players at 16 kHz
            n = max(1, round(len(pcm) * PREVIEW_RATE / rate))
            x = np.arange(n) * (rate / PREVIEW_RATE)
            src = np.arange(len(pcm))
            pcm = np.stack([np.interp(x, src, pcm[:, c]) for c in (0, 1)], axis=1)
            pcm, rate = np.round(pcm).astype("<i2"), PREVIEW_RATE
        rows = []
        for col, label in ((0, "user: what the service heard"), (1, "agent: what the user heard")):
            data = base64.b64encode(wav_bytes(pcm[:, col].tobytes(), rate)).decode("ascii")
            rows.append(
                f"<div><span style='display:inline-block;width:15em'>{label}</span>"
                f"<audio controls preload='none' src='data:audio/wav;base64,{data}'></audio></div>"
            )
        return f"<div><div>{head}{html.escape(note)}</div>{''.join(rows)}</div>"

    def __repr__(self) -> str:
        layout = self._layout()
        gaps = f", {len(layout.gaps)} gap(s)" if layout.gaps else ""
        return (
            f"<Recording call {self.call_number}: {layout.frames / self.sample_rate:.2f} s at "
            f"{self.sample_rate} Hz, {len(layout.placed)} chunks{gaps}>"
        )


class _Layout:
    """Where each chunk lies in the tracks (in samples), and the silences between."""

    def __init__(self) -> None:
        self.t0_ms: float | None = None
        self.frames = 0
        self.placed: list[tuple[int, bytes]] = []
        self.gaps: list[tuple[float, float]] = []

    @classmethod
    def of(cls, chunks: list[tuple[int, float, bytes]], rate: int) -> _Layout:
        out = cls()
        if not chunks:
            return out
        t0 = out.t0_ms = chunks[0][1]
        tolerance = max(1, rate // 1000)  # 1 ms: clock rounding, not a gap
        end = 0
        for _, t_ms, data in chunks:
            pos = round((t_ms - t0) * rate / 1000.0)
            if pos > end + tolerance:  # audio missing here: silence keeps the clock
                out.gaps.append((t0 + end * 1000.0 / rate, (pos - end) * 1000.0 / rate))
            else:  # contiguous (or a step back of the page's clock): keep every sample, in order
                pos = end
            out.placed.append((pos, data))
            end = pos + len(data) // 4
        out.frames = end
        return out


class Recordings:
    """A widget's recordings, one per call: takes the page's ``recording`` chunks."""

    def __init__(self, port: CallPort, log: EventLog) -> None:
        self._port = port
        self._log = log
        self._lock = threading.Lock()
        self.by_call: dict[int, Recording] = {}
        self._file: IO[bytes] | None = None
        self.path = audio_path(log.path) if log.path is not None else None
        log.recordings = self.by_call
        port.handle(B.RECORDING, self.on_chunk)

    def on_chunk(self, msg: dict[str, Any]) -> None:
        port = self._port
        call, page = msg["call"], msg["page"]
        if call < 1 or call > port.call:
            port.refuse(B.RECORDING, page, f"a chunk for call {call}, which never started")
            return
        with self._lock:
            rec = self.by_call.get(call)
            if rec is None:
                if call != port.call or not port.speaks_for(page):
                    port.refuse(B.RECORDING, page, f"page does not hold call {call}")
                    return
                rec = self.by_call[call] = Recording(
                    call, msg["sample_rate"], page=page, log=self._log
                )
        if page != rec.page:
            port.refuse(B.RECORDING, page, f"call {call} is recorded by another page")
            return
        if msg["sample_rate"] != rec.sample_rate:
            port.refuse(
                B.RECORDING,
                page,
                f"chunk {msg['seq']} is at {msg['sample_rate']} Hz; call {call} records at "
                f"{rec.sample_rate} Hz",
            )
            return
        problem = rec._add(msg["seq"], msg["t0_ms"], msg["data"])
        if problem:
            port.refuse(B.RECORDING, page, problem)
            return
        if self.path is not None:
            self._append(call, msg)

    def _append(self, call: int, msg: Mapping[str, Any]) -> None:
        head = {
            "call": call,
            "seq": msg["seq"],
            "t0_ms": msg["t0_ms"],
            "sample_rate": msg["sample_rate"],
            "frames": msg["frames"],
            "bytes": len(msg["data"]),
        }
        with self._lock:
            if self._file is None:
                assert self.path is not None
                self.path.parent.mkdir(parents=True, exist_ok=True)
                new = not self.path.exists() or self.path.stat().st_size == 0
                self._file = open(self.path, "ab")  # noqa: SIM115 - kept open, like the log's
                if new:
                    self._file.write(json.dumps(_FILE_MAGIC).encode() + b"\n")
            self._file.write(json.dumps(head, separators=(",", ":")).encode() + b"\n")
            self._file.write(msg["data"])
            self._file.flush()  # a killed kernel keeps every chunk that reached it

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read_recordings(
    path: str | os.PathLike[str], *, log: EventLog | None = None
) -> dict[int, Recording]:
    """Load the recordings a widget or session with ``log_path`` and ``record=True`` wrote.

    They are kept in ``session.audio`` beside ``session.jsonl``. A chunk cut off by a crash is
    skipped.

    Args:
        path: The ``.audio`` file, or the log's path (its ``.audio`` sibling is read).
        log: The saved log (``EventLog.read_jsonl(...)``): lets ``clip()`` find turns, and the
            log gets these recordings, so ``log.plot_timeline()`` draws them.

    Returns:
        The recordings by call number.

    Raises:
        ValueError: When the file is not a realtime-widget recording file.

    Example:
        >>> log = EventLog.read_jsonl("session.jsonl")
        >>> recs = read_recordings("session.jsonl", log=log)
        >>> recs[1].to_wav("call1.wav")
    """
    p = Path(path)
    if p.suffix != ".audio":
        p = audio_path(p)
    out: dict[int, Recording] = {}
    with open(p, "rb") as fh:
        first = fh.readline()
        try:
            magic = json.loads(first)
        except ValueError:
            magic = None
        if not isinstance(magic, dict) or magic.get("format") != _FILE_MAGIC["format"]:
            raise ValueError(f"{p} is not a realtime-widget recording file")
        while True:
            line = fh.readline()
            if not line.endswith(b"\n"):
                break  # the end, or a header cut short
            head = json.loads(line)
            data = fh.read(int(head["bytes"]))
            if len(data) < int(head["bytes"]):
                break  # a chunk cut short by a crash
            call = int(head["call"])
            rec = out.get(call)
            if rec is None:
                rec = out[call] = Recording(call, int(head["sample_rate"]), log=log)
            rec._add(int(head["seq"]), float(head["t0_ms"]), data)
    if log is not None:
        log.recordings = out
    return out
