"""The public :class:`Emulator`: the server on its own thread and event loop.

A thread of its own makes it usable from a running Jupyter kernel (whose loop is busy) and from
plain scripts alike; every public method is safe to call from any other thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import secrets
import threading
from typing import Any

from ._chat import ChatResponder
from ._deps import preload_vad, preload_voice
from ._knobs import Knobs
from ._responder import Responder, Transcriber, default_responder
from ._server import KEEP_FINISHED_CALLS, SESSION_PATH, EmulatorServer

_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 15.0


class Emulator:
    """A local realtime service speaking the provider's protocol over real WebRTC, and over
    the server-side WebSocket transport.

    ``Emulator(**knobs).start()`` listens on ``host:port`` (0 picks a free port); give
    ``emu.base_url`` and ``emu.api_key`` to a client (``emu.websocket_url`` to a WebSocket
    client, ``emu.openai_websocket_base_url`` to the ``openai`` SDK). Knobs are the fields of
    :class:`Knobs`. ``responder`` decides what the model says, ``transcriber`` what it heard
    (by default, faster-whisper when ``realtime-widget[voice]`` is installed: see the
    ``stt_model`` knob).
    ``keep_finished_calls`` bounds how many finished calls ``emu.calls`` keeps (the most
    recent ones); live calls are always kept. ``chat_responder`` answers
    ``POST /v1/chat/completions`` (a callable ``(messages, request) -> str``; by default a
    deterministic stand-in for the product's judges and callers: see ``emulator._chat``).
    """

    def __init__(
        self,
        api_key: str | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        responder: Responder | None = None,
        transcriber: Transcriber | None = None,
        keep_finished_calls: int = KEEP_FINISHED_CALLS,
        chat_responder: ChatResponder | None = None,
        **knobs: Any,
    ) -> None:
        if keep_finished_calls < 0:
            raise ValueError(f"keep_finished_calls must be >= 0, not {keep_finished_calls}")
        self.api_key = api_key or secrets.token_urlsafe(24)
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._knobs = Knobs.from_kwargs(**knobs)
        self._responder = responder or default_responder
        self._transcriber = transcriber  # None: speech recognition per the stt_model knob
        self._keep_finished_calls = keep_finished_calls
        self._chat_responder = chat_responder  # None: the stand-in for judges and callers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: EmulatorServer | None = None
        self._final_calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._preload: concurrent.futures.Future[None] | None = None  # see preload_voice

    # --- properties ----------------------------------------------------------------------
    @property
    def knobs(self) -> Knobs:
        return self._knobs

    def configure(self, **knobs: Any) -> None:
        """Change knobs on a running emulator; calls pick them up at their next use."""
        self._knobs = Knobs.from_kwargs(self._knobs, **knobs)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator is not started: call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def websocket_url(self) -> str:
        """Inworld's WebSocket transport here.

        Open ``<websocket_url>?key=<session id>&protocol=realtime`` with ``Authorization: Basic
        <api_key>`` (or Bearer). It is ``base_url`` with ``ws`` for ``http`` and
        ``/api/v1/realtime/session`` added, as a client derives it from a service's base URL.
        """
        return "ws" + self.base_url.removeprefix("http") + SESSION_PATH

    @property
    def openai_websocket_base_url(self) -> str:
        """The ``websocket_base_url`` to give the ``openai`` SDK
        (``AsyncOpenAI(api_key=emu.api_key, websocket_base_url=...)``): its
        ``client.realtime.connect(model=...)`` opens ``<this>/realtime?model=<model>``.
        """
        return "ws" + self.base_url.removeprefix("http") + "/v1"

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Snapshots of the live calls and WebSocket sessions and the most recent finished ones
        (copies, taken on the emulator's loop), in the order they were created; each says its
        ``transport`` (``webrtc`` or ``websocket``).
        """
        loop, server = self._loop, self._server
        if loop is None or server is None or not loop.is_running():
            return list(self._final_calls)
        if threading.current_thread() is self._thread:
            return server.snapshots()

        async def take() -> list[dict[str, Any]]:
            return server.snapshots()

        return asyncio.run_coroutine_threadsafe(take(), loop).result(_STOP_TIMEOUT_S)

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not started"
        state = "running" if self.running else "stopped"
        return f"<Emulator {where} {state}>"  # never the api_key

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> Emulator:
        with self._lock:
            if self.running:
                return self
            ready = threading.Event()
            failure: list[BaseException] = []
            server = EmulatorServer(
                self.api_key,
                lambda: self._knobs,
                self._responder,
                self._transcriber,
                self._keep_finished_calls,
                chat_responder=self._chat_responder,
            )
            thread = threading.Thread(
                target=self._serve,
                args=(server, ready, failure),
                name="realtime-emulator",
                daemon=True,
            )
            thread.start()
            if not ready.wait(_START_TIMEOUT_S):
                raise RuntimeError("the realtime emulator did not start in time")
            if failure:
                thread.join(_STOP_TIMEOUT_S)
                raise failure[0]
            self._thread, self._server = thread, server
            knobs = self._knobs
            if knobs.preload_voice and self._preload is None and self._loop is not None:
                # One speech VAD model now (the next connect takes it), the rest and the
                # recognizer on the loop's worker threads.
                preload_vad(knobs.vad, 1)
                self._preload = asyncio.run_coroutine_threadsafe(
                    asyncio.to_thread(preload_voice, knobs.vad, knobs.stt_model), self._loop
                )
            return self

    def wait_voice_ready(self, timeout: float | None = None) -> bool:
        """Wait until the voice models preloaded at ``start()`` are loaded (at once when
        there is nothing to load); False if ``timeout`` seconds pass first.
        """
        preload = self._preload
        if preload is None:
            return True
        with contextlib.suppress(
            concurrent.futures.TimeoutError, concurrent.futures.CancelledError
        ):
            preload.result(timeout)
        return preload.done()

    def _serve(
        self, server: EmulatorServer, ready: threading.Event, failure: list[BaseException]
    ) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self._port = loop.run_until_complete(server.start(self.host, self._requested_port))
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            loop.close()
            return
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        """End every call and free the port. Safe to call twice, or before start()."""
        with self._lock:
            loop, server, thread = self._loop, self._server, self._thread
            if loop is None or server is None or thread is None:
                return
            if threading.current_thread() is thread:
                raise RuntimeError("stop() cannot be called from the emulator's own thread")

            async def shutdown() -> list[dict[str, Any]]:
                await server.shutdown()
                return server.snapshots()  # kept: emu.calls still answers after stop()

            try:
                self._final_calls = asyncio.run_coroutine_threadsafe(shutdown(), loop).result(
                    _STOP_TIMEOUT_S
                )
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(_STOP_TIMEOUT_S)
                self._loop = self._server = self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
