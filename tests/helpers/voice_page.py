"""A page and a service that hear the clips ``say()`` plays (no browser): each loud clip is one
user turn (speech_started 120 ms in, speech_stopped ``WAIT_MS`` after its end, then a spoken
reply heard at once and finished ``REPLY_S`` later, in real time); a clip that arrives while a
reply plays interrupts it (cancelled, cleared, truncated to what played), and the page sends a
recording chunk of what the user heard after every reply. Times are on a clock of its own."""

from __future__ import annotations

import base64
import io
import threading
import wave
from typing import Any

import numpy as np

from tests.helpers.service_page import ServicePage

WAIT_MS = 500.0  # the service's silence wait after a clip
STOP_LAG_MS = 150.0  # from a barge-in's speech onset to the agent's silence at the page
REPLY_S = 0.4  # how long (real time) a reply plays before it finishes on its own
REPLY_AUDIO_MS = 3000.0  # its length on the page's clock
RATE = 8000


class VoicePage(ServicePage):
    """``wait_ms``: the service's silence wait after a clip; a negative one ends the turn that
    long before the clip's last sample (the clip's own trailing silence was long enough)."""

    def __init__(self, w: Any, *, wait_ms: float = WAIT_MS, **kw: Any) -> None:
        super().__init__(w, **kw)
        self.wait_ms = wait_ms
        self.lock = threading.RLock()
        self.chunks: dict[str, list[bytes]] = {}
        self.clips: list[bytes] = []  # every clip as it arrived, in order
        self.queue: list[tuple[int, str, bytes]] = []
        self.playing: dict[str, Any] | None = None  # the reply playing: rid, item, start, timer
        self.sound: list[tuple[float, float]] = []  # the agent's audio at the page
        self.recorded_to: float | None = None
        self.rec_seq = 0

    def on_binary(self, message: dict[str, Any], buffers: list[bytes]) -> None:
        super().on_binary(message, buffers)
        if message["kind"] != "play":
            return
        data = bytes(buffers[0]) if buffers else base64.b64decode(message["b64"])
        parts = self.chunks.setdefault(message["clip_id"], [])
        parts.append(data)
        if message["index"] == message["last"]:  # heard a moment later, as a page would
            with self.lock:
                self.queue.append((message["call"], message["clip_id"], b"".join(parts)))
            threading.Timer(0.02, self.hear_next).start()

    def hear_next(self) -> None:
        with self.lock:  # in the order the clips came, whichever timer fires first
            self.hear(*self.queue.pop(0))

    def hear(self, call: int, clip_id: str, wav: bytes) -> None:
        self.clips.append(wav)
        with wave.open(io.BytesIO(wav)) as f:
            x = np.frombuffer(f.readframes(f.getnframes()), "<i2") / 32768.0
            dur = len(x) * 1000.0 / f.getframerate()
        loud = bool(x.size) and float(np.sqrt(np.mean(x * x))) > 0.003
        with self.lock:
            out: list[tuple[str, dict[str, Any], float]] = [
                ("local", {"type": "say.started", "clip_id": clip_id}, 1.0)
            ]
            onset = self.clock + 1.0
            if loud:
                out.append(("server", {"type": "input_audio_buffer.speech_started"}, 120.0))
            lead = self.playing
            if lead is not None and loud:  # the service stops the reply it was playing
                lead["timer"].cancel()
                self.playing = None
                cut = onset + STOP_LAG_MS
                self.sound.append((lead["start"], cut))
                out += [
                    ("server", self._done(lead["rid"], "cancelled"), 5.0),
                    ("server", {"type": "output_audio_buffer.cleared", "response_id": lead["rid"]}, 1.0),
                    ("server", {"type": "conversation.item.truncated", "item_id": lead["item"],
                                "content_index": 0, "audio_end_ms": int(cut - lead["start"])}, 1.0),
                ]  # fmt: skip
            self.timed(call, out)
            end = onset + dur  # the clip's last sample
            ended = ("local", {"type": "say.ended", "clip_id": clip_id}, 0.0)
            if loud and self.wait_ms < 0:  # the turn ends in the clip's trailing silence
                self.clock = max(self.clock, end + self.wait_ms)
                rid, item = self.turn_ends(call, 0.0)
                self.clock = max(self.clock, end)
                self.timed(call, [ended])
                self.speak(call, rid, item)
                return
            self.clock = max(self.clock, end)
            self.timed(call, [ended])
            if loud:
                self.reply(call)

    def reply(self, call: int) -> None:
        self.speak(call, *self.turn_ends(call, self.wait_ms))

    def turn_ends(self, call: int, wait_ms: float) -> tuple[str, str]:
        """speech_stopped ``wait_ms`` from now, and a response; returns its id and its item's."""
        rid, item = f"resp_{next(self._responses)}", f"item_{next(self.ids)}"
        self.timed(
            call,
            [
                ("server", {"type": "input_audio_buffer.speech_stopped"}, wait_ms),
                ("server", {"type": "input_audio_buffer.committed"}, 1.0),
                ("server", {"type": "response.created", "response": {
                    "id": rid, "output_modalities": ["audio"]}}, 5.0),
            ],
        )  # fmt: skip
        return rid, item

    def speak(self, call: int, rid: str, item: str) -> None:
        """The response's reply, heard at once and finished ``REPLY_S`` later."""
        self.timed(
            call,
            [
                ("server", {"type": "response.output_item.added", "response_id": rid,
                            "item": {"id": item, "role": "assistant"}}, 1.0),
                ("server", {"type": "output_audio_buffer.started", "response_id": rid}, 100.0),
                ("local", {"type": "audio.audible", "response_id": rid}, 20.0),
            ],
        )  # fmt: skip
        start = self.clock - 20.0
        timer = threading.Timer(REPLY_S, self.finish_reply, (call, rid, start))
        self.playing = {"rid": rid, "item": item, "start": start, "timer": timer}
        timer.start()

    def finish_reply(self, call: int, rid: str, start: float) -> None:
        with self.lock:
            if self.playing is None or self.playing["rid"] != rid:
                return
            self.playing = None
            self.clock = max(self.clock, start + REPLY_AUDIO_MS)
            self.sound.append((start, start + REPLY_AUDIO_MS))
            self.record(call)
            self.timed(
                call,
                [
                    ("server", self._done(rid, "completed"), 1.0),
                    ("server", {"type": "output_audio_buffer.stopped", "response_id": rid}, 1.0),
                ],
            )

    def record(self, call: int) -> None:
        """A recording chunk from where the last one ended to now: the agent loud (-14 dBFS)
        wherever it was heard."""
        t0 = self.recorded_to if self.recorded_to is not None else 1_700_000_000_000.0
        n = int((self.clock - t0) * RATE / 1000)
        if n <= 0:
            return
        pcm = np.zeros((n, 2), np.int16)
        for a, b in self.sound:
            lo = max(0, round((a - t0) * RATE / 1000))
            hi = min(n, round((b - t0) * RATE / 1000))
            if hi > lo:
                pcm[lo:hi, 1] = 6000
        self.recorded_to = t0 + n * 1000.0 / RATE
        data = pcm.tobytes()
        self.deliver(
            {"kind": "recording", "call": call, "page": "", "seq": self.rec_seq, "t0_ms": t0,
             "sample_rate": RATE, "frames": n, "b64": base64.b64encode(data).decode()},
        )  # fmt: skip
        self.rec_seq += 1

    @staticmethod
    def _done(rid: str, status: str) -> dict[str, Any]:
        return {"type": "response.done", "response": {"id": rid, "status": status, "usage": {}}}
