"""The one narrow port a feature module gets instead of the session.

Tools, clips, awaiting, recording, experiments, the session guard and the sideband are each
written against ``CallPort``: they never see the session's privates, so each can be read,
tested (with a plain fake port) and replaced alone. ``_core.py`` builds one ``SessionPort``
per session (a widget's or a kernel-held one) and hands it to every feature it wires.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._log import EventLog
    from ._secrets import Scrubber
    from ._signalling import Signalling

# A record as features hear it: (direction, event, t_ms on the log clock, call number).
RecordListener = Callable[[str, Mapping[str, Any], float, int], None]
# A page's message of one kind, already checked by ``_bridge.parse``.
MessageHandler = Callable[[dict[str, Any]], None]


class CallPort(Protocol):
    """What a feature may do with the session's call."""

    @property
    def call(self) -> int:
        """The current (or last) call's number; 0 before the first connect."""
        ...

    @property
    def live(self) -> bool:
        """True while a call is connecting or connected."""
        ...

    @property
    def status(self) -> str:
        """The session's status: disconnected / connecting / connected / failed."""
        ...

    @property
    def error(self) -> str:
        """The session's last problem in words ("" when none)."""
        ...

    def send_events(self, events: list[dict[str, Any]]) -> None:
        """Client events for the service, in order (queued until the channel opens)."""
        ...

    def post(self, message: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        """A message to the page holding the call (scrubbed of every secret on the way)."""
        ...

    def log_local(self, event: dict[str, Any], call: int | None = None) -> None:
        """A ``local`` record in the log (kernel clock), for ``call`` or the current one."""
        ...

    def refuse(self, kind: str, page: str, reason: str) -> None:
        """Log that a page's message of ``kind`` was refused, and why."""
        ...

    def scrub(self, text: str) -> str:
        """``text`` with the key and every TURN credential taken out."""
        ...

    def speaks_for(self, page: str) -> bool:
        """Whether ``page`` holds (or may take) the current call."""
        ...

    @property
    def page(self) -> str | None:
        """The id of the page holding the current call, once it offered."""
        ...

    @property
    def browser_has_call(self) -> bool:
        """The live call's ``connect`` message has gone out: the page knows the call."""
        ...

    def subscribe(self, listener: RecordListener) -> Callable[[], None]:
        """Hear every record of the current call as it is logged; returns the unsubscribe."""
        ...

    def handle(self, kind: str, handler: MessageHandler) -> None:
        """Receive the page's messages of ``kind`` (one handler per kind)."""
        ...

    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The kernel's event loop (where features schedule work), if there is one."""
        ...


# What the session hands the port to reach whatever holds the call: (message, buffers or
# None); the message is already scrubbed.
Outlet = Callable[[dict[str, Any], "list[bytes] | None"], None]


class SessionPort:
    """The session's ``CallPort``: built once per session and handed to every feature.

    It holds the features' record listeners and message handlers, which the inbox feeds.
    """

    def __init__(
        self,
        *,
        events: EventLog,
        scrub: Scrubber,
        scrub_key: Scrubber,
        outlet: Outlet,
        shown: Callable[[], tuple[str, str]],
    ) -> None:
        self._events = events
        self._scrub = scrub
        self._scrub_key = scrub_key  # for a connect message's ice_servers: TURN may ride there
        self._outlet = outlet
        self._shown = shown  # the session's (status, error)
        self._signalling: Signalling | None = None
        self._listeners: list[RecordListener] = []
        self._handlers: dict[str, MessageHandler] = {}

    def bind(self, signalling: Signalling) -> None:
        """The call this port speaks for (the signalling is built after the port)."""
        self._signalling = signalling

    @property
    def signalling(self) -> Signalling:
        if self._signalling is None:
            raise RuntimeError("the port is not bound to a call yet")
        return self._signalling

    # -- the call's state ------------------------------------------------------------------

    @property
    def call(self) -> int:
        return self.signalling.call

    @property
    def live(self) -> bool:
        return self.signalling.live

    @property
    def status(self) -> str:
        return self._shown()[0]

    @property
    def error(self) -> str:
        return self._shown()[1]

    @property
    def page(self) -> str | None:
        return self.signalling.owner or None

    @property
    def browser_has_call(self) -> bool:
        return self.signalling.browser_has_call

    def speaks_for(self, page: str) -> bool:
        return self.signalling.speaks_for(page)

    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self.signalling.event_loop

    # -- acting ----------------------------------------------------------------------------

    def send_events(self, events: list[dict[str, Any]]) -> None:
        self.signalling.send_events(events)

    def post(self, message: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        """Every message to a page passes here.

        The key is scrubbed from all of it; TURN credentials may ride only in the
        ``ice_servers`` of a connect message or of an ice message (the list ahead of a click).
        """
        out = {
            k: (self._scrub_key.value(v) if k == "ice_servers" else self._scrub.value(v))
            for k, v in message.items()
        }
        self._outlet(out, buffers)

    def log_local(self, event: dict[str, Any], call: int | None = None) -> None:
        now = time.time() * 1000.0
        self._events._append(
            "local",
            event,
            t_ms=now,
            t_kernel_ms=now,
            call_number=self.call if call is None else call,
        )

    def refuse(self, kind: str, page: str, reason: str) -> None:
        self.log_local({"type": "message.refused", "kind": kind, "page": page, "reason": reason})

    def scrub(self, text: str) -> str:
        return self._scrub.text(text)

    # -- hearing ---------------------------------------------------------------------------

    def subscribe(self, listener: RecordListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def handle(self, kind: str, handler: MessageHandler) -> None:
        self._handlers[kind] = handler

    def publish(self, direction: str, event: Mapping[str, Any], t_ms: float, call: int) -> None:
        """One record of the current call, to every listener (the inbox calls this)."""
        for listener in list(self._listeners):
            listener(direction, event, t_ms, call)

    def handler_for(self, kind: str) -> MessageHandler | None:
        """The feature's handler of a page message ``kind``, if one was registered."""
        return self._handlers.get(kind)
