"""A Python WebRTC client for the emulator tests: what a browser does, with aiortc."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import av
import httpx
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from realtime_widget.emulator._loopback import install_loopback_candidates
from realtime_widget.emulator._mic import to_mono_float

RATE = 48_000
FRAME = 960
_ids = itertools.count()

Predicate = Callable[[dict[str, Any]], bool]


class ScriptedMic(MediaStreamTrack):
    """A microphone that plays queued PCM (mono int16, 48 kHz) in real time, else silence."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: collections.deque[np.ndarray] = collections.deque()
        self._start: float | None = None
        self._timestamp = 0
        self.frames_sent = 0

    def say(self, pcm: np.ndarray) -> float:
        """Queue audio behind what is already queued; returns where it starts on the stream
        clock (ms since the first frame sent), which the emulator's VAD times are relative to."""
        start_ms = (self.frames_sent + len(self._queue)) * FRAME * 1000 / RATE
        for i in range(0, len(pcm), FRAME):
            chunk = np.zeros(FRAME, np.int16)
            part = pcm[i : i + FRAME]
            chunk[: len(part)] = part
            self._queue.append(chunk)
        return start_ms

    def silence(self, seconds: float) -> float:
        return self.say(np.zeros(int(seconds * RATE), np.int16))

    @property
    def queued_s(self) -> float:
        return len(self._queue) * FRAME / RATE

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            self._timestamp += FRAME
        wait = self._start + self._timestamp / RATE - now
        if wait > 0:
            await asyncio.sleep(wait)
        chunk = self._queue.popleft() if self._queue else np.zeros(FRAME, np.int16)
        self.frames_sent += 1
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._timestamp
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


class RealtimeClient:
    """Connects like the widget's browser side: offer with mic + ``oai-events``, POST, answer."""

    def __init__(
        self, base_url: str, api_key: str, *, mic: bool = True, record: bool = False
    ) -> None:
        install_loopback_candidates()
        self.base_url = base_url
        self.api_key = api_key
        self.mic = ScriptedMic() if mic else None
        self.pc = RTCPeerConnection()
        self.channel = self.pc.createDataChannel("oai-events", ordered=True)
        self.events: list[dict[str, Any]] = []
        self.times: list[float] = []  # time.monotonic() at arrival, one per event
        self.raw: list[str] = []  # messages that were not JSON
        self.sent: list[dict[str, Any]] = []
        self.audio_rms: list[float] = []  # one per received 20 ms frame
        self.record = record  # keep the received audio too (mono int16 at 48 kHz)
        self.audio: list[np.ndarray] = []
        self.call_id: str | None = None
        self.channel_closed = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.channel.on("message", self._on_message)
        self.channel.on("close", self.channel_closed.set)
        self.pc.on("track", self._on_track)

    def _on_message(self, message: str | bytes) -> None:
        try:
            event = json.loads(message)
        except ValueError:
            self.raw.append(str(message))
            return
        self.times.append(time.monotonic())
        self.events.append(event)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.ensure_future(self._read_audio(track)))

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                mono = to_mono_float(await track.recv())
                self.audio_rms.append(float(np.sqrt(np.mean(mono * mono))))
                if self.record:
                    self.audio.append(np.asarray(np.clip(mono * 32767, -32768, 32767), np.int16))

    async def connect(self, timeout: float = 10.0) -> None:
        if self.mic is not None:
            self.pc.addTrack(self.mic)
        else:
            self.pc.addTransceiver("audio", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with httpx.AsyncClient(timeout=timeout) as http:
            response = await http.post(
                f"{self.base_url}/v1/realtime/calls",
                content=self.pc.localDescription.sdp,
                headers={
                    "Authorization": f"Bearer {self.api_key}",
                    "Content-Type": "application/sdp",
                },
            )
        assert response.status_code == 201, response.text
        self.call_id = response.headers["Location"].rsplit("/", 1)[-1]
        await self.pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
        await self.wait_for("session.created", timeout=timeout)

    def send(self, event: dict[str, Any]) -> dict[str, Any]:
        event = {"event_id": f"client_{next(_ids)}", **event}
        self.sent.append(event)
        self.channel.send(json.dumps(event))
        return event

    def send_raw(self, text: str) -> None:
        self.channel.send(text)

    def time_of(self, event: dict[str, Any]) -> float:
        return self.times[self.events.index(event)]

    def types(self) -> list[str]:
        return [e.get("type", "") for e in self.events]

    def of_type(self, type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == type]

    async def wait_for(
        self,
        type: str,
        where: Predicate | None = None,
        timeout: float = 5.0,
        after: int = 0,
    ) -> dict[str, Any]:
        """The first event of ``type`` (at index >= ``after``) matching ``where``."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[after:]:
                if event.get("type") == type and (where is None or where(event)):
                    return event
            if time.monotonic() > deadline:
                seen = [e.get("type") for e in self.events]
                raise AssertionError(f"no {type!r} within {timeout}s; saw {seen}")
            await asyncio.sleep(0.005)

    async def quiet_for(self, seconds: float) -> None:
        """Wait until no event arrived for ``seconds``."""
        count = -1
        while count != len(self.events):
            count = len(self.events)
            await asyncio.sleep(seconds)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()
