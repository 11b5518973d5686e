"""RealtimeSession: a realtime session with no page, its call held by the kernel.

The call goes over the service's WebSocket (``_kernel_call.py``).

Everything a widget does works here, with the same columns and figures: ``ask``, ``say``,
``wait_for``, ``ready``, tools (and approval), recordings, ``run_script`` with scripts,
callers, conditions and judges, and the log's exports. It runs where no browser is: papermill,
``jupyter nbconvert --execute``, CI, a scheduled job, a plain ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import copy
import os
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from ._core import SessionCore
from ._env import key_from_env
from ._errors import RealtimeWidgetError
from ._kernel_call import KernelCall
from ._provider import ProviderError
from ._secrets import Secret
from ._session import SESSION_TRAITS
from ._waits import Ready


class SessionClosedError(RealtimeWidgetError, RuntimeError):
    """Raised by ``RealtimeSession.connect()`` on a session that was closed: make a new one."""


class RealtimeSession(SessionCore):
    """A realtime session with no page: the kernel holds the call over the service's WebSocket.

    The kernel streams a virtual microphone and plays a virtual speaker on a real-time clock, so
    it runs where no browser is: papermill, ``jupyter nbconvert --execute``, CI, a scheduled job,
    a plain ``asyncio.run``. Everything a :class:`~realtime_widget.RealtimeWidget` does works
    here with the same columns and figures: the session's fields, ``ask``, ``say``,
    ``wait_for``, ``ready``, tools (and approval), callbacks, recordings, ``run_script`` (with
    ``concurrency`` and ``executor``: runs on sessions of their own), ``tune`` and the log's
    exports.

    ``await s.connect()`` returns once the service confirmed the first ``session.update``;
    leaving an ``async with`` block (or ``await s.aclose()``) ends the call. A dropped socket is
    reconnected and the session replayed. With ``mic=True`` silence streams between clips, as a
    phone line does.

    Args:
        base_url: The service's base URL; by default ``INWORLD_BASE_URL``, else
            ``https://api.inworld.ai``.
        api_key: The API key; by default ``INWORLD_API_KEY`` from the environment (or a ``.env``
            file, with python-dotenv). It never shows in a repr, a log row or an error.
        auth_scheme: ``"Basic"`` (the default, as every Inworld server example sends it) or
            ``"Bearer"``; a 401 is retried once with ``"Bearer"`` (logged ``auth.fallback``).
        mic: Stream audio (silence between clips, so server VAD hears turns end); False streams
            none: typed turns only.
        record: Record both sides of each call, on the log's clock (``recording``).
        log_path: A JSONL file the event log is appended to as events arrive; None keeps it in
            memory only.
        timeout: Seconds each request to the service may take; ``connect()`` waits this plus
            5 s for the session by default.
        **session: Session fields by trait name: ``model``, ``instructions``, ``voice``,
            ``speed``, ``turn_detection``, ``tools``, ...

    Raises:
        TypeError: An argument is not a session field.

    Example:
        >>> from realtime_widget import RealtimeSession
        >>> async with RealtimeSession(instructions="You are a concise concierge.") as s:
        ...     reply = await s.ask("What time do you open?")
        ...     print(reply.text, reply.latency_ms)
        We open at nine. 812.4
    """

    _transport_kind = "websocket"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        auth_scheme: str = "Basic",
        mic: bool = True,
        record: bool = False,
        log_path: str | os.PathLike[str] | None = None,
        timeout: float = 10.0,
        **session: Any,
    ) -> None:
        self._auth_scheme = auth_scheme
        self._closed = False
        super().__init__(
            base_url=base_url,
            api_key=api_key,
            auth_scheme=auth_scheme,
            mic=mic,
            record=record,
            log_path=log_path,
            timeout=timeout,
            sideband=False,
            **session,
        )

    _transport: KernelCall

    def _open_transport(self) -> KernelCall:
        return KernelCall(
            self._signalling.provider,
            self._inbox.receive,
            wants_record=lambda: bool(self.record),
            auth_scheme=self._auth_scheme,
            interrupts=self._interrupts,
            session_now=self._session_update_event,
        )

    def settings(self) -> SessionSettings:
        """What a new session like this one needs, to make one elsewhere.

        The service, the key (a ``Secret``: its repr is redacted), the auth scheme, the session
        fields and the registered tools. ``settings().open(**fields)`` makes such a session (a
        grid's runs played at once each play on one); the settings pickle, for a cluster's workers.

        Returns:
            The session's ``SessionSettings``.

        Example:
            >>> other = s.settings().open(voice="Ashley")
            >>> other.voice
            'Ashley'
        """
        tools = [
            ToolSpec(t.fn, t.name, t.description, t.approve, t.timeout)
            for t in self.tool_functions.values()
        ]
        key = self._api_key.reveal()
        return SessionSettings(
            base_url=self._base_url,
            api_key=self._api_key,
            key_from_env=bool(key) and key == key_from_env(),
            auth_scheme=self._auth_scheme,
            timeout=float(self._signalling.provider.timeout),
            mic=bool(self.mic),
            record=bool(self.record),
            fields={n: copy.deepcopy(getattr(self, n)) for n in SESSION_TRAITS},
            tools=tools,
        )

    def _interrupts(self) -> bool:
        detection = self.turn_detection
        return bool(detection is None or detection.get("interrupt_response", True))

    # -- the call ---------------------------------------------------------------------------------

    def connect(self, timeout: float | None = None) -> Connecting:  # type: ignore[override]
        """Start the call; ``await`` the result to wait until the service confirmed the session.

        The wait ends with the service's first ``session.updated``; it raises
        :class:`~realtime_widget.ProviderError` when the service refused the call (a wrong
        key, a rate limit, a URL that is not a realtime service). ``async with
        RealtimeSession(...)`` connects on entering.

        Args:
            timeout: Seconds to wait for the session's confirmation; None for the session's
                request timeout plus 5 s.

        Returns:
            A :class:`~realtime_widget.types.Connecting`; ``await`` it for this session,
            connected.

        Raises:
            SessionClosedError: The session was closed.
            RuntimeError: A call is already connecting or connected, or no event loop is
                running (use it in a notebook cell or inside ``asyncio.run``).

        Example:
            >>> s = RealtimeSession(voice="Sarah")
            >>> await s.connect()
            >>> s.status
            'connected'
        """
        if self._closed:
            raise SessionClosedError("this RealtimeSession is closed; make a new one to call again")
        if self._live:
            raise RuntimeError(
                f"the session is {self.status} already: disconnect() first, or await ready()"
            )
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "RealtimeSession runs on an event loop: use it in a notebook cell "
                "(await s.connect()) or inside asyncio.run(...)"
            ) from None
        super().connect()
        return Connecting(
            self, self.ready(timeout if timeout is not None else self._timeout), self._refusal
        )

    @property
    def _timeout(self) -> float:
        return float(self._signalling.provider.timeout) + 5.0

    async def aclose(self) -> None:
        """End the call and close the session (its log file too); safe to call twice.

        Waits until the socket has closed, so the service has heard the hang-up.

        Example:
            >>> await s.aclose()
        """
        if self._closed:
            return
        self.close()
        await self._transport.wait_closed()  # the service hears the socket close

    def close(self) -> None:
        """Close the session at once, without waiting for the socket to close.

        Hangs up, stops the worker thread and closes the log file; the session cannot connect again
        (:class:`SessionClosedError`). Prefer ``await s.aclose()`` in async code.

        Example:
            >>> s.close()
        """
        self._closed = True
        super().close()

    async def __aenter__(self) -> RealtimeSession:
        await self.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    def _refusal(self) -> ProviderError:
        transport = self._transport
        status = getattr(transport, "refused_status", None)
        return ProviderError(self.error or f"the call is {self.status}", status=status)


class Connecting:
    """What ``RealtimeSession.connect()`` returns: the call has started.

    ``await`` it to wait for the service's confirmation of the session; it gives the session
    back. It raises :class:`~realtime_widget.ProviderError` when the service refused the call or
    the session did not start in time.

    Args:
        session: The session whose call started.
        ready: The handle of the call's first ``session.updated``.
        refusal: Gives the service's refusal, in words, when the call failed.

    Example:
        >>> connecting = s.connect()
        >>> s = await connecting
    """

    def __init__(
        self, session: RealtimeSession, ready: Ready, refusal: Callable[[], ProviderError]
    ) -> None:
        self._session = session
        self._ready = ready
        self._refusal = refusal  # the service's refusal, in words (status, scheme tried)

    def __await__(self) -> Generator[Any, None, RealtimeSession]:
        return self._wait().__await__()

    async def _wait(self) -> RealtimeSession:
        s = self._session
        try:
            await self._ready
        except Exception as exc:
            if s.status == "failed":
                raise self._refusal() from None
            raise ProviderError(f"the session did not start: {exc}") from None
        if s.status != "connected":
            raise self._refusal()
        return s

    def __repr__(self) -> str:
        return f"<Connecting status={self._session.status!r}>"


@dataclass(frozen=True)
class ToolSpec:
    """A registered tool, as ``tool()`` takes it again on another session."""

    fn: Callable[..., Any]
    name: str
    description: str | None
    approve: bool
    timeout: float


@dataclass
class SessionSettings:
    """Everything a fresh :class:`RealtimeSession` like another one needs (its ``settings()``).

    The key is a :class:`Secret` (its repr is redacted). ``key_from_env``: the key came from
    ``INWORLD_API_KEY``, so a machine that has its own (a cluster's worker) uses that one.
    """

    base_url: str
    api_key: Secret = field(repr=False)
    key_from_env: bool
    auth_scheme: str
    timeout: float
    mic: bool
    record: bool
    fields: dict[str, Any]
    tools: list[ToolSpec] = field(default_factory=list)

    def key(self) -> str:
        """The key to use here.

        This machine's ``INWORLD_API_KEY`` when the key came from there and it is set, else the one
        carried along.
        """
        if self.key_from_env:
            own = key_from_env()
            if own:
                return own
        return self.api_key.reveal()

    def open(self, **fields: Any) -> RealtimeSession:
        """A new session (not connected) with these settings and ``fields`` on top."""
        s = RealtimeSession(
            base_url=self.base_url,
            api_key=self.key(),
            auth_scheme=self.auth_scheme,
            mic=self.mic,
            record=self.record,
            timeout=self.timeout,
            **{**self.fields, **fields},
        )
        for t in self.tools:
            s.tool(
                t.fn, name=t.name, description=t.description, approve=t.approve, timeout=t.timeout
            )
        return s
