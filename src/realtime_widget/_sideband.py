"""The kernel's own line to a call: the service's sideband WebSocket (Inworld's call control).

Once a WebRTC call has an id, the kernel can open ``wss://<host>/v1/realtime?call_id=<id>`` with
the same key and auth scheme as the calls endpoint: it receives every server event of the call
and takes client events, so the kernel no longer depends on the page for either.

Built on ``websockets`` (the ``sideband`` extra): it has no dependencies of its own (it lands in
every user's kernel), it is asyncio-native (it runs on the kernel's event loop, beside the
widget), and it is well kept (typed, with a long record of timely releases).

A :class:`Sideband` reports its life through ``on_state(state, reason)``: ``connecting``,
``open``, ``reconnecting``, then ``closed`` (the kernel closed it, or the service ended it
normally, as at the end of a call) or ``failed``, reported once: refused at the handshake
(HTTP 404 / 401 / 403 …), closed early (before any event, within ``early_close_s`` of opening),
or dropped a second time (a drop mid-call reconnects once). After ``failed``, everything goes
over the data channel; :meth:`Sideband.unsent` hands back the client events that did not go out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from ._errors import RealtimeWidgetError
from ._secrets import redact

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = ["Sideband", "SidebandUnavailable", "sideband_url"]

log = logging.getLogger(__name__)


class _ScrubbedLog(logging.LoggerAdapter):
    """The websockets library's log for one socket, with its secrets scrubbed.

    At DEBUG it logs the handshake's request headers, the ``Authorization`` header among them.
    """

    def __init__(self, secrets: list[str]) -> None:
        super().__init__(logging.getLogger("websockets.client"), {})
        self._secrets = secrets

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            kwargs.setdefault("stacklevel", 2)
            self.logger.log(level, "%s", redact(text, self._secrets), **kwargs)


SIDEBAND_PATH = "/v1/realtime"
EARLY_CLOSE_S = 2.0
OPEN_TIMEOUT_S = 5.0
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # a session.updated with many tools is tens of KB
NEEDS_EXTRA = (
    "The sideband needs the 'websockets' package: pip install 'realtime-widget[sideband]' "
    "(it is part of [all]), or pass sideband=False."
)

EventListener = Callable[[dict[str, Any], float], None]  # (server event, kernel receive ms)
StateListener = Callable[[str, str], None]  # (state, reason in words)


class SidebandUnavailable(RealtimeWidgetError, ImportError):
    """The ``sideband`` extra is not installed."""


def _connect() -> Any:
    try:
        from websockets.asyncio.client import connect
    except ImportError:
        raise SidebandUnavailable(NEEDS_EXTRA) from None
    return connect


def _now_ms() -> float:
    return time.time() * 1000.0


def sideband_url(base_url: str, call_id: str) -> str:
    """The sideband's URL: ``wss://<host>/v1/realtime?call_id=<id>``.

    ``wss://`` for an https base URL, ``ws://`` for http (the emulator). The base URL's own path
    is dropped: the sideband lives at the host's root.
    """
    parts = urlsplit(base_url.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base_url must be an http:// or https:// URL, not {base_url!r}")
    if not call_id:
        raise ValueError("call_id must be the service's id for the call (from Location)")
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{SIDEBAND_PATH}?call_id={quote(call_id, safe='')}"


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


def _handshake_reason(exc: Exception) -> str:
    """What a refused handshake said, in words (the service's own message when it sent one)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is None:
        return (
            f"could not connect ({type(exc).__name__}: {exc})" if str(exc) else type(exc).__name__
        )
    said = ""
    body = getattr(response, "body", b"") or b""
    try:
        data = json.loads(body)
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            said = error["message"]
    except (ValueError, UnicodeDecodeError):
        said = " ".join(body.decode("utf-8", "replace").split())[:120]
    return f"refused at the handshake: HTTP {status}" + (f" ({said})" if said else "")


def _close_words(code: int | None, reason: str) -> str:
    return f"code {code}" + (f": {reason}" if reason else "") if code is not None else "no close"


class Sideband:
    """One call's sideband, run on the kernel's event loop (every method from its thread).

    ``headers`` carries the ``Authorization`` header that worked on the calls endpoint; it is
    never shown (reasons are scrubbed of it). ``on_event(event, t_ms)`` hears each server event
    with the kernel's receive time (``clock``, epoch ms by default, the log's kernel clock).
    """

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        on_event: EventListener,
        on_state: StateListener,
        *,
        clock: Callable[[], float] = _now_ms,
        open_timeout: float = OPEN_TIMEOUT_S,
        early_close_s: float = EARLY_CLOSE_S,
        on_garbage: Callable[[str], None] | None = None,
        what: str = "sideband",
    ) -> None:
        self._connect = _connect()  # refuse at once, with the install hint, when it is missing
        self.url = url
        self._headers = dict(headers)
        self._secrets = [v.partition(" ")[2] or v for v in self._headers.values()]
        self._on_event = on_event
        self._on_state = on_state
        self._on_garbage = on_garbage  # hears a frame that is not a JSON object (its start)
        self._what = what  # what its reasons call it
        self._clock = clock
        self._open_timeout = open_timeout
        self._early_close_s = early_close_s
        self.state = "idle"
        self.reason = ""
        self.received = 0  # server events heard, over every connection
        self.refused_status: int | None = None  # the HTTP status of a refused handshake
        self._ws: ClientConnection | None = None
        self._pending: deque[dict[str, Any]] = deque()  # client events not yet written
        self._wake = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing = False

    def __repr__(self) -> str:
        return f"Sideband({self.url!r}, state={self.state!r})"  # never the headers

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> bool:
        """Open the sideband; True when it is up (else ``failed`` was reported, with why)."""
        if self.state != "idle":
            raise RuntimeError(f"start() was already called (the sideband is {self.state})")
        self._report("connecting", "")
        ws = await self._open()
        if ws is None:
            return False
        self._ws = ws
        self._report("open", "")
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self._read())
        self._writer = loop.create_task(self._write())
        return True

    async def close(self) -> None:
        """Close it from the kernel's side (reported as ``closed``); safe to call twice."""
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        for task in (self._reader, self._writer):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.state not in ("closed", "failed"):
            self._report("closed", "closed by the kernel")

    @property
    def open(self) -> bool:
        return self.state == "open"

    def send(self, events: list[dict[str, Any]]) -> bool:
        """Queue client events for the service, in order.

        False (nothing queued) when the sideband is not up: send them on the data channel instead.
        """
        if self.state not in ("open", "reconnecting") or self._closing:
            return False
        self._pending.extend(events)
        self._wake.set()
        return True

    def send_first(self, events: list[dict[str, Any]]) -> bool:
        """Queue client events ahead of everything waiting.

        A session replayed after a reconnect goes before what was queued during the drop.
        """
        if self.state not in ("open", "reconnecting") or self._closing:
            return False
        self._pending.extendleft(reversed(events))
        self._wake.set()
        return True

    def unsent(self) -> list[dict[str, Any]]:
        """The client events queued but not written (say the sideband failed).

        Taken out, for the data channel.
        """
        events = list(self._pending)
        self._pending.clear()
        return events

    # --- inside --------------------------------------------------------------------------
    def _report(self, state: str, reason: str) -> None:
        reason = redact(reason, self._secrets)
        self.state, self.reason = state, reason
        if state in ("closed", "failed"):
            self._wake.set()  # the writer stops
        try:
            self._on_state(state, reason)
        except Exception:  # a listener's bug must not end the sideband
            log.exception("sideband: the state listener failed")

    async def _open(self) -> ClientConnection | None:
        host = urlsplit(self.url).hostname or ""
        try:
            ws: ClientConnection = await self._connect(
                self.url,
                additional_headers=self._headers,
                open_timeout=self._open_timeout,
                max_size=MAX_MESSAGE_BYTES,
                compression=None,  # small JSON events: deflate costs more time than it saves
                proxy=None if _is_loopback(host) else True,
                logger=_ScrubbedLog(self._secrets),
            )
        except Exception as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            self.refused_status = status if isinstance(status, int) else None
            self._report("failed", _handshake_reason(exc))
            return None
        return ws

    async def _read(self) -> None:
        reconnected = False
        while True:
            ws = self._ws
            assert ws is not None
            opened, heard = time.monotonic(), self.received
            with contextlib.suppress(Exception):  # ConnectionClosedError: read the code below
                async for message in ws:
                    self._deliver(message)
            if self._closing:
                return
            code, reason = ws.close_code, ws.close_reason or ""
            if code == 1000:
                self._report("closed", reason or f"the service closed the {self._what}")
                return
            words = _close_words(code, reason)
            if self.received == heard and time.monotonic() - opened < self._early_close_s:
                self._report("failed", f"closed early ({words})")
                return
            if reconnected:
                self._report("failed", f"dropped again after a reconnect ({words})")
                return
            self._report("reconnecting", f"dropped ({words})")
            fresh = await self._open()
            if fresh is None or self._closing:
                return
            self._ws, reconnected = fresh, True
            self._report("open", "reconnected")
            self._wake.set()  # what was queued during the drop goes out now

    def _deliver(self, message: str | bytes) -> None:
        t_ms = self._clock()
        try:
            event = json.loads(message)
        except (ValueError, UnicodeDecodeError):
            event = None
        if not isinstance(event, dict):
            if self._on_garbage is None:
                log.warning("sideband: a message that is not a JSON object was ignored")
                return
            raw = message if isinstance(message, str) else message.decode("utf-8", "replace")
            try:
                self._on_garbage(redact(raw[:200], self._secrets))
            except Exception:
                log.exception("sideband: the garbage listener failed")
            return
        self.received += 1
        try:
            self._on_event(event, t_ms)
        except Exception:
            log.exception("sideband: the event listener failed on %s", event.get("type"))

    async def _write(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending and self.state == "open":
                ws = self._ws
                assert ws is not None
                try:
                    text = json.dumps(self._pending[0])
                except (TypeError, ValueError) as exc:  # one unsendable event, not the rest
                    bad = self._pending.popleft()
                    log.error("sideband: a %s event is not JSON (%s)", bad.get("type"), exc)
                    continue
                try:
                    await ws.send(text)
                except Exception:  # dropped: the reader reconnects (and wakes us) or fails
                    break
                self._pending.popleft()
            if self.state in ("closed", "failed"):
                return
