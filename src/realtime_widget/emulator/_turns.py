"""Turn-taking on the mic track.

VAD -> speech_started/stopped -> commit -> response and transcription, barge-in (cancel the reply,
truncate it to what was heard), back-channel decisions, the idle timeout, and (``semantic_vad``)
reading the words at each pause.

As Inworld orders them, ``response.created`` follows the commit at once and the input
transcription follows when the recognizer is done; the response's responder waits for the
transcript, since it answers from what it heard.

Everything runs on the mic stream's own clock (ms of audio received), so tests can feed
seconds of audio in microseconds and get the same events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _stt
from ._audio import Utterance
from ._backchannel import BackchannelTurn, backchannel_config, decision_events
from ._ids import new_id
from ._mic import MicMonitor, Segment
from ._responder import TextReply, ToolCall, TranscriptionRequest, default_transcriber
from ._response import ResponseParams, ResponseRunner, parse_response_params
from ._vad import VadEvent, phrase_is_complete, vad_params

if TYPE_CHECKING:
    from ._call import EmulatedCall

log = logging.getLogger(__name__)

# semantic_vad: a pause this long inside a turn has its words read (is the phrase finished?).
JUDGE_AFTER_MS = 120.0


def _request(segment: Segment, config: dict[str, Any]) -> TranscriptionRequest:
    """What a recognizer (or the user's transcriber) is asked about a stretch of speech."""
    return TranscriptionRequest(
        segment.pcm,
        segment.sample_rate,
        str(config.get("model", "")),
        config.get("language"),
        config.get("prompt"),
    )


class VoiceTurnResponse(ResponseRunner):
    """The response to a spoken turn.

    Created at the commit; its responder waits for the turn's transcript, so it answers from what it
    heard.
    """

    def __init__(
        self, host: EmulatedCall, params: ResponseParams, heard: asyncio.Task[None]
    ) -> None:
        super().__init__(host, params)
        self._heard = heard
        self._conversation = host.conversation

    async def _ask(self) -> TextReply | ToolCall:
        # Shielded: a barge-in cancels the response, never the turn's transcription.
        with contextlib.suppress(Exception):  # a failed transcription was reported already
            await asyncio.shield(self._heard)
        if self.params.input is None:  # the context, now with the transcript
            self._context = self._conversation.snapshot()
        return await super()._ask()


class TurnTaking:
    def __init__(self, call: EmulatedCall) -> None:
        self._call = call
        self.mic = MicMonitor(
            self._on_vad,
            vad_params(self.turn_detection),
            on_frame=self._on_mic_frame,
            vad=call.knobs.vad,
            uplink=lambda: (call.knobs.uplink_loss, call.knobs.uplink_jitter_ms),
        )
        self._judged_pause: int | None = None
        self._speech_item_id: str | None = None
        self._backchannel: BackchannelTurn | None = None
        self._idle_since_ms: float | None = None

    @property
    def turn_detection(self) -> dict[str, Any] | None:
        td: dict[str, Any] | None = self._call.session["audio"]["input"]["turn_detection"]
        return td

    def session_changed(self) -> None:
        self.mic.set_params(vad_params(self.turn_detection))

    def clear(self) -> None:
        """``input_audio_buffer.clear``: drop buffered audio and any speech in progress."""
        self.mic.clear_manual_turn()
        if self.turn_detection is not None:
            self.mic.set_params(None)
            self.mic.set_params(vad_params(self.turn_detection))
        self._speech_item_id = None
        self._backchannel = None

    # --- speech start and stop -----------------------------------------------------------
    def _on_vad(self, event: VadEvent, segment: Segment | None) -> None:
        call = self._call
        if event.kind == "speech_started":
            self._speech_item_id = new_id("item")
            call.emit(
                "input_audio_buffer.speech_started",
                audio_start_ms=event.audio_ms,
                item_id=self._speech_item_id,
            )
            self._backchannel = BackchannelTurn(event.speech_start_ms)
            td = self.turn_detection or {}
            if td.get("interrupt_response", True):
                playback = call.playback
                playing = playback.playing
                played_ms = playback.played_ms(playing)  # what the user heard until now
                if call.active is not None:
                    call.spawn(self._barge_in(call.active, playing, played_ms))
                elif playing is not None and playback.stop():
                    playback.truncate_played(playing, played_ms)
            return
        item_id = self._speech_item_id or new_id("item")
        self._speech_item_id = None
        self._backchannel = None
        call.emit("input_audio_buffer.speech_stopped", audio_end_ms=event.audio_ms, item_id=item_id)
        assert segment is not None
        self.commit(item_id, segment)

    async def _barge_in(
        self, runner: ResponseRunner, playing: Utterance | None, played_ms: int
    ) -> None:
        await runner.cancel("turn_detected")
        if playing is None:
            return
        playback = self._call.playback
        if playback.playing is playing:  # the response had just finished: cut its audio too
            playback.stop()
        playback.truncate_played(playing, played_ms)

    # --- every frame: back-channel and idle timeout --------------------------------------
    def _on_mic_frame(self, now_ms: float) -> None:
        call = self._call
        turn = self._backchannel
        if turn is not None and self.mic.in_speech:
            config = backchannel_config(call.session)
            speaking = call.playback.playing is not None
            decision = turn.decide(config, now_ms, speaking) if config else None
            if config is not None and decision:
                for kind, fields in decision_events(decision, config):
                    call.emit(kind, **fields)
        self._check_pause()
        self._check_idle(now_ms)

    # --- semantic_vad: is the phrase finished? -------------------------------------------
    def _check_pause(self) -> None:
        """At a pause inside a turn, read the words so far once.

        An unfinished phrase ("a table for") waits the eagerness's longer silence, as semantic VAD
        does.
        """
        mic = self.mic
        pause = mic.pause() if mic.judges_phrases else None
        if pause is None or pause[1] < JUDGE_AFTER_MS or pause[0] == self._judged_pause:
            return
        if not self._can_read_words():
            return  # placeholders have no words: the eagerness's base wait applies
        self._judged_pause = pause[0]
        mic.judging(pause[0])
        self._call.spawn(self._judge(pause[0], mic.turn_so_far()))

    def _can_read_words(self) -> bool:
        call = self._call
        if call.transcriber is not None:
            return True
        model = call.knobs.stt_model
        if model == "none" or _stt.resolve_model(model) is None:
            return False
        return model != "auto" or _stt.missing() is None

    async def _judge(self, pause_id: int, segment: Segment) -> None:
        config = self._call.session["audio"]["input"]["transcription"] or {}
        request = _request(segment, config)
        complete: bool | None = None
        try:
            if self._call.transcriber is not None:
                result = self._call.transcriber(request)
                text = await result if asyncio.iscoroutine(result) else result
            else:
                text = "".join(await recognize(request, self._call.knobs.stt_model))
            complete = phrase_is_complete(text if isinstance(text, str) else None)
        except Exception:  # an unreadable pause takes the base wait
            log.debug("call %s: reading a pause failed", self._call.id, exc_info=True)
        self.mic.judged(pause_id, complete)

    def _check_idle(self, now_ms: float) -> None:
        call = self._call
        td = self.turn_detection
        timeout = td.get("idle_timeout_ms") if td else None
        busy = self.mic.in_speech or call.active is not None or call.playback.playing is not None
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
        call.emit(
            "input_audio_buffer.timeout_triggered",
            audio_start_ms=int(start),
            audio_end_ms=int(now_ms),
            item_id=item_id,
        )
        rate = self.mic.sample_rate
        silence = np.zeros(round((now_ms - start) / 1000 * rate), np.int16)
        self.commit(item_id, Segment(silence, rate, int(start), int(now_ms)))

    # --- committing a turn ---------------------------------------------------------------
    def commit(self, item_id: str, segment: Segment) -> None:
        """Commit a user turn: committed + the user audio item, then transcribe and respond."""
        call = self._call
        items = call.conversation.items
        last = items[-1]["id"] if items else None
        call.emit("input_audio_buffer.committed", item_id=item_id, previous_item_id=last)
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        previous = call.conversation.add(item)
        call.input_audio_s[item_id] = segment.duration_s
        call.emit("conversation.item.added", item=item, previous_item_id=previous)
        call.emit("conversation.item.done", item=item, previous_item_id=previous)
        call.spawn(self._after_turn(item, segment))

    async def _after_turn(self, item: dict[str, Any], segment: Segment) -> None:
        call = self._call
        transcription = call.session["audio"]["input"]["transcription"]
        td = self.turn_detection
        respond = bool(td and td.get("create_response", True) and call.active is None)
        if not respond:
            if transcription:
                await self._transcribe(item, segment, transcription)
            return
        heard = call.spawn(self._transcribe(item, segment, transcription or None))
        # response.created goes out now; the transcription events follow when ready.
        params = parse_response_params(call.session, None)
        runner = VoiceTurnResponse(call, params, heard)
        call.active = runner
        runner.task = call.spawn(runner.run())

    async def _transcribe(
        self, item: dict[str, Any], segment: Segment, config: dict[str, Any] | None
    ) -> None:
        call = self._call
        if config is None:  # transcription is off: nothing to wait for
            return
        await asyncio.sleep(0)  # after the turn's response.created, as the service orders them
        request = _request(segment, config)
        try:
            if call.transcriber is not None:
                result = call.transcriber(request)
                transcript = await result if asyncio.iscoroutine(result) else result
                if not isinstance(transcript, str):
                    raise TypeError(f"transcriber returned {type(transcript).__name__}, not str")
                words = [transcript]
            else:
                words = await recognize(request, call.knobs.stt_model)
                transcript = "".join(words).strip()
        except Exception as exc:  # a broken transcriber fails the transcription, not the call
            log.exception("call %s: transcriber failed", call.id)
            call.emit(
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
        extra = call.knobs.transcription_delay_ms / 1000
        if extra > 0:
            await asyncio.sleep(extra)
        item["content"][0]["transcript"] = transcript
        # The words as the recognizer gave them, or the text so far (transcription_deltas).
        for word in _stt.transcription_deltas(words, call.knobs.transcription_deltas):
            call.emit(
                "conversation.item.input_audio_transcription.delta",
                item_id=item["id"],
                content_index=0,
                delta=word,
            )
        call.emit(
            "conversation.item.input_audio_transcription.completed",
            item_id=item["id"],
            content_index=0,
            transcript=transcript,
            usage={"type": "duration", "seconds": round(segment.duration_s, 3)},
        )


_STT_MISSING_SAID = False


async def recognize(request: TranscriptionRequest, stt_model: str) -> list[str]:
    """The built-in transcriber.

    Faster-whisper per the ``stt_model`` knob (its real time is the delay), else the placeholder
    ``[speech, 1.2 s]``, saying once what is missing.
    """
    global _STT_MISSING_SAID
    model = None if stt_model == "none" else _stt.resolve_model(stt_model)
    why = _stt.missing() if stt_model == "auto" else None
    if model is None or why is not None:
        if stt_model == "auto" and not _STT_MISSING_SAID:
            _STT_MISSING_SAID = True
            log.warning(
                "realtime emulator: %s, so input transcripts are placeholders like "
                '"[speech, 1.2 s]". For speech recognition: pip install "realtime-widget[voice]"',
                why,
            )
        return [default_transcriber(request)]
    started = time.monotonic()
    result = await asyncio.to_thread(
        _stt.recognize, model, request.pcm, request.sample_rate, request.language, request.prompt
    )
    log.debug(
        "recognized %.2f s of speech in %.2f s", request.duration_s, time.monotonic() - started
    )
    return result.words
