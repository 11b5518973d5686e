"""A call the kernel holds itself.

The service's WebSocket, a virtual microphone and a virtual speaker, for sessions with no page
(papermill, CI, many calls at once).

It is the page's half of the kernel <-> page contract (``protocol.json``), written in Python:
the session core posts it the same messages it posts a browser (``connect``, ``send``,
``play``, ``stop_clip``, ``probe``, ``disconnect``) and it answers with the same ones
(``events`` batches of client / server / local records, ``state``, ``recording``,
``probe_reply``). So every feature (waits, clips, tools, recordings, scripts, judges) runs on it
unchanged, with the same log columns and figures as in a page.

Inworld documents the transport (``protocol.md``): ``wss://<host>/api/v1/realtime/session?
key=<a session id we choose>&protocol=realtime``, ``Authorization: Basic <key>``, audio as
base64 PCM16 mono 24 kHz in both directions.

- The microphone streams in real time, 100 ms a chunk, as a phone line does: silence between
  clips (server VAD ends a turn on the silence it hears), a ``say()`` clip resampled to 24 kHz
  when one plays; with ``mic=False`` (no microphone: typed turns) nothing streams but a clip
  and the silence after it until the service takes the turn, as a person picks up a handset
  to speak and puts it down. Its chunks are media,
  as RTP is on a page: they are not logged (the recording keeps them).
- The speaker "plays" the agent's audio deltas on the same sample clock from the moment the
  first arrives, so what the page measures has a kernel twin: ``audio.audible`` (the reply
  first heard), ``speaker.started`` / ``speaker.stopped`` (where WebRTC has the service's
  ``output_audio_buffer.*``), and a stop (``response.cancel``, ``output_audio_buffer.clear``
  or the service's ``speech_started`` while it plays) cuts the reply and sends
  ``conversation.item.truncate`` with the milliseconds heard, as the OpenAI Agents SDK does.
  ``output_audio_buffer.clear`` is WebRTC's own: it is not sent here. Audio deltas are logged
  without their audio (``delta`` becomes ``delta_bytes``); the recording keeps it.
- A socket that drops mid-call reconnects once and replays the session; a second drop fails
  the call. A 401 at the handshake is retried once with the other auth scheme.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import math
import time
import uuid
import wave
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import _bridge as B
from . import _vocab as V
from ._provider import AUTH_SCHEMES, AuthFallback
from ._signalling import running_loop as _running_loop

if TYPE_CHECKING:
    from ._provider import Provider
    from ._sideband import Sideband

RATE = 24000  # the service's PCM16 rate, both ways
MIC_CHUNK_MS = 100  # what Inworld's examples send per input_audio_buffer.append
TICK_MS = 20  # the media clock's step: the speaker's events are this late at most
# With mic=False the line is open only while a clip plays and after it, until the service
# commits the turn or this long has passed: the silence server VAD needs to end the turn.
LINE_TAIL_S = 5
SESSION_PATH = "/api/v1/realtime/session"
PAGE = "kernel"  # this call's page id in the log (its records' page)
AUDIBLE_RMS = 0.01  # the page's own level for "heard" (about -40 dBFS), per 10 ms frame
# How long connect waits for the service's session.created before it calls the URL wrong.
CREATED_TIMEOUT_S = 10.0
Deliver = Callable[[dict[str, Any], "list[bytes] | None"], None]


def websocket_url(base_url: str, session_id: str) -> str:
    """Inworld's WebSocket for a session.

    ``wss://<host>/api/v1/realtime/session?key=<id>& protocol=realtime`` (``ws://`` for an http base
    URL, as the emulator's).
    """
    parts = urlsplit(base_url.rstrip("/"))
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise ValueError(f"base_url must be an http(s):// URL, not {base_url!r}")
    scheme = "wss" if parts.scheme in ("https", "wss") else "ws"
    return f"{scheme}://{parts.netloc}{SESSION_PATH}?key={session_id}&protocol=realtime"


def now_ms() -> float:
    return time.time() * 1000.0


# -- audio, with the standard library alone (numpy is an extra) ---------------------------------


def decode_wav(data: bytes) -> array:
    """PCM16 mono samples at 24 kHz from a WAV file (8/16/32-bit PCM, any rate, any channels)."""
    with wave.open(io.BytesIO(data)) as wav:
        channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    if width == 2:
        samples = array("h", raw[: len(raw) // 2 * 2])
    elif width == 1:
        samples = array("h", ((b - 128) << 8 for b in raw))
    elif width == 4:
        samples = array("h", (v >> 16 for v in array("i", raw[: len(raw) // 4 * 4])))
    else:
        raise ValueError(f"a {8 * width}-bit WAV; the kernel's microphone plays 8/16/32-bit PCM")
    if channels > 1:  # the first channel, as a mono microphone hears it
        samples = samples[::channels]
    return resample(samples, rate)


def decode_other(data: bytes) -> array:
    """Any other audio file, through PyAV (installed with the emulator extra)."""
    try:
        import av
    except ImportError:
        raise ValueError(
            "the kernel's microphone plays WAV files as they are; other formats need PyAV "
            "(pip install 'realtime-widget[emulator]') or a WAV"
        ) from None
    out = array("h")
    with av.open(io.BytesIO(data)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        for frame in container.decode(audio=0):
            for part in resampler.resample(frame):
                out.frombytes(bytes(part.planes[0])[: part.samples * 2])
    return out


def resample(samples: array, rate: int) -> array:
    """Linear interpolation to 24 kHz (speech into a 24 kHz line: enough, and dependency-free)."""
    if rate == RATE or not samples:
        return samples
    n = max(1, round(len(samples) * RATE / rate))
    step = (len(samples) - 1) / max(1, n - 1)
    out = array("h", bytes(2 * n))
    last = len(samples) - 1
    for i in range(n):
        x = i * step
        j = int(x)
        frac = x - j
        a = samples[j]
        b = samples[j + 1] if j < last else a
        out[i] = int(a + (b - a) * frac)
    return out


def rms(samples: array) -> float:
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples)) / 32768.0


class _Clip:
    """A ``say()`` clip on the microphone: its samples and where in the stream it plays."""

    def __init__(self, clip_id: str, source: str, samples: array, not_before: int) -> None:
        self.clip_id = clip_id
        self.source = source
        self.samples = samples
        # the stream sample it arrived at: a chunk streamed late (a busy loop) never carries a
        # clip into the past, so say.started and the recording's onset agree to the sample
        self.not_before = not_before
        self.start: int | None = None  # the stream sample its first sample went out at

    @property
    def duration_ms(self) -> float:
        return round(len(self.samples) * 1000.0 / RATE, 1)


class _Reply:
    """One reply's audio on the speaker: where it starts on the sample clock, what arrived."""

    def __init__(self, response_id: str, item_id: str, start: int) -> None:
        self.response_id = response_id
        self.item_id = item_id
        self.start = start  # the stream sample its first sample plays at
        self.pcm = array("h")
        self.done = False  # the service said its audio is complete
        self.heard = False  # audio.audible was recorded
        self.cut_at: int | None = None  # the stream sample a stop cut it at

    @property
    def end(self) -> int:
        end = self.start + len(self.pcm)
        return end if self.cut_at is None else min(end, self.cut_at)


class KernelCall:
    """The page's half of protocol.json, held by the kernel over the service's WebSocket."""

    kind = "websocket"
    no_page_words: str | None = None  # the kernel always takes up its own calls

    def __init__(
        self,
        provider: Provider,
        to_kernel: Deliver,
        *,
        wants_record: Callable[[], bool],
        auth_scheme: str = "Basic",
        interrupts: Callable[[], bool] = lambda: True,
        session_now: Callable[[], dict[str, Any]],
    ) -> None:
        self._provider = provider
        self._to_kernel = to_kernel  # the session's inbox, as if the page had sent it
        self._wants_record = wants_record
        self._interrupts = interrupts  # the session's turn_detection.interrupt_response
        # the full session.update as the session's fields say now: what a reconnect replays
        self._session_now = session_now
        self.auth_scheme = auth_scheme  # the scheme in use (a 401 switches it, once)
        self.refused_status: int | None = None  # HTTP status of the last refused handshake
        self.session_id: str | None = None  # the id we chose for the current socket
        self.url: str | None = None
        self._call = 0
        self._socket: Sideband | None = None
        self._task: asyncio.Task[None] | None = None
        self._clock_task: asyncio.Task[None] | None = None
        self._seq = 0
        self._batch: list[dict[str, Any]] = []
        self._flush_scheduled = False
        self._mic = True
        self._created = asyncio.Event()
        # the media clock: stream sample n is at epoch ms _t0 + n / 24
        self._t0 = 0.0
        self._sent = 0  # microphone samples streamed so far
        self._line_until = 0  # mic=False: the line stays open until this sample
        self._clips: list[_Clip] = []
        self._parts: dict[str, list[bytes]] = {}  # clip id -> chunks so far
        self._replies: list[_Reply] = []
        self._recording: dict[str, Any] | None = None  # {seq, t0, frames, at}
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the call lives on
        self._opening = False  # the handshake is under way (its refusals are read there)
        self._dropped = ""  # why the socket last dropped (a reconnect says so)
        self._closed_task: asyncio.Task[None] | None = None  # the socket's closing handshake

    # -- what the session posts ----------------------------------------------------------------

    def deliver(self, message: dict[str, Any], buffers: list[bytes] | None) -> None:
        """One message the session core posts to whatever holds the call.

        It may come from any thread: the call lives on the loop it was connected on.
        """
        loop = self._loop
        if loop is not None and _running_loop() is not loop:
            with contextlib.suppress(RuntimeError):  # a closed loop: the call is gone with it
                loop.call_soon_threadsafe(self._take, message, buffers)
            return
        if loop is None and message.get("kind") == B.CONNECT:
            self._loop = _running_loop()
            if self._loop is None:
                raise RuntimeError(
                    "a call the kernel holds runs on an event loop: connect from a notebook "
                    "cell or from async code"
                )
        self._take(message, buffers)

    def _take(self, message: dict[str, Any], buffers: list[bytes] | None) -> None:
        kind = message.get("kind")
        if kind == B.CONNECT:
            self._connect(message)
        elif kind == B.SEND:
            if message.get("call") == self._call:
                self._send(list(message.get("events") or []))
        elif kind == B.DISCONNECT:
            if message.get("call") == self._call:
                self._disconnect("local")
        elif kind == B.PLAY:
            self._play(message, buffers)
        elif kind == B.STOP_CLIP:
            self._stop_clip(str(message.get("clip_id")))
        elif kind == B.PROBE:
            data = buffers[0] if buffers else b""
            self._answer(
                B.page_message(
                    B.PROBE_REPLY,
                    page=PAGE,
                    probe_id=message.get("probe_id"),
                    buffers=1,
                    bytes=len(data),
                    b64="",
                ),
                [data],
            )
        # shown (a view's copy of the sideband's events): no view here

    def close(self) -> None:
        """The session is closing: end the call now, without waiting."""
        if not (self._call and self._socket is not None):
            return
        if self._loop is not None and _running_loop() is self._loop:
            self._disconnect("local")
        elif self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._disconnect, "local")

    async def wait_closed(self, timeout: float = 2.0) -> None:
        """Until the socket's closing handshake is over (bounded)."""
        task = self._closed_task
        if task is not None and not task.done():
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(task), timeout)

    # -- records and reports, as a page sends them -----------------------------------------------

    def _answer(self, message: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        self._to_kernel(message, buffers)

    def _record(self, direction: str, event: dict[str, Any], t_ms: float | None = None) -> None:
        self._batch.append(
            {
                "seq": self._seq,
                "dir": direction,
                "t_ms": now_ms() if t_ms is None else t_ms,
                "event": event,
            }
        )
        self._seq += 1
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._batch = self._batch, []
        if batch:
            self._answer(B.page_message(B.EVENTS, call=self._call, page=PAGE, records=batch))

    def _state(self, state: str, detail: str = "") -> None:
        self._flush()  # what happened before goes in first
        self._answer(
            B.page_message(B.STATE, call=self._call, page=PAGE, state=state, detail=detail)
        )

    # -- the socket ---------------------------------------------------------------------------

    def _connect(self, message: dict[str, Any]) -> None:
        if self._socket is not None:
            self._disconnect("local")
        self._call = int(message["call"])
        first = message.get("session_update")
        self._mic = bool(message.get("mic", True))
        self._closing = False
        self._record(
            "local",
            {"type": "call.start", "call": self._call, "mic": self._mic, "transport": "websocket"},
        )
        events = [first] if first else []  # the first session.update, then what was queued
        events += message.get("queued") or []
        assert self._loop is not None
        self._task = self._loop.create_task(self._open(self._call, events))

    async def _open(self, call: int, queued: list[dict[str, Any]]) -> None:
        self._created = asyncio.Event()
        self._opening = True
        try:
            opened = await self._handshake(call)
        finally:
            self._opening = False
        if not opened:
            return
        self._record(
            "local", {"type": "channel.open", "label": "websocket", "session_id": self.session_id}
        )
        self._state("connected")
        self._send(queued)
        self._start_clock()
        try:
            await asyncio.wait_for(self._created.wait(), CREATED_TIMEOUT_S)
        except asyncio.TimeoutError:
            if call == self._call and not self._closing:
                self._fail(
                    call,
                    f"{self._safe_url()} opened a WebSocket but sent no session.created within "
                    f"{CREATED_TIMEOUT_S:g} s: is base_url a realtime service?",
                )

    async def _handshake(self, call: int) -> bool:
        """Open the socket (a 401 retried once with the other scheme); False when refused."""
        from ._sideband import Sideband

        refused = self.auth_scheme
        for attempt in (1, 2):
            self.session_id = str(uuid.uuid4())
            self.url = websocket_url(self._provider.base_url, self.session_id)
            socket = Sideband(
                self.url,
                self._provider.authorization(self.auth_scheme),
                on_event=lambda ev, t: self._server(call, ev, t),
                on_state=lambda state, why: self._socket_state(call, state, why),
                on_garbage=lambda raw: self._record(
                    "local", {"type": "parse_error", "error": "not a JSON object", "raw": raw}
                ),
                open_timeout=self._provider.timeout,
                early_close_s=0.0,
                what="realtime WebSocket",
            )
            self._socket = socket
            if await socket.start():
                if attempt == 2:
                    fallback = AuthFallback(
                        refused=refused, used=self.auth_scheme, path=SESSION_PATH
                    )
                    self._record("local", fallback.record())
                return True
            self._socket = None
            self.refused_status = socket.refused_status
            if call != self._call or self._closing:
                return False
            if attempt == 1 and socket.refused_status == 401 and self.auth_scheme in AUTH_SCHEMES:
                refused = self.auth_scheme
                self.auth_scheme = AUTH_SCHEMES[1 - AUTH_SCHEMES.index(refused)]
                continue
            self._fail(call, self._refusal(socket.reason, socket.refused_status, attempt))
            return False
        return False

    def _refusal(self, reason: str, status: int | None, attempts: int) -> str:
        where = self._safe_url()
        if status in (401, 403):
            first = AUTH_SCHEMES[1 - AUTH_SCHEMES.index(self.auth_scheme)]
            tried = (
                f"auth schemes tried: {first!r} and {self.auth_scheme!r}"
                if attempts == 2
                else f"auth scheme {self.auth_scheme!r}"
            )
            return (
                f"The service refused the API key (HTTP {status}) at {where}. Check api_key / "
                f"INWORLD_API_KEY and the auth scheme ({tried})."
            )
        if status == 429:
            return (
                f"The service is refusing new sessions (HTTP 429) at {where}: a concurrency or "
                "rate limit. Connect again in a moment."
            )
        return f"Could not open the realtime WebSocket at {where}: {reason}"

    def _safe_url(self) -> str:
        url = self.url or ""
        return url.split("?", 1)[0]  # the session id is ours, but a URL reads better bare

    def _socket_state(self, call: int, state: str, reason: str) -> None:
        if call != self._call or self._closing or self._opening:
            return  # (while it opens, _open reads the outcome itself)
        if state == "reconnecting":
            self._dropped = reason
            self._record("local", {"type": "socket.reconnecting", "reason": reason})
        elif state == "open" and reason == "reconnected":
            # A fresh socket is a fresh session at the service: the session goes again first,
            # as the session's fields say now (live edits included)
            if self._socket is not None:
                update = self._session_now()
                self._socket.send_first([update])
                self._record("client", update)
            self._record("local", {"type": "socket.reconnected", "reason": self._dropped})
        elif state == "failed":
            self._fail(call, f"The realtime WebSocket failed: {reason}")
        elif state == "closed":
            self._record("local", {"type": "channel.close", "by": "remote", "reason": reason})
            self._end(call, "disconnected", f"The service ended the session ({reason}).")

    def _fail(self, call: int, words: str) -> None:
        self._record("local", {"type": "call.failed", "detail": words})
        self._end(call, "failed", words)

    def _end(self, call: int, state: str, detail: str) -> None:
        self._stop_media()
        socket, self._socket = self._socket, None
        self._closing = True
        if socket is not None:
            assert self._loop is not None
            self._closed_task = self._loop.create_task(socket.close())
        if call == self._call:
            self._state(state, detail)

    def _disconnect(self, by: str) -> None:
        if self._closing and self._socket is None:
            return
        self._record("local", {"type": "channel.close", "by": by})
        self._end(self._call, "disconnected", "")
        task = self._task
        if task is not None and not task.done():
            task.cancel()

    # -- client events ---------------------------------------------------------------------------

    def _send(self, events: list[dict[str, Any]]) -> None:
        socket = self._socket
        for event in events:
            etype = event.get("type")
            if etype != V.AUDIO_BUFFER_CLEAR:  # WebRTC's own: here the speaker stops itself
                if socket is None or not socket.send([event]):
                    self._record(
                        "local",
                        {"type": "send.unsent", "reason": "the socket is not open",
                         "events": [event]},
                    )  # fmt: skip
                    continue
                self._record("client", event)
            if etype in (V.RESPONSE_CANCEL, V.AUDIO_BUFFER_CLEAR):
                # a stop: the reply is cut to what was heard before anything after it is asked
                self._cut("cleared")

    # -- server events -------------------------------------------------------------------------

    def _server(self, call: int, event: dict[str, Any], t_ms: float) -> None:
        if call != self._call:
            return
        etype = V.canonical(event.get("type"))
        if etype == "session.created":
            self._created.set()
        if etype == V.OUTPUT_AUDIO_DELTA:
            delta = event.get("delta")
            pcm = b""
            if isinstance(delta, str):
                with contextlib.suppress(ValueError):
                    pcm = base64.b64decode(delta)
            logged = {k: v for k, v in event.items() if k != "delta"}
            logged["delta_bytes"] = len(pcm)
            self._record("server", logged, t_ms)
            self._audio(event, pcm, t_ms)
            return
        self._record("server", event, t_ms)
        if etype in (V.OUTPUT_AUDIO_DONE, V.RESPONSE_DONE):
            rid = V.text(event.get("response_id")) or V.text(V.obj(event.get("response")).get("id"))
            for reply in self._replies:
                if rid is None or reply.response_id == rid:
                    reply.done = True
        elif etype == V.SPEECH_STARTED and self._interrupts():
            self._cut("interrupted")
        elif etype == "input_audio_buffer.committed" and not self._clips:
            self._line_until = 0  # the turn is in: a mic=False line closes

    # -- the media clock: microphone out, speaker in, recording ----------------------------------

    def _start_clock(self) -> None:
        self._t0 = now_ms()
        self._sent = 0
        assert self._loop is not None
        self._clock_task = self._loop.create_task(self._run_clock())

    def _sample_now(self) -> int:
        return max(0, int((now_ms() - self._t0) * RATE / 1000.0))

    def _t_of(self, sample: int) -> float:
        return self._t0 + sample * 1000.0 / RATE

    async def _run_clock(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        chunk = RATE * MIC_CHUNK_MS // 1000
        tick = 0
        try:
            while True:
                tick += 1
                await asyncio.sleep(max(0.0, start + tick * TICK_MS / 1000.0 - loop.time()))
                now = self._sample_now()
                self._speaker_events(now)
                while now - self._sent >= chunk:  # the next 100 ms of microphone, now recorded
                    self._mic_chunk(self._sent, chunk)
                    self._sent += chunk
        except asyncio.CancelledError:
            return

    def _mic_chunk(self, at: int, n: int) -> None:
        out = array("h", bytes(2 * n))
        playing = bool(self._clips)
        self._clip_into(out, at)
        if playing:  # a clip keeps the line open a while after it ends (see _line_until)
            self._line_until = at + n + LINE_TAIL_S * RATE
        line = self._mic or playing or at < self._line_until
        if line and self._socket is not None:
            self._socket.send(
                [
                    {
                        "type": "input_audio_buffer.append",
                        "audio": base64.b64encode(out.tobytes()).decode("ascii"),
                    }
                ]
            )
        self._record_chunk(at, out)

    def _clip_into(self, out: array, at: int) -> None:
        """The clips playing in [at, at + len(out)), one after another, written into ``out``."""
        pos = 0
        while pos < len(out) and self._clips:
            clip = self._clips[0]
            if clip.start is None:
                begin = max(at + pos, clip.not_before)
                if begin >= at + len(out):
                    return  # it starts in a later chunk
                pos = begin - at
                clip.start = begin
                self._record(
                    "local",
                    {
                        "type": "say.started",
                        "clip_id": clip.clip_id,
                        "duration_ms": clip.duration_ms,
                        "source": clip.source,
                    },
                    self._t_of(clip.start),
                )
            done = at + pos - clip.start
            take = min(len(out) - pos, len(clip.samples) - done)
            out[pos : pos + take] = clip.samples[done : done + take]
            pos += take
            if done + take >= len(clip.samples):
                self._clips.pop(0)
                end = clip.start + len(clip.samples)
                self._record(
                    "local",
                    {
                        "type": "say.ended",
                        "clip_id": clip.clip_id,
                        "duration_ms": clip.duration_ms,
                        "stopped": False,
                    },
                    self._t_of(end),
                )

    def _play(self, message: dict[str, Any], buffers: list[bytes] | None) -> None:
        if message.get("call") != self._call or self._socket is None:
            return  # the session keeps clips for the next call; this message is for an old one
        clip_id = str(message.get("clip_id"))
        data = buffers[0] if buffers else base64.b64decode(message.get("b64") or "")
        parts = self._parts.setdefault(clip_id, [])
        parts.append(data)
        last = message.get("last")
        if not (last is True or (isinstance(last, int) and message.get("index") == last)):
            return
        whole = b"".join(self._parts.pop(clip_id))
        try:
            samples = decode_wav(whole) if whole[:4] == b"RIFF" else decode_other(whole)
        except Exception as exc:
            self._record(
                "local",
                {
                    "type": "say.error",
                    "clip_id": clip_id,
                    "message": f"{type(exc).__name__}: {exc}",
                },
            )
            return
        self._clips.append(
            _Clip(clip_id, str(message.get("source", "")), samples, self._sample_now())
        )

    def _stop_clip(self, clip_id: str) -> None:
        for clip in list(self._clips):
            if clip.clip_id == clip_id:
                self._clips.remove(clip)
                self._clip_stopped(clip)
        self._parts.pop(clip_id, None)

    def _clip_stopped(self, clip: _Clip) -> None:
        played = 0.0 if clip.start is None else (self._sent - clip.start) * 1000.0 / RATE
        self._record(
            "local",
            {
                "type": "say.ended",
                "clip_id": clip.clip_id,
                "duration_ms": round(max(0.0, played), 1),
                "stopped": True,
            },
        )

    # -- speaker ---------------------------------------------------------------------------------

    def _audio(self, event: dict[str, Any], pcm: bytes, t_ms: float) -> None:
        rid = V.text(event.get("response_id")) or "?"
        item = V.text(event.get("item_id")) or ""
        reply = self._replies[-1] if self._replies else None
        if reply is None or reply.item_id != item or reply.cut_at is not None:
            arrived = max(0, int((t_ms - self._t0) * RATE / 1000.0))
            start = max(arrived, max((r.end for r in self._replies), default=0))
            reply = _Reply(rid, item, start)
            self._replies.append(reply)
            self._record(
                "local",
                {"type": V.SPEAKER_STARTED, "response_id": rid, "item_id": item},
                self._t_of(start),
            )
        elif reply.end < self._sample_now():  # ran dry: the rest plays from now
            reply.pcm.extend(array("h", bytes(2 * (self._sample_now() - reply.end))))
        samples = array("h")
        samples.frombytes(pcm[: len(pcm) // 2 * 2])
        if not reply.heard:
            self._audible(reply, len(reply.pcm), samples)
        reply.pcm.extend(samples)

    def _audible(self, reply: _Reply, offset: int, samples: array) -> None:
        frame = RATE // 100  # 10 ms
        for i in range(0, len(samples), frame):
            level = rms(samples[i : i + frame])
            if level > AUDIBLE_RMS:
                reply.heard = True
                at = reply.start + offset + i
                self._record(
                    "local",
                    {
                        "type": "audio.audible",
                        "response_id": reply.response_id,
                        "rms": round(level, 4),
                    },
                    self._t_of(at),
                )
                return

    def _speaker_events(self, now: int) -> None:
        for reply in list(self._replies):
            if reply.done and reply.end <= now:
                self._replies.remove(reply)
                played = round(len(reply.pcm) * 1000.0 / RATE, 1)
                self._stopped(reply, "done", played, self._t_of(reply.end))

    def _stopped(
        self, reply: _Reply, reason: str, played_ms: float, t_ms: float | None = None
    ) -> None:
        """The speaker's record of a reply's sound ending: played out, cut, or hung up."""
        self._record(
            "local",
            {
                "type": V.SPEAKER_STOPPED,
                "response_id": reply.response_id,
                "item_id": reply.item_id,
                "reason": reason,
                "played_ms": played_ms,
            },
            t_ms,
        )

    def _cut(self, reason: str) -> None:
        """A stop: the reply playing now ends here, and the service hears how much was heard."""
        now = self._sample_now()
        for reply in list(self._replies):
            if reply.start > now:
                self._replies.remove(reply)  # queued behind the one playing: never heard
                continue
            if reply.end <= now and reply.done:
                continue
            reply.cut_at = now
            heard_ms = round((min(now, reply.start + len(reply.pcm)) - reply.start) * 1000 / RATE)
            self._replies.remove(reply)
            self._stopped(reply, reason, heard_ms)
            if reply.item_id and self._socket is not None:
                truncate = {
                    "type": "conversation.item.truncate",
                    "item_id": reply.item_id,
                    "content_index": 0,
                    "audio_end_ms": max(0, heard_ms),
                }
                if self._socket.send([truncate]):
                    self._record("client", truncate)

    def _heard(self, at: int, n: int) -> array:
        """What the speaker played in [at, at + n)."""
        out = array("h", bytes(2 * n))
        for reply in self._replies:
            lo, hi = max(at, reply.start), min(at + n, reply.end)
            if lo < hi:
                out[lo - at : hi - at] = reply.pcm[lo - reply.start : hi - reply.start]
        return out

    # -- recording -----------------------------------------------------------------------------

    def _record_chunk(self, at: int, mic: array) -> None:
        wanted = self._wants_record()
        rec = self._recording
        if wanted and rec is None:
            rec = self._recording = {"seq": 0, "frames": 0, "t0": self._t_of(at)}
            self._record(
                "local",
                {"type": "recording.started", "sample_rate": RATE, "t0_ms": rec["t0"]},
                rec["t0"],
            )
        elif not wanted and rec is not None:
            self._stop_recording()
            return
        if rec is None:
            return
        heard = self._heard(at, len(mic))
        both = array("h", bytes(4 * len(mic)))
        both[0::2] = mic
        both[1::2] = heard
        self._flush()  # recording.started (and what came before) reaches the session first
        self._answer(
            B.page_message(
                B.RECORDING,
                call=self._call,
                page=PAGE,
                seq=rec["seq"],
                t0_ms=self._t_of(at),
                sample_rate=RATE,
                frames=len(mic),
                b64="",
            ),
            [both.tobytes()],
        )
        rec["seq"] += 1
        rec["frames"] += len(mic)

    def _stop_recording(self) -> None:
        rec, self._recording = self._recording, None
        if rec is not None:
            self._record("local", {"type": "recording.stopped", "frames": rec["frames"]})

    def _stop_media(self) -> None:
        task, self._clock_task = self._clock_task, None
        if task is not None:
            task.cancel()
        for clip in self._clips:
            self._clip_stopped(clip)
        self._clips.clear()
        self._parts.clear()
        for reply in self._replies:
            if reply.start <= self._sample_now():
                heard = (min(self._sample_now(), reply.end) - reply.start) * 1000.0 / RATE
                self._stopped(reply, "hung_up", round(heard, 1))
        self._replies.clear()
        self._stop_recording()
