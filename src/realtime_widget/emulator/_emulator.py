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
    """A local realtime service speaking the provider's protocol, over WebRTC and WebSocket.

    Use it when there is no API key or no network: quickstarts, tests, CI, benchmarks. It speaks
    real WebRTC (aiortc) and the server-side WebSocket transport. ``Emulator(**knobs).start()``
    listens on ``host:port``; give ``emu.base_url`` and ``emu.api_key`` to a client
    (``emu.websocket_url`` to a WebSocket client, ``emu.openai_websocket_base_url`` to the
    ``openai`` SDK). It runs on its own daemon thread and event loop, so it works inside a running
    Jupyter kernel; every public method is safe to call from any thread. Use it as a context
    manager, or call :meth:`start` and :meth:`stop`. ``repr(emu)`` never shows the key. Needs
    the ``emulator`` extra; the ``voice`` extra adds a real offline voice (``docs/emulator.md``).

    Args:
        api_key: The key clients must send; by default a random one (read it from
            ``emu.api_key``).
        port: The port to listen on; 0 picks a free one.
        host: The address to bind.
        responder: Decides what the model says (see :data:`Responder`); by default
            :func:`default_responder`.
        transcriber: Decides what the model heard of speech (see :data:`Transcriber`); by
            default faster-whisper when ``realtime-widget[voice]`` is installed (see the
            ``stt_model`` knob), else a placeholder.
        keep_finished_calls: How many finished calls ``emu.calls`` keeps (the most recent
            ones); live calls are always kept.
        chat_responder: Answers ``POST /v1/chat/completions``: a callable
            ``(messages, request) -> str``; by default a deterministic stand-in for the
            product's judges and callers.
        **knobs: Latency and fault knobs: the fields of :class:`Knobs`.

    Raises:
        ValueError: ``keep_finished_calls`` is negative, or a knob is out of its range.
        TypeError: An unknown knob name.

    Attributes:
        api_key: The key clients must send.
        host: The address bound.

    Example:
        >>> from realtime_widget import RealtimeWidget
        >>> from realtime_widget.emulator import Emulator
        >>> emu = Emulator(first_delta_delay_ms=50).start()
        >>> w = RealtimeWidget(base_url=emu.base_url, api_key=emu.api_key)
        >>> with Emulator() as emu2:
        ...     emu2.websocket_url  # ws://127.0.0.1:<port>/api/v1/realtime/session
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
        """The knobs in force now (frozen; change them with :meth:`configure`)."""
        return self._knobs

    def configure(self, **knobs: Any) -> None:
        """Change knobs on a running emulator; calls pick them up at their next use.

        Knobs not named keep their values.

        Args:
            **knobs: The knobs to change, by name (the fields of :class:`Knobs`).

        Raises:
            TypeError: An unknown knob name.
            ValueError: A knob out of its range or not one of its choices.

        Example:
            >>> emu.configure(first_delta_delay_ms=600, uplink_loss=0.1)
            >>> emu.knobs.first_delta_delay_ms
            600
        """
        self._knobs = Knobs.from_kwargs(self._knobs, **knobs)

    @property
    def running(self) -> bool:
        """Whether the emulator is serving (started and not stopped)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def port(self) -> int:
        """The port it listens on (the one picked, when 0 was asked for).

        Raises ``RuntimeError`` before :meth:`start`.
        """
        if self._port is None:
            raise RuntimeError("the emulator is not started: call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        """The service's root URL, ``http://<host>:<port>``: give it to a client with the key.

        Raises ``RuntimeError`` before :meth:`start`.
        """
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
        """The ``websocket_base_url`` to give the ``openai`` SDK.

        As in ``AsyncOpenAI(api_key=emu.api_key, websocket_base_url=...)``: its
        ``client.realtime.connect(model=...)`` opens ``<this>/realtime?model=<model>``.
        """
        return "ws" + self.base_url.removeprefix("http") + "/v1"

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Snapshots of the live calls and WebSocket sessions, and the most recent finished ones.

        Copies, taken on the emulator's loop, in the order they were created; each says its
        ``transport`` (``webrtc`` or ``websocket``). After :meth:`stop`, the calls as they ended.
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
        """Start serving on the emulator's own thread; at once when it is already running.

        With the ``preload_voice`` knob, one speech VAD model is made now and the rest of the
        voice (a second VAD model, the recognizer) loads on the loop's worker threads, so a
        connect never waits for a model (see :meth:`wait_voice_ready`).

        Returns:
            The emulator itself, so ``emu = Emulator().start()`` reads in one line.

        Raises:
            RuntimeError: The server did not start within 15 seconds.
            OSError: The server's own error when it could not start, such as a port already in
                use (re-raised here).

        Example:
            >>> emu = Emulator(port=8765, api_key="dev-key").start()
            >>> emu.base_url
            'http://127.0.0.1:8765'
        """
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
        """Wait until the voice models preloaded at ``start()`` are loaded.

        Returns at once when there is nothing to load. A benchmark that times connects calls it
        first, since the load shares the CPU meanwhile.

        Args:
            timeout: Seconds to wait at most; None waits as long as it takes.

        Returns:
            True when the load is done (or there was none); False if ``timeout`` seconds passed
            first.

        Example:
            >>> emu = Emulator().start()
            >>> emu.wait_voice_ready(timeout=60)
            True
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
        """End every call and free the port. Safe to call twice, or before start().

        ``emu.calls`` still answers afterwards, with the calls as they ended.

        Raises:
            RuntimeError: Called from the emulator's own thread (a responder, say).

        Example:
            >>> emu = Emulator().start()
            >>> emu.stop()
            >>> emu.running
            False
        """
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
