"""Turn-taking on the mic track: VAD -> speech_started/stopped -> commit -> transcription ->
response, barge-in (cancel the reply, truncate it to what was heard), back-channel decisions
and the idle timeout.

Everything runs on the mic stream's own clock (ms of audio received), so tests can feed
seconds of audio in microseconds and get the same events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _stt
from ._audio import Utterance
from ._backchannel import PHRASE, BackchannelTurn, audio_deltas, backchannel_config
from ._ids import new_id
from ._mic import MicMonitor, Segment
from ._responder import TranscriptionRequest, default_transcriber
from ._response import ResponseRunner, parse_response_params
from ._vad import VadEvent, vad_params

if TYPE_CHECKING:
    from ._call import EmulatedCall

log = logging.getLogger(__name__)


class TurnTaking:
    def __init__(self, call: EmulatedCall) -> None:
        self._call = call
        self.mic = MicMonitor(
            self._on_vad,
            vad_params(self.turn_detection),
            on_frame=self._on_mic_frame,
            vad=call.knobs.vad,
        )
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
            if config is not None and decision == "send":
                for delta in audio_deltas(config.volume_gain):
                    call.emit("response.backchannel.audio.delta", delta=delta)
                call.emit("response.backchannel.audio.done", phrase=PHRASE)
            elif decision:
                call.emit("response.backchannel.skipped", reason=decision)
        self._check_idle(now_ms)

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
        if transcription:
            await self._transcribe(item, segment, transcription)
        td = self.turn_detection
        if td and td.get("create_response", True) and call.active is None:
            call.start_response(parse_response_params(call.session, None))

    async def _transcribe(
        self, item: dict[str, Any], segment: Segment, config: dict[str, Any]
    ) -> None:
        call = self._call
        request = TranscriptionRequest(
            segment.pcm,
            segment.sample_rate,
            str(config.get("model", "")),
            config.get("language"),
            config.get("prompt"),
        )
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
        for word in words or [""]:  # the words as the recognizer gave them
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
    """The built-in transcriber: faster-whisper per the ``stt_model`` knob (its real time is
    the delay), else the placeholder ``[speech, 1.2 s]``, saying once what is missing."""
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
