"""One emulated call: a peer connection, its ``oai-events`` channel, session and conversation.

All state lives on the emulator's event loop. Client events are processed one at a time, in
arrival order, from a queue (aiortc would otherwise run async handlers concurrently). Server
events go through :meth:`Call.emit`, the single place that stamps ``event_id``, records the
event and applies the fault knobs.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import numpy as np
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from ._audio import Utterance, VoiceTrack
from ._backchannel import PHRASE, BackchannelTurn, audio_deltas, backchannel_config
from ._conversation import Conversation, normalize_item
from ._errors import ClientError
from ._ids import new_id
from ._knobs import Knobs
from ._mic import MicMonitor, Segment
from ._ratelimits import RateLimits
from ._responder import Responder, Transcriber, TranscriptionRequest
from ._response import ResponseRunner, parse_response_params
from ._session import default_session, merge_session, validate_session_update
from ._vad import VadEvent, vad_params
from ._validate import string

log = logging.getLogger(__name__)

CHANNEL_LABEL = "oai-events"
MALFORMED_MESSAGE = '{"type": "response.output_text.delta", "delta": "unterminated'
# Inworld's non-standard message when a session runs out of resources (no "type", no event_id).
EXHAUSTED_MESSAGE = {
    "errorType": "SESSION_RESOURCES_EXHAUSTED",
    "message": "Session resources exhausted: the session has been closed.",
}


class Call:
    def __init__(
        self,
        knobs: Callable[[], Knobs],
        responder: Responder,
        transcriber: Transcriber,
    ) -> None:
        self.id = new_id("rtc")
        self.created_at = time.time()
        self.state = "connecting"
        self._knobs = knobs
        self.responder = responder
        self.transcriber = transcriber
        self.pc = RTCPeerConnection()
        self.session = default_session()
        self.conversation = Conversation()
        self.events_in: list[dict[str, Any]] = []
        self.events_out: list[dict[str, Any]] = []
        self.faults: list[str] = []
        self.voice = VoiceTrack()
        self.mic = MicMonitor(
            self._on_vad, vad_params(self._turn_detection), on_frame=self._on_mic_frame
        )
        self.channel: RTCDataChannel | None = None
        self.active: ResponseRunner | None = None
        self.audio_ms: dict[str, int] = {}  # assistant audio item id -> its length (truncate)
        self.chars_per_ms: dict[str, float] = {}  # ... -> text spoken per ms of its audio
        self.input_audio_s: dict[str, float] = {}  # user audio item id -> seconds (usage)
        self.rate_limits = RateLimits()
        self._sent = 0
        self._malformed_sent = False
        self._exhausted = False
        self._backchannel: BackchannelTurn | None = None
        self._idle_since_ms: float | None = None
        self._inbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._speech_item_id: str | None = None
        self._playing: Utterance | None = None
        self._playback_idle = asyncio.Event()
        self._playback_idle.set()
        # Held by one play() from its wait for silence until its utterance is registered, so
        # utterances never overlap however many responses queue up.
        self._playback_turn = asyncio.Lock()
        self._closed = asyncio.Event()
        self.on_closed: Callable[[Call], None] | None = None  # the server's bookkeeping hook

    @property
    def knobs(self) -> Knobs:
        return self._knobs()

    @property
    def _turn_detection(self) -> dict[str, Any] | None:
        td: dict[str, Any] | None = self.session["audio"]["input"]["turn_detection"]
        return td

    # --- lifecycle -----------------------------------------------------------------------
    async def accept(self, offer_sdp: str) -> str:
        """Apply the browser's offer; return our answer (candidates included, no trickle)."""
        pc = self.pc
        pc.on("datachannel", self._on_datachannel)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_connection_state)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        pc.addTrack(self.voice)
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    @property
    def finished(self) -> bool:
        """True once the call is closing or closed (it never comes back)."""
        return self._closed.is_set()

    async def close(self, reason: str = "closed") -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self.state not in ("failed",):
            self.state = "closed"
        if self.on_closed is not None:
            self.on_closed(self)
        log.info("call %s closing: %s", self.id, reason)
        self.voice.clear()
        self.voice.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()

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
        self.state = "open"
        self.spawn(self._process_inbox())
        self._apply_fault_knobs()
        self.emit("session.created", session=self.session)

    def _on_channel_close(self) -> None:
        if self.state == "open":
            self.state = "channel_closed"

    # --- sending -------------------------------------------------------------------------
    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        """Send one server event (if the channel is still open) and record it."""
        event = {"type": type, "event_id": new_id("event"), **fields}
        text = json.dumps(event)
        channel = self.channel
        if channel is None or channel.readyState != "open" or self._exhausted:
            return event
        channel.send(text)
        # Recorded as sent, decoded from the wire text: later edits to items cannot leak in.
        self.events_out.append(json.loads(text))
        self._sent += 1
        self._apply_fault_knobs()
        return event

    def error(self, err: ClientError, client_event: dict[str, Any] | None = None) -> None:
        body: dict[str, Any] = {"type": err.type, "code": err.code, "message": err.message}
        body["param"] = err.param
        body["event_id"] = (client_event or {}).get("event_id")
        self.emit("error", error=body)

    def _apply_fault_knobs(self) -> None:
        knobs, channel = self.knobs, self.channel
        if channel is None:
            return
        if knobs.malformed_after == self._sent and not self._malformed_sent:
            self._malformed_sent = True
            self.faults.append(f"malformed message after {self._sent} events")
            channel.send(MALFORMED_MESSAGE)
        if knobs.drop_channel_after == self._sent and channel.readyState == "open":
            self.faults.append(f"data channel closed after {self._sent} events")
            channel.close()
        if knobs.close_after == self._sent and not self._closed.is_set():
            self.faults.append(f"peer connection closed after {self._sent} events")
            self.spawn_detached(self.close("close_after knob"))
        if (
            knobs.exhaust_after == self._sent
            and not self._exhausted
            and channel.readyState == "open"
        ):
            self._exhausted = True  # nothing more is sent on this call
            self.faults.append(f"session resources exhausted after {self._sent} events")
            text = json.dumps(EXHAUSTED_MESSAGE)
            channel.send(text)
            self.events_out.append(json.loads(text))
            self.spawn_detached(self._close_exhausted(channel))

    async def _close_exhausted(self, channel: RTCDataChannel) -> None:
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
    async def _process_inbox(self) -> None:
        while True:
            raw = await self._inbox.get()
            try:
                await self._handle(raw)
            except Exception:  # one bad event must never end the call
                log.exception("call %s: handling a client event failed", self.id)
                self.error(ClientError("internal_error", None, "Internal emulator error."))

    async def _handle(self, raw: str | bytes) -> None:
        try:
            event = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            self.events_in.append({"malformed": text[:2000]})
            self.error(ClientError("invalid_json", None, f"Invalid JSON in client event: {exc}"))
            return
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            self.events_in.append({"malformed": str(raw)[:2000]})
            self.error(
                ClientError(
                    "invalid_event", "type", "A client event must be an object with a type."
                )
            )
            return
        self.events_in.append(event)
        handler = self._handlers.get(event["type"])
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

    # --- client event handlers -----------------------------------------------------------
    async def _session_update(self, event: dict[str, Any]) -> None:
        update = validate_session_update(self.session, event.get("session"))
        self.session = merge_session(self.session, update)
        self.mic.set_params(vad_params(self._turn_detection))
        self.emit("session.updated", session=self.session)

    async def _item_create(self, event: dict[str, Any]) -> None:
        item = normalize_item(event.get("item"))
        after = event.get("previous_item_id")
        if after is not None:
            string(after, "previous_item_id")
        previous = self.conversation.add(item, after)
        self.emit("conversation.item.added", item=item, previous_item_id=previous)
        self.emit("conversation.item.done", item=item, previous_item_id=previous)

    async def _item_retrieve(self, event: dict[str, Any]) -> None:
        item = self.conversation.get(string(event.get("item_id"), "item_id"))
        self.emit("conversation.item.retrieved", item=item)

    async def _item_truncate(self, event: dict[str, Any]) -> None:
        item_id = string(event.get("item_id"), "item_id")
        content_index = event.get("content_index", 0)
        audio_end_ms = event.get("audio_end_ms")
        self.conversation.truncate(
            item_id,
            content_index,
            audio_end_ms,
            self.audio_ms.get(item_id, 0),
            self.chars_per_ms.get(item_id),
        )
        if isinstance(audio_end_ms, int):
            self.audio_ms[item_id] = audio_end_ms  # the audio after the cut is gone
        self.emit(
            "conversation.item.truncated",
            item_id=item_id,
            content_index=content_index,
            audio_end_ms=audio_end_ms,
        )

    async def _item_delete(self, event: dict[str, Any]) -> None:
        item_id = string(event.get("item_id"), "item_id")
        self.conversation.delete(item_id)
        self.emit("conversation.item.deleted", item_id=item_id)

    async def _response_create(self, event: dict[str, Any]) -> None:
        if self.active is not None:
            raise ClientError(
                "conversation_already_has_active_response",
                None,
                f"Conversation already has an active response in progress: {self.active.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        params = parse_response_params(self.session, event.get("response"), self.conversation)
        self.start_response(params)

    async def _response_cancel(self, event: dict[str, Any]) -> None:
        wanted = event.get("response_id")
        active = self.active
        if active is None or (wanted is not None and wanted != active.id):
            raise ClientError(
                "response_cancel_not_active",
                "response_id" if wanted is not None else None,
                "Cancellation failed: no active response found.",
            )
        await active.cancel("client_cancelled")

    async def _output_audio_clear(self, event: dict[str, Any]) -> None:
        # Cutting the audio of a response still being generated ends that response too, like
        # response.cancel. With nothing playing (say response.cancel came first) it is a no-op.
        if self.active is not None:
            await self.active.cancel("client_cancelled")
        else:
            self.stop_playback()

    async def _input_commit(self, event: dict[str, Any]) -> None:
        if self._turn_detection is not None:
            raise ClientError(
                "invalid_value",
                None,
                "turn_detection is on, so the server commits turns itself; set "
                "session.audio.input.turn_detection to null to commit manually.",
            )
        segment = self.mic.take_manual_turn()
        if segment.duration_s < 0.1:
            raise ClientError(
                "input_audio_buffer_commit_empty",
                None,
                f"Error committing input audio buffer: buffer too small. Expected at least "
                f"100ms of audio, but buffer only has {segment.duration_s * 1000:.0f}ms.",
            )
        item_id = new_id("item")
        self._commit_turn(item_id, segment)

    async def _input_clear(self, event: dict[str, Any]) -> None:
        self.mic.clear_manual_turn()
        if self._turn_detection is not None:
            self.mic.set_params(None)
            self.mic.set_params(vad_params(self._turn_detection))
        self._speech_item_id = None
        self._backchannel = None
        self.emit("input_audio_buffer.cleared")

    async def _input_append(self, event: dict[str, Any]) -> None:
        raise ClientError(
            "invalid_value",
            "type",
            "input_audio_buffer.append is not used over WebRTC: send audio on the RTP track.",
        )

    _handlers: dict[str, Callable[[Call, dict[str, Any]], Awaitable[None]]] = {
        "session.update": _session_update,
        "conversation.item.create": _item_create,
        "conversation.item.retrieve": _item_retrieve,
        "conversation.item.truncate": _item_truncate,
        "conversation.item.delete": _item_delete,
        "response.create": _response_create,
        "response.cancel": _response_cancel,
        "output_audio_buffer.clear": _output_audio_clear,
        "input_audio_buffer.commit": _input_commit,
        "input_audio_buffer.clear": _input_clear,
        "input_audio_buffer.append": _input_append,
    }

    # --- responses and playback ----------------------------------------------------------
    def start_response(self, params: Any) -> ResponseRunner:
        runner = ResponseRunner(self, params)
        self.active = runner
        runner.task = self.spawn(runner.run())
        return runner

    def response_finished(self, runner: ResponseRunner) -> None:
        if self.active is runner:
            self.active = None

    async def play(
        self, response_id: str, item_id: str, pcm: Any, text_chars: int = 0
    ) -> Utterance:
        """Queue behind anything still playing, then start speaking ``pcm`` (which says
        ``text_chars`` characters of the item's transcript).

        Strictly one utterance at a time, in call order: only the holder of the playback turn
        waits for silence, and it claims the voice (clears ``_playback_idle``) before letting
        the next caller wait.
        """
        async with self._playback_turn:
            await self._playback_idle.wait()
            utterance = self.voice.play(response_id, pcm, item_id)
            self._playing = utterance
            self._playback_idle.clear()
        self.audio_ms[item_id] = int(utterance.duration_s * 1000)
        if utterance.duration_s > 0:
            self.chars_per_ms[item_id] = text_chars / (utterance.duration_s * 1000)
        self.emit("output_audio_buffer.started", response_id=response_id)
        self.spawn(self._watch_playback(utterance))
        return utterance

    async def _watch_playback(self, utterance: Utterance) -> None:
        await asyncio.sleep(max(0.0, utterance.end - time.monotonic()))
        if self._playing is utterance:
            self._playing = None
            self._playback_idle.set()
            self.emit("output_audio_buffer.stopped", response_id=utterance.response_id)

    def stop_playback(self) -> bool:
        """Cut the current audio; emits ``output_audio_buffer.cleared`` if anything played."""
        utterance = self._playing
        if utterance is None:
            return False
        self._playing = None
        self.voice.clear()
        self._playback_idle.set()
        self.emit("output_audio_buffer.cleared", response_id=utterance.response_id)
        return True

    @staticmethod
    def _played_ms(utterance: Utterance | None) -> int:
        if utterance is None:
            return 0
        played = min(time.monotonic(), utterance.end) - utterance.start
        return int(max(0.0, played) * 1000)

    def _truncate_played(self, utterance: Utterance, played_ms: int) -> None:
        """After a barge-in: cut the assistant item to the audio that was actually played."""
        item_id = utterance.item_id
        item = self.conversation.find(item_id)
        total_ms = self.audio_ms.get(item_id)
        if item is None or total_ms is None or played_ms >= total_ms:
            return  # not in the conversation (conversation: none, deleted), or fully played
        content_index = next(
            (i for i, p in enumerate(item["content"]) if p.get("type") == "output_audio"), None
        )
        if content_index is None:
            return
        self.conversation.truncate(
            item_id, content_index, played_ms, total_ms, self.chars_per_ms.get(item_id)
        )
        self.audio_ms[item_id] = played_ms
        self.emit(
            "conversation.item.truncated",
            item_id=item_id,
            content_index=content_index,
            audio_end_ms=played_ms,
        )

    async def _barge_in(
        self, runner: ResponseRunner, playing: Utterance | None, played_ms: int
    ) -> None:
        await runner.cancel("turn_detected")
        if playing is None:
            return
        if self._playing is playing:  # the response had just finished: cut its audio too
            self.stop_playback()
        self._truncate_played(playing, played_ms)

    # --- voice turns -----------------------------------------------------------------------
    def _on_vad(self, event: VadEvent, segment: Segment | None) -> None:
        if event.kind == "speech_started":
            self._speech_item_id = new_id("item")
            self.emit(
                "input_audio_buffer.speech_started",
                audio_start_ms=event.audio_ms,
                item_id=self._speech_item_id,
            )
            self._backchannel = BackchannelTurn(event.speech_start_ms)
            td = self._turn_detection or {}
            if td.get("interrupt_response", True):
                playing = self._playing
                played_ms = self._played_ms(playing)  # what the user heard until now
                if self.active is not None:
                    self.spawn(self._barge_in(self.active, playing, played_ms))
                elif playing is not None and self.stop_playback():
                    self._truncate_played(playing, played_ms)
            return
        item_id = self._speech_item_id or new_id("item")
        self._speech_item_id = None
        self._backchannel = None
        self.emit("input_audio_buffer.speech_stopped", audio_end_ms=event.audio_ms, item_id=item_id)
        assert segment is not None
        self._commit_turn(item_id, segment)

    def _on_mic_frame(self, now_ms: float) -> None:
        """After each mic frame (stream clock): back-channel decisions and the idle timer."""
        turn = self._backchannel
        if turn is not None and self.mic.in_speech:
            config = backchannel_config(self.session)
            speaking = self._playing is not None
            decision = turn.decide(config, now_ms, speaking) if config else None
            if config is not None and decision == "send":
                for delta in audio_deltas(config.volume_gain):
                    self.emit("response.backchannel.audio.delta", delta=delta)
                self.emit("response.backchannel.audio.done", phrase=PHRASE)
            elif decision:
                self.emit("response.backchannel.skipped", reason=decision)
        self._check_idle(now_ms)

    def _check_idle(self, now_ms: float) -> None:
        td = self._turn_detection
        timeout = td.get("idle_timeout_ms") if td else None
        busy = self.mic.in_speech or self.active is not None or self._playing is not None
        if not timeout or busy:
            self._idle_since_ms = None
            return
        if self._idle_since_ms is None:
            self._idle_since_ms = now_ms
            return
        start = self._idle_since_ms
        if now_ms - start < timeout:
            return
        # Nothing was said for idle_timeout_ms: the silent stretch is committed as a user turn,
        # and (with create_response) answered.
        self._idle_since_ms = None
        item_id = new_id("item")
        self.emit(
            "input_audio_buffer.timeout_triggered",
            audio_start_ms=int(start),
            audio_end_ms=int(now_ms),
            item_id=item_id,
        )
        rate = self.mic.sample_rate
        silence = np.zeros(round((now_ms - start) / 1000 * rate), np.int16)
        self._commit_turn(item_id, Segment(silence, rate, int(start), int(now_ms)))

    def _commit_turn(self, item_id: str, segment: Segment) -> None:
        """Commit a user turn: committed + the user audio item, then transcribe and respond."""
        last = self.conversation.items[-1]["id"] if self.conversation.items else None
        self.emit("input_audio_buffer.committed", item_id=item_id, previous_item_id=last)
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        previous = self.conversation.add(item)
        self.input_audio_s[item_id] = segment.duration_s
        self.emit("conversation.item.added", item=item, previous_item_id=previous)
        self.emit("conversation.item.done", item=item, previous_item_id=previous)
        self.spawn(self._after_turn(item, segment))

    async def _after_turn(self, item: dict[str, Any], segment: Segment) -> None:
        transcription = self.session["audio"]["input"]["transcription"]
        if transcription:
            await self._transcribe(item, segment, transcription)
        td = self._turn_detection
        if td and td.get("create_response", True) and self.active is None:
            self.start_response(parse_response_params(self.session, None))

    async def _transcribe(
        self, item: dict[str, Any], segment: Segment, config: dict[str, Any]
    ) -> None:
        request = TranscriptionRequest(
            segment.pcm,
            segment.sample_rate,
            str(config.get("model", "")),
            config.get("language"),
            config.get("prompt"),
        )
        try:
            result = self.transcriber(request)
            transcript = await result if asyncio.iscoroutine(result) else result
            if not isinstance(transcript, str):
                raise TypeError(f"transcriber returned {type(transcript).__name__}, not str")
        except Exception as exc:  # a broken transcriber fails the transcription, not the call
            log.exception("call %s: transcriber failed", self.id)
            self.emit(
                "conversation.item.input_audio_transcription.failed",
                item_id=item["id"],
                content_index=0,
                error={
                    "type": "transcription_error",
                    "code": "transcriber_error",
                    "message": str(exc),
                },
            )
            return
        item["content"][0]["transcript"] = transcript
        self.emit(
            "conversation.item.input_audio_transcription.delta",
            item_id=item["id"],
            content_index=0,
            delta=transcript,
        )
        self.emit(
            "conversation.item.input_audio_transcription.completed",
            item_id=item["id"],
            content_index=0,
            transcript=transcript,
            usage={"type": "duration", "seconds": round(segment.duration_s, 3)},
        )

    # --- snapshots -----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "created_at": self.created_at,
            "events_in": copy.deepcopy(self.events_in),
            "events_out": copy.deepcopy(self.events_out),
            "session": copy.deepcopy(self.session),
            "items": [item["id"] for item in self.conversation.items],
            "faults": list(self.faults),
            "mic": self.mic.snapshot(),
            "audio_out": self.voice.snapshot(),
        }
