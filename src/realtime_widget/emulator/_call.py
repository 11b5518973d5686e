"""One emulated call: a peer connection, its ``oai-events`` channel, and the parts of the call.

Or one WebSocket session (``transport="websocket"``): no peer connection; a
``_socket.SocketChannel`` stands in for the data channel, ``input_audio_buffer.append`` feeds the
mic, and the voice goes out as ``response.output_audio.delta`` events (``_socket.py``). The rest,
the turn engine included, is the same.

All state lives on the emulator's event loop. Client events are processed one at a time, in
arrival order, from a queue (aiortc would otherwise run async handlers concurrently), by the
handlers in ``_handlers.py``. Server events go through :meth:`EmulatedCall.emit`, the single
place that stamps ``event_id``, records the event and applies the fault knobs.

The parts: ``playback`` (the voice track, ``_playback.py``), ``turns`` (the mic, VAD and voice
turns, ``_turns.py``), the ``active`` response (``_response.py``, which sees the call only
through its narrow ``ResponseHost`` interface), ``session`` and ``conversation``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import numpy as np
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from ._audio import Sound, Utterance
from ._conversation import Conversation
from ._errors import ClientError
from ._handlers import HANDLERS
from ._ids import new_id
from ._knobs import Knobs
from ._playback import Playback
from ._ratelimits import RateLimits
from ._record import EventRecord
from ._responder import Responder, Transcriber
from ._response import ResponseParams, ResponseRunner
from ._session_state import default_session
from ._socket import AudioIn, SocketChannel, SocketPlayback
from ._turns import TurnTaking

log = logging.getLogger(__name__)

CHANNEL_LABEL = "oai-events"
MALFORMED_MESSAGE = '{"type": "response.output_text.delta", "delta": "unterminated'
# Inworld's non-standard message when a session runs out of resources (no "type", no event_id).
# Its official pages ignore it and go on; with exhaust_ends_call the call ends after it.
EXHAUSTED_MESSAGE = {
    "errorType": "SESSION_RESOURCES_EXHAUSTED",
    "message": "Session resources exhausted.",
}
EXHAUSTED_CLOSING_MESSAGE = {
    "errorType": "SESSION_RESOURCES_EXHAUSTED",
    "message": "Session resources exhausted: the session has been closed.",
}
FAULTS_KEPT = 100  # internal errors are counted in the log; the snapshot keeps the newest
TRANSPORTS = ("webrtc", "websocket")


class Channel(Protocol):
    """Where the call's events go: the ``oai-events`` data channel or a ``SocketChannel``."""

    @property
    def readyState(self) -> str: ...  # the data channel's own (camelCase) name

    def send(self, data: str) -> None: ...

    def close(self) -> None: ...


class EmulatedCall:
    def __init__(
        self,
        knobs: Callable[[], Knobs],
        responder: Responder,
        transcriber: Transcriber | None,
        transport: str = "webrtc",
        key: str | None = None,
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}")
        self.id = str(uuid.uuid4())  # Inworld's call ids are UUIDs
        self.transport = transport
        self.key = key  # a WebSocket session's client-chosen id (Inworld's ?key=)
        self.ended_at: float | None = None
        self.end_reason: str | None = None
        # The call's sidebands: each takes every server event's wire text (see _server.py).
        self.sidebands: list[Callable[[str], None]] = []
        self.sideband_in: deque[str] = deque(maxlen=FAULTS_KEPT)  # client event types they sent
        self.created_at = time.time()
        self.created_monotonic = time.monotonic()
        self.state = "connecting"
        self._knobs = knobs
        self.responder = responder
        self.transcriber = transcriber  # None: the built-in recognizer (the stt_model knob)
        self.pc = RTCPeerConnection() if transport == "webrtc" else None
        self.session = default_session()
        self.conversation = Conversation()
        kept = knobs().events_kept
        self.events_in = EventRecord(kept)
        self.events_out = EventRecord(kept)
        self.faults: deque[str] = deque(maxlen=FAULTS_KEPT)
        self.playback = Playback(self) if transport == "webrtc" else SocketPlayback(self)
        self.turns = TurnTaking(self)
        self.mic = self.turns.mic
        # A WebSocket session's appended audio, into the same mic pipeline as an RTP track.
        self.audio_in = (
            AudioIn(self.mic, lambda: self.session["audio"]["input"].get("format") or {})
            if transport == "websocket"
            else None
        )
        self.channel: Channel | None = None
        self.active: ResponseRunner | None = None
        self.input_audio_s: dict[str, float] = {}  # user audio item id -> seconds (usage)
        self.rate_limits = RateLimits()
        self._sent = 0  # server events sent (the fault knobs count these)
        self._malformed_sent = False
        self._exhausted = False
        self._exhaust_sent = False
        self._inbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = asyncio.Event()
        self.on_closed: Callable[[EmulatedCall], None] | None = None  # the server's hook

    @property
    def knobs(self) -> Knobs:
        return self._knobs()

    # --- lifecycle -----------------------------------------------------------------------
    async def accept(self, offer_sdp: str) -> str:
        """Apply the browser's offer; return our answer (candidates included, no trickle)."""
        pc = self.pc
        if pc is None:
            raise RuntimeError("a WebSocket session takes no SDP offer")
        pc.on("datachannel", self._on_datachannel)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_connection_state)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        pc.addTrack(self.playback.track)
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    def open_socket(self, channel: SocketChannel) -> None:
        """A WebSocket session's socket is open: it is the call's channel from now on."""
        self._on_channel_open_with(channel)

    def client_message(self, raw: str | bytes) -> None:
        """A client event from a WebSocket session's socket (its data channel)."""
        self._inbox.put_nowait(raw)

    @property
    def audio_events(self) -> bool:
        """True when the voice goes out as ``response.output_audio.delta`` events."""
        return isinstance(self.playback, SocketPlayback)

    @property
    def finished(self) -> bool:
        """True once the call is closing or closed (it never comes back)."""
        return self._closed.is_set()

    async def close(self, reason: str = "closed") -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self.ended_at, self.end_reason = time.time(), reason
        if self.state not in ("failed",):
            self.state = "closed"
        if self.on_closed is not None:
            self.on_closed(self)
        log.info("call %s closing: %s", self.id, reason)
        self.playback.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.mic.close()  # gives the speech VAD back (an RTP track's reader does so too)
        if self.pc is not None:
            await self.pc.close()
        channel = self.channel
        if isinstance(channel, SocketChannel):  # after what is queued; a knob may have closed it
            channel.close(1000, reason)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a background task owned by this call; its failure is logged, never raised."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: task failed", self.id, exc_info=task.exception())
            self.faults.append(f"internal error: {task.exception()!r}")

    def _on_connection_state(self) -> None:
        assert self.pc is not None
        state = self.pc.connectionState
        if state == "connected":
            self.state = "open" if self.channel else "connected"
        elif state in ("failed", "closed"):
            if state == "failed":
                self.state = "failed"
            self.spawn_detached(self.close(f"peer connection {state}"))

    def spawn_detached(self, coro: Coroutine[Any, Any, Any]) -> None:
        # Not tracked in _tasks: close() cancels those and must not cancel itself.
        asyncio.get_running_loop().create_task(coro)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self.spawn(self.mic.run(track))

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != CHANNEL_LABEL or self.channel is not None:
            log.warning("call %s: ignoring data channel %r", self.id, channel.label)
            return
        self.channel = channel
        channel.on("message", self._inbox.put_nowait)
        channel.on("close", self._on_channel_close)
        if channel.readyState == "open":
            self._on_channel_open()
        else:
            channel.on("open", self._on_channel_open)

    def _on_channel_open(self) -> None:
        assert self.channel is not None
        self._on_channel_open_with(self.channel)

    def _on_channel_open_with(self, channel: Channel) -> None:
        self.channel = channel
        self.state = "open"
        self.spawn(self._process_inbox())
        self._apply_fault_knobs()
        self.emit("session.created", session=self.session)
        if self.knobs.ping_interval_ms is not None:
            self.spawn(self._ping())

    async def _ping(self) -> None:
        """Inworld's keep-alive: ``{type: ping, event_id, timestamp}`` (epoch ms) on a timer."""
        while True:
            interval = self.knobs.ping_interval_ms
            if interval is None:  # turned off by configure()
                return
            await asyncio.sleep(interval / 1000)
            channel = self.channel
            if channel is None or channel.readyState != "open":
                return
            self.emit("ping", timestamp=int(time.time() * 1000))

    def _on_channel_close(self) -> None:
        if self.state == "open":
            self.state = "channel_closed"

    # --- sending -------------------------------------------------------------------------
    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        """Send one server event on the channel (if still open) and every sideband; record it."""
        event = {"type": type, "event_id": new_id("event"), **fields}
        text = json.dumps(event)
        channel = self.channel
        to_channel = channel is not None and channel.readyState == "open"
        if self._exhausted or not (to_channel or self.sidebands):
            return event
        if to_channel and channel is not None:
            channel.send(text)
        for send in list(self.sidebands):
            send(text)
        # Recorded as sent, decoded from the wire text: later edits to items cannot leak in.
        self.events_out.add(json.loads(text))
        self._sent += 1
        self._apply_fault_knobs()
        return event

    def error(self, err: ClientError, client_event: dict[str, Any] | None = None) -> None:
        body: dict[str, Any] = {"type": err.type, "code": err.code, "message": err.message}
        body["param"] = err.param
        body["event_id"] = (client_event or {}).get("event_id")
        self.emit("error", error=body)

    def _apply_fault_knobs(self) -> None:
        knobs, channel, sent = self.knobs, self.channel, self._sent
        if channel is None:
            return
        if knobs.malformed_after == sent and not self._malformed_sent:
            self._malformed_sent = True
            self.faults.append(f"malformed message after {sent} events")
            channel.send(MALFORMED_MESSAGE)
        # On a WebSocket session both close the socket (code 1011), which ends the session.
        socket = isinstance(channel, SocketChannel)
        if knobs.drop_channel_after == sent and channel.readyState == "open":
            self.faults.append(
                f"{'socket' if socket else 'data channel'} closed after {sent} events"
            )
            channel.close()
        if knobs.close_after == sent and not self._closed.is_set():
            self.faults.append(
                f"{'socket' if socket else 'peer connection'} closed after {sent} events"
            )
            if socket:  # with the fault's code (a data channel goes with its peer connection)
                channel.close()
            self.spawn_detached(self.close("close_after knob"))
        if knobs.exhaust_after == sent and not self._exhaust_sent and channel.readyState == "open":
            self._exhaust_sent = True
            ends = knobs.exhaust_ends_call
            how = "the call ends" if ends else "the call goes on"
            self.faults.append(f"session resources exhausted after {sent} events ({how})")
            text = json.dumps(EXHAUSTED_CLOSING_MESSAGE if ends else EXHAUSTED_MESSAGE)
            channel.send(text)
            self.events_out.add(json.loads(text))
            if ends:
                self._exhausted = True  # nothing more is sent on this call
                self.spawn_detached(self._close_exhausted(channel))

    async def _close_exhausted(self, channel: Channel) -> None:
        # Close the channel first: its stream reset follows the queued message, so the client
        # gets the message before the close. Then end the call.
        await asyncio.sleep(0)
        channel.close()
        for _ in range(50):
            if channel.readyState == "closed":
                break
            await asyncio.sleep(0.01)
        await self.close("SESSION_RESOURCES_EXHAUSTED")

    # --- receiving -----------------------------------------------------------------------
    def receive(self, raw: str | bytes) -> None:
        """A client event from a sideband: queued behind the channel's, handled in order."""
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            self.sideband_in.append(str(json.loads(raw).get("type")))
        self._inbox.put_nowait(raw)

    async def _process_inbox(self) -> None:
        while True:
            raw = await self._inbox.get()
            try:
                await self.handle(raw)
            except Exception:  # one bad event must never end the call
                log.exception("call %s: handling a client event failed", self.id)
                self.error(ClientError("internal_error", None, "Internal emulator error."))

    async def handle(self, raw: str | bytes) -> None:
        """Decode one data-channel message and run its handler."""
        try:
            event = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            self.events_in.add({"malformed": text[:2000]})
            self.error(ClientError("invalid_json", None, f"Invalid JSON in client event: {exc}"))
            return
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            self.events_in.add({"malformed": str(raw)[:2000]})
            self.error(
                ClientError(
                    "invalid_event", "type", "A client event must be an object with a type."
                )
            )
            return
        self.events_in.add(event)
        handler = HANDLERS.get(event["type"])
        if handler is None:
            self.error(
                ClientError(
                    "invalid_value", "type", f"Unknown or unsupported event type {event['type']!r}."
                ),
                event,
            )
            return
        try:
            await handler(self, event)
        except ClientError as err:
            self.error(err, event)

    # --- responses (the ResponseHost interface) ------------------------------------------
    def start_response(self, params: ResponseParams) -> ResponseRunner:
        runner = ResponseRunner(self, params)
        self.active = runner
        runner.task = self.spawn(runner.run())
        return runner

    def response_finished(self, runner: ResponseRunner) -> None:
        if self.active is runner:
            self.active = None

    async def play(
        self, response_id: str, item_id: str, sound: Sound | np.ndarray, text_chars: int = 0
    ) -> Utterance:
        return await self.playback.play(response_id, item_id, sound, text_chars)

    def stop_playback(self) -> bool:
        return self.playback.stop()

    def send_audio(self, utterance: Utterance, fields: dict[str, Any]) -> asyncio.Task[None] | None:
        playback = self.playback
        if isinstance(playback, SocketPlayback):
            return playback.send_audio(utterance, fields)
        return None  # the RTP track plays it

    def stop_audio(self, item_id: str) -> None:
        if isinstance(self.playback, SocketPlayback):
            self.playback.stop_sending(item_id)

    # --- snapshots -----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "created_at": self.created_at,
            "ended_at": self.ended_at,
            "end_reason": self.end_reason,
            "transport": self.transport,  # "webrtc" or "websocket"
            "key": self.key,  # a WebSocket session's ?key= (None for WebRTC and OpenAI's path)
            "sidebands": len(self.sidebands),
            "sideband_in": list(self.sideband_in),  # the types of the client events they sent
            # The newest events_kept of each direction; the counts cover every event.
            "events_in": copy.deepcopy(list(self.events_in.recent)),
            "events_out": copy.deepcopy(list(self.events_out.recent)),
            "events_in_count": self.events_in.count,
            "events_out_count": self.events_out.count,
            "events_out_by_type": dict(self.events_out.by_type),
            "session": copy.deepcopy(self.session),
            "items": [item["id"] for item in self.conversation.items],
            "faults": list(self.faults),
            "mic": self.mic.snapshot(),
            "audio_out": self.playback.snapshot(),
        }
