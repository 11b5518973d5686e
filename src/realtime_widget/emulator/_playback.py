"""The call's voice: the audio track, one utterance at a time, and what the user heard of each.

Owns the ``output_audio_buffer.*`` events (WebRTC's: ``_socket.SocketPlayback`` sends the
audio as events instead) and the bookkeeping truncation needs (each assistant
item's audio length and pace), so a barge-in or a ``conversation.item.truncate`` can cut a
transcript to the words that were actually played.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, Protocol

import numpy as np

from ._audio import SAMPLE_RATE, Pcm, Sound, Utterance, VoiceTrack
from ._conversation import Conversation


class PlaybackHost(Protocol):
    """What playback needs from its call."""

    conversation: Conversation

    def emit(self, type: str, **fields: Any) -> dict[str, Any]: ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...


class Playback:
    def __init__(self, host: PlaybackHost) -> None:
        self._host = host
        self.track = VoiceTrack()
        self.playing: Utterance | None = None
        self.audio_ms: dict[str, int] = {}  # assistant audio item id -> its length (truncate)
        self.chars_per_ms: dict[str, float] = {}  # ... -> text spoken per ms of its audio
        self._by_item: dict[str, Utterance] = {}  # items whose audio is playing
        self._idle = asyncio.Event()
        self._idle.set()
        # Held by one play() from its wait for silence until its utterance is registered, so
        # utterances never overlap however many responses queue up.
        self._turn = asyncio.Lock()

    async def play(
        self, response_id: str, item_id: str, sound: Sound | np.ndarray, text_chars: int = 0
    ) -> Utterance:
        """Queue behind anything still playing, then start saying ``sound``.

        ``sound`` says ``text_chars`` characters of the item's transcript.

        Strictly one utterance at a time, in call order: only the holder of the playback turn
        waits for silence, and it claims the voice (clears ``_idle``) before letting the next
        caller wait.
        """
        if isinstance(sound, np.ndarray):
            sound = Pcm(sound, text_chars)
        async with self._turn:
            await self._idle.wait()
            utterance = self.track.play(response_id, sound, item_id)
            self.playing = utterance
            self._idle.clear()
        self._by_item[item_id] = utterance
        self._started(utterance)
        self._host.spawn(self._watch(utterance))
        return utterance

    # The events that mark the audio's life (WebRTC's; the WebSocket transport has none).
    def _started(self, utterance: Utterance) -> None:
        self._host.emit("output_audio_buffer.started", response_id=utterance.response_id)

    def _stopped(self, utterance: Utterance) -> None:
        self._host.emit("output_audio_buffer.stopped", response_id=utterance.response_id)

    def _cleared(self, utterance: Utterance) -> None:
        self._host.emit("output_audio_buffer.cleared", response_id=utterance.response_id)

    def snapshot(self) -> dict[str, Any]:
        return dict(self.track.snapshot())

    def _settle(self, item_id: str) -> None:
        """An item's audio is over (played or cut): keep its length and pace, drop the sound."""
        utterance = self._by_item.pop(item_id, None)
        if utterance is None:
            return
        played_ms = int(utterance.duration_s * 1000)
        self.audio_ms.setdefault(item_id, played_ms)
        spoken = utterance.sound.char_at(len(utterance.sound))
        if played_ms > 0:
            self.chars_per_ms.setdefault(item_id, spoken / played_ms)
        utterance.sound.close()

    def _length_ms(self, item_id: str) -> int:
        utterance = self._by_item.get(item_id)
        if utterance is not None and item_id not in self.audio_ms:
            return int(utterance.duration_s * 1000)
        return self.audio_ms.get(item_id, 0)

    def _pace(self, item_id: str, at_ms: int) -> float | None:
        """Characters per ms that put the cut at the words said by ``at_ms``."""
        utterance = self._by_item.get(item_id)
        if utterance is not None and at_ms > 0:
            return utterance.sound.char_at(at_ms * SAMPLE_RATE // 1000) / at_ms
        return self.chars_per_ms.get(item_id)

    async def _watch(self, utterance: Utterance) -> None:
        # A streamed voice's length grows while it is synthesized: wait for its final end.
        while True:
            await asyncio.sleep(max(0.0, utterance.end - time.monotonic()))
            if utterance.sound.complete and utterance.end <= time.monotonic() + 0.001:
                break
            if self.playing is not utterance:
                break
            await asyncio.sleep(0.02)
        self._settle(utterance.item_id)
        if self.playing is utterance:
            self.playing = None
            self._idle.set()
            self._stopped(utterance)

    def stop(self) -> bool:
        """Cut the current audio; emits ``output_audio_buffer.cleared`` if anything played."""
        utterance = self.playing
        if utterance is None:
            return False
        self.playing = None
        self.track.clear()
        self._idle.set()
        self._cleared(utterance)
        return True

    def close(self) -> None:
        self.track.clear()
        self.track.stop()

    @staticmethod
    def played_ms(utterance: Utterance | None) -> int:
        if utterance is None:
            return 0
        played = min(time.monotonic(), utterance.end) - utterance.start
        return int(max(0.0, played) * 1000)

    def truncate(self, item_id: str, content_index: Any, audio_end_ms: Any) -> None:
        """``conversation.item.truncate``: cut the item's transcript at ``audio_end_ms``."""
        at = audio_end_ms if isinstance(audio_end_ms, int) else 0
        self._host.conversation.truncate(
            item_id, content_index, audio_end_ms, self._length_ms(item_id), self._pace(item_id, at)
        )
        if isinstance(audio_end_ms, int):
            self._settle(item_id)
            self.audio_ms[item_id] = audio_end_ms  # the audio after the cut is gone

    def truncate_played(self, utterance: Utterance, played_ms: int) -> None:
        """After a barge-in: cut the assistant item to the audio that was actually played."""
        item_id = utterance.item_id
        item = self._host.conversation.find(item_id)
        total_ms = self._length_ms(item_id) if item_id in self._by_item else None
        total_ms = self.audio_ms.get(item_id) if total_ms is None else total_ms
        if item is None or total_ms is None or played_ms >= total_ms:
            return  # not in the conversation (conversation: none, deleted), or fully played
        content_index = next(
            (i for i, p in enumerate(item["content"]) if p.get("type") == "output_audio"), None
        )
        if content_index is None:
            return
        self._host.conversation.truncate(
            item_id, content_index, played_ms, total_ms, self._pace(item_id, played_ms)
        )
        self._settle(item_id)
        self.audio_ms[item_id] = played_ms
        self._host.emit(
            "conversation.item.truncated",
            item_id=item_id,
            content_index=content_index,
            audio_end_ms=played_ms,
        )
