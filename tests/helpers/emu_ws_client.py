"""A WebSocket-transport client for the emulator tests: what a server-side client does, with
the ``websockets`` package (events and audio both on the socket)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import time
import uuid
from typing import Any

import numpy as np
import websockets
from websockets.asyncio.client import ClientConnection

from realtime_widget.emulator import Emulator

OUT_RATE = 24_000  # response.output_audio.delta and input_audio_buffer.append: PCM16 mono 24 kHz
_ids = itertools.count()


def inworld_url(emu: Emulator, key: str | None = None) -> str:
    return f"{emu.websocket_url}?key={key or uuid.uuid4()}&protocol=realtime"


def auth(emu: Emulator, scheme: str = "Basic") -> dict[str, str]:
    return {"Authorization": f"{scheme} {emu.api_key}"}


def pcm_b64(pcm: np.ndarray) -> str:
    return base64.b64encode(np.asarray(pcm, "<i2").tobytes()).decode("ascii")


def to_24k(pcm48: np.ndarray) -> np.ndarray:
    """48 kHz int16 -> 24 kHz int16 (pairs averaged: enough for speech-band test audio)."""
    x = pcm48[: len(pcm48) - len(pcm48) % 2].astype(np.int32).reshape(-1, 2).mean(axis=1)
    return np.asarray(np.round(x), np.int16)


class SocketClient:
    """One WebSocket session; keeps every event (and every non-JSON frame) it receives."""

    def __init__(self, url: str, headers: dict[str, str], key: str | None = None) -> None:
        self.url = url
        self.headers = headers
        self.key = key  # the ?key= of Inworld's path (None on OpenAI's)
        self.events: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.sent: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> SocketClient:
        self.ws = await websockets.connect(self.url, additional_headers=self.headers, max_size=None)
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for message in self.ws:
                try:
                    event = json.loads(message)
                except ValueError:
                    self.raw.append(str(message))
                    continue
                self.events.append(event)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()

    async def send(self, event: dict[str, Any]) -> dict[str, Any]:
        assert self.ws is not None
        event = {"event_id": f"client_{next(_ids)}", **event}
        self.sent.append(event)
        await self.ws.send(json.dumps(event))
        return event

    async def append(self, pcm24: np.ndarray) -> None:
        await self.send({"type": "input_audio_buffer.append", "audio": pcm_b64(pcm24)})

    async def stream(self, pcm24: np.ndarray, chunk_s: float = 0.1, paced: bool = True) -> None:
        """Append ``pcm24`` in ``chunk_s`` pieces, paced in real time as a microphone is."""
        step = int(chunk_s * OUT_RATE)
        start = time.monotonic()
        for n, i in enumerate(range(0, len(pcm24), step)):
            if paced:
                await asyncio.sleep(max(0.0, start + n * chunk_s - time.monotonic()))
            await self.append(pcm24[i : i + step])

    def types(self) -> list[str]:
        return [e.get("type", "") for e in self.events]

    def of_type(self, type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == type]

    def audio(self, item_id: str | None = None) -> np.ndarray:
        """The PCM16 of every audio delta received (for one item, if given)."""
        parts = [
            np.frombuffer(base64.b64decode(e["delta"]), "<i2")
            for e in self.of_type("response.output_audio.delta")
            if item_id is None or e["item_id"] == item_id
        ]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    async def wait_for(
        self, type: str, where: Any = None, timeout: float = 10.0, after: int = 0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[after:]:
                if event.get("type") == type and (where is None or where(event)):
                    return event
            if time.monotonic() > deadline:
                raise AssertionError(f"no {type!r} within {timeout}s; saw {self.types()}")
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
