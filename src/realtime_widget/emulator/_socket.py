"""The server-side WebSocket transport.

What a call needs when its events and its audio both ride one WebSocket instead of a data channel
and RTP.

- :class:`SocketChannel` stands in for the ``oai-events`` data channel: the call sends on it
  exactly as on a data channel (so ``emit`` and the fault knobs work unchanged), and the
  server's writer drains its ordered outbox onto the socket.
- :class:`AudioIn` takes ``input_audio_buffer.append`` payloads (base64 PCM16 LE mono at the
  session's input rate, 24 kHz by default; or G.711 ``audio/pcmu``/``audio/pcma`` at 8 kHz), cuts
  them into 20 ms frames and hands them to the same mic pipeline (uplink knobs, VAD, turn audio)
  that the WebRTC track feeds.
- :class:`SocketPlayback` is the call's voice with the same clock as the RTP track: each
  utterance starts when the engine says, and its samples go out as
  ``response.output_audio.delta`` events (base64 PCM16 mono at 24 kHz, 100 ms each), every chunk
  when the playback clock reaches it, so transcript deltas stay aligned with the audio as they
  are over WebRTC. No ``output_audio_buffer.*`` events: those are WebRTC-only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ._audio import FRAME_SAMPLES, SAMPLE_RATE, Utterance
from ._errors import ClientError
from ._mic import MicMonitor
from ._playback import Playback, PlaybackHost

OUTPUT_RATE = 24_000  # what response.output_audio.delta carries (PCM16 mono)
CHUNK_SAMPLES = SAMPLE_RATE // 10  # 100 ms of the 48 kHz voice per delta
G711_RATE = 8_000
FAULT_CLOSE = (1011, "closed by the emulator's fault knobs")


class SocketChannel:
    """The data channel's stand-in on a WebSocket session.

    It has the same ``readyState``, ``send`` and ``close``, and feeds an ordered outbox the
    server's writer sends from.
    """

    def __init__(self) -> None:
        self.readyState = "open"  # "closing" once close() queued the end, "closed" once sent
        # Wire texts in order; None ends the socket with ``close_code``/``close_reason``.
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.close_code, self.close_reason = 1000, ""

    def send(self, text: str) -> None:
        if self.readyState == "open":
            self.outbox.put_nowait(text)

    def close(self, code: int = FAULT_CLOSE[0], reason: str = FAULT_CLOSE[1]) -> None:
        """Close the socket after what is queued (by default as a fault knob closes it)."""
        if self.readyState != "open":
            return
        self.readyState = "closing"
        self.close_code, self.close_reason = code, reason[:120]  # a close reason is <= 123 bytes
        self.outbox.put_nowait(None)


# --- audio in ------------------------------------------------------------------------------------


def ulaw_to_pcm16(data: bytes) -> np.ndarray:
    """G.711 mu-law bytes as int16 samples."""
    u = ~np.frombuffer(data, np.uint8)
    exponent = ((u >> 4) & 0x07).astype(np.int32)
    magnitude = ((((u & 0x0F).astype(np.int32) << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def alaw_to_pcm16(data: bytes) -> np.ndarray:
    """G.711 A-law bytes as int16 samples."""
    a = np.frombuffer(data, np.uint8) ^ 0x55
    exponent = ((a >> 4) & 0x07).astype(np.int32)
    mantissa = (a & 0x0F).astype(np.int32)
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


class AudioIn:
    """``input_audio_buffer.append`` -> 20 ms frames into the call's mic pipeline."""

    def __init__(self, mic: MicMonitor, input_format: Callable[[], dict[str, Any]]) -> None:
        self._mic = mic
        self._format = input_format  # the session's audio.input.format, read per append
        self._odd = b""  # a PCM16 sample split across two appends
        self._pending = np.zeros(0, np.int16)  # less than a frame, waiting for the next append
        self._rate = 24_000
        self.appended_ms = 0.0

    def append(self, audio: Any) -> None:
        if not isinstance(audio, str):
            raise ClientError(
                "invalid_value", "audio", "'audio' must be a base64 string of the audio bytes."
            )
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ClientError("invalid_value", "audio", f"'audio' is not base64: {exc}") from exc
        fmt = self._format() or {}
        kind = fmt.get("type", "audio/pcm")
        if kind == "audio/pcmu":
            samples, rate = ulaw_to_pcm16(data), G711_RATE
        elif kind == "audio/pcma":
            samples, rate = alaw_to_pcm16(data), G711_RATE
        else:
            data, self._odd = self._odd + data, b""
            if len(data) % 2:
                data, self._odd = data[:-1], data[-1:]
            samples, rate = (
                np.frombuffer(data, "<i2").astype(np.int16),
                int(fmt.get("rate", 24_000)),
            )
        if rate != self._rate:  # the format changed: what is pending was at the old rate
            self.flush()
            self._rate = rate
        self.appended_ms += 1000.0 * len(samples) / rate
        pending = np.concatenate([self._pending, samples])
        frame = max(rate // 50, 1)
        whole = len(pending) - len(pending) % frame
        for i in range(0, whole, frame):
            self._mic.receive(pending[i : i + frame] / 32768.0, rate)
        self._pending = pending[whole:]

    def flush(self) -> None:
        """Hand over a last partial frame (before a manual commit)."""
        if len(self._pending):
            self._mic.receive(self._pending / 32768.0, self._rate)
        self._pending = np.zeros(0, np.int16)

    def clear(self) -> None:
        self._odd = b""
        self._pending = np.zeros(0, np.int16)


# --- audio out -----------------------------------------------------------------------------------


def _lowpass(factor: int, taps: int = 31) -> np.ndarray:
    """A windowed-sinc low-pass for decimating by ``factor`` (cut-off 90% of the new Nyquist)."""
    cutoff = 0.9 / factor / 2  # in cycles per input sample
    n = np.arange(taps) - (taps - 1) / 2
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.blackman(taps)
    return np.asarray(h / h.sum())


class Decimator:
    """48 kHz -> 24 kHz int16, chunk by chunk, with the filter's state carried across chunks."""

    def __init__(self, factor: int = SAMPLE_RATE // OUTPUT_RATE) -> None:
        self._factor = factor
        self._h = _lowpass(factor)
        self._history = np.zeros(len(self._h) - 1)
        self._phase = 0  # index, in the next chunk, of its first sample to keep

    def __call__(self, pcm: np.ndarray) -> np.ndarray:
        x = np.concatenate([self._history, pcm.astype(np.float64)])
        self._history = x[len(x) - len(self._h) + 1 :]
        y = np.convolve(x, self._h, mode="valid")  # one output per input sample of pcm
        kept = y[self._phase :: self._factor]
        self._phase = (self._phase - len(pcm)) % self._factor
        return np.asarray(np.clip(np.round(kept), -32768, 32767), np.int16)


class SocketPlayback(Playback):
    """The call's voice on a WebSocket session.

    The playback clock of :class:`Playback`, with the samples sent as
    ``response.output_audio.delta`` events (see the module's docstring).
    """

    def __init__(self, host: PlaybackHost) -> None:
        super().__init__(host)
        self._senders: dict[str, asyncio.Task[None]] = {}  # item id -> its audio's sender
        self.deltas = 0
        self.audio_ms_sent = 0.0

    # No output_audio_buffer.* events on this transport.
    def _started(self, utterance: Utterance) -> None:
        pass

    def _stopped(self, utterance: Utterance) -> None:
        pass

    def _cleared(self, utterance: Utterance) -> None:
        self.stop_sending(utterance.item_id)

    def send_audio(self, utterance: Utterance, fields: dict[str, Any]) -> asyncio.Task[None]:
        """Start sending ``utterance`` as delta events carrying ``fields`` (the response's ids).

        The task ends when the last chunk is sent, or when the audio is cut.
        """
        task = self._host.spawn(self._send(utterance, fields))
        self._senders[utterance.item_id] = task
        task.add_done_callback(lambda t: self._forget(utterance.item_id, t))
        return task

    def _forget(self, item_id: str, task: asyncio.Task[None]) -> None:
        if self._senders.get(item_id) is task:
            del self._senders[item_id]

    def stop_sending(self, item_id: str) -> None:
        """No more audio deltas for ``item_id`` (its response was cancelled, or it was cut)."""
        task = self._senders.pop(item_id, None)
        if task is not None:
            task.cancel()

    def truncate(self, item_id: str, content_index: Any, audio_end_ms: Any) -> None:
        super().truncate(item_id, content_index, audio_end_ms)  # raises if it is refused
        self.stop_sending(item_id)  # the audio after the cut is gone: none of it goes out

    async def _send(self, utterance: Utterance, fields: dict[str, Any]) -> None:
        sound, decimate, sent = utterance.sound, Decimator(), 0
        while True:
            total = len(sound)
            if sent >= total and sound.complete:
                return
            hi = min(sent + CHUNK_SAMPLES, total)
            if hi - sent < CHUNK_SAMPLES and not sound.complete:
                await asyncio.sleep(0.02)  # a streamed voice: wait for more of it
                continue
            # Each chunk goes out when the playback clock reaches its first sample.
            wait = utterance.start + sent / SAMPLE_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            pcm = sound.render(sent, hi)
            self._count(pcm)
            out = decimate(pcm)
            self._host.emit(
                "response.output_audio.delta",
                **fields,
                delta=base64.b64encode(out.astype("<i2").tobytes()).decode("ascii"),
            )
            sent = hi

    def _count(self, pcm: np.ndarray) -> None:
        """The track's statistics, in its 20 ms frames, as if the RTP track had sent them."""
        frames = math.ceil(len(pcm) / FRAME_SAMPLES)
        step = FRAME_SAMPLES
        loud = sum(bool(np.any(pcm[i : i + step])) for i in range(0, len(pcm), step))
        self.track.count(frames, loud)
        self.deltas += 1
        self.audio_ms_sent += 1000.0 * len(pcm) / SAMPLE_RATE

    def snapshot(self) -> dict[str, Any]:
        return {
            **super().snapshot(),
            "deltas": self.deltas,
            "audio_ms": int(self.audio_ms_sent),
        }

    def close(self) -> None:
        for item_id in list(self._senders):
            self.stop_sending(item_id)
        super().close()
