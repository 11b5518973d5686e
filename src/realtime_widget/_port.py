"""The one narrow port a feature module gets instead of the widget.

Tools, clips, awaiting, recording, experiments, the session guard and the sideband are each
written against ``CallPort``: they never see the widget's privates, so each can be read,
tested (with a plain fake port) and replaced alone. ``_widget.py`` builds one ``WidgetPort``
and hands it to every feature it wires.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Protocol

# A record as features hear it: (direction, event, t_ms on the log clock, call number).
RecordListener = Callable[[str, Mapping[str, Any], float, int], None]
# A page's message of one kind, already checked by ``_bridge.parse``.
MessageHandler = Callable[[dict[str, Any]], None]


class CallPort(Protocol):
    """What a feature may do with the widget's call."""

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
        """The widget's status: disconnected / connecting / connected / failed."""
        ...

    @property
    def error(self) -> str:
        """The widget's last problem in words ("" when none)."""
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

    def subscribe(self, listener: RecordListener) -> Callable[[], None]:
        """Hear every record of the current call as it is logged; returns the unsubscribe."""
        ...

    def handle(self, kind: str, handler: MessageHandler) -> None:
        """Receive the page's messages of ``kind`` (one handler per kind)."""
        ...

    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The kernel's event loop (where features schedule work), if there is one."""
        ...
