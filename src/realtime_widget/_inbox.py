"""The inbox: every message a page sends the kernel comes in here.

``_bridge.parse`` checks it first (a broken message is refused in words and logged); then
the signalling takes ``offer`` and ``state``, a button's ``request`` becomes the widget's own
API call, an ``events`` batch is logged, folded into the live latency, heard by the features
(through the port) and handed to the user's ``on()`` callbacks, and any other kind goes to the
feature that handles it (``probe_reply``, ``recording``, ...).
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import _bridge as B
from . import _vocab as V
from ._turns import TurnTracker
from ._vocab import obj, text

if TYPE_CHECKING:
    from ._port import WidgetPort
    from ._signalling import Signalling
    from ._widget import RealtimeWidget

Callback = Callable[[dict[str, Any]], Any]


class Inbox:
    """The page's messages to one widget, and what the call's server events say about it:
    the response in flight (``active_response``) and whether its audio plays."""

    def __init__(self, widget: RealtimeWidget, port: WidgetPort, signalling: Signalling) -> None:
        self._w = widget
        self._port = port
        self._signalling = signalling
        self.callbacks: dict[str, list[Callback]] = {}  # the user's on(event_type, fn)
        # The call's own state, reset by each call: what the service says is in flight (for
        # cancel_response) and whether its audio is still playing.
        self.active_response: str | None = None
        self.audio_playing = False
        self.latency = TurnTracker(keep_all=False)  # the live figure (see _turns.py)
        self._next_seq: dict[str, int] = {}  # each front end's next record number

    def call_started(self) -> None:
        """Nothing is in flight on a new call."""
        self.active_response = None
        self.audio_playing = False

    def receive(self, content: Any, buffers: Any) -> None:
        """One message from a page (ipywidgets' custom message: ``content``, ``buffers``)."""
        parsed = B.parse(content, buffers)
        if parsed.problems:
            self._port.refuse(parsed.kind, parsed.page, "; ".join(parsed.problems))
        msg = parsed.msg
        if msg is None:
            return
        kind, page = msg["kind"], msg["page"]
        if kind == B.EVENTS:
            self._events(msg["call"], page, msg["records"])
        elif kind == B.OFFER:
            self._signalling.offer(msg["call"], page, msg["sdp"])
        elif kind == B.STATE:
            accepted = self._signalling.state(msg["call"], page, msg["state"], msg["detail"])
            # (a page letting go confirms with "disconnected": expected, not worth a record)
            if not accepted and msg["state"] != "disconnected":
                self._port.refuse(
                    kind, page, f"{msg['state']}: page does not speak for call {msg['call']}"
                )
        elif kind == B.REQUEST:
            self._request(page, msg)
        else:
            handler = self._port.handler_for(kind)
            if handler is not None:
                handler(msg)

    def _request(self, page: str, msg: dict[str, Any]) -> None:
        """A button in a page: the same as the widget's API call, for the page holding the call."""
        w, action = self._w, msg["action"]
        if action != "connect" and self._port.live and not self._port.speaks_for(page):
            self._port.refuse(B.REQUEST, page, f"{action}: page does not hold the call")
            return
        try:
            if action == "connect":
                self._signalling.connect(page)  # the page whose button was clicked takes it
            elif action == "disconnect":
                w.disconnect()
            elif action == "send_text":
                w.send_text(msg["text"])
            elif action == "cancel_response":
                w.cancel_response()
            elif action == "approve":
                w.approve_tool_call(msg["call_id"])
            elif action == "reject":
                w.reject_tool_call(msg["call_id"], msg["reason"])
        except (ValueError, TypeError, KeyError) as exc:
            w.error = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)

    def _events(self, call: int, page: str, records: list[B.Record]) -> None:
        t_kernel = time.time() * 1000.0
        rows: list[tuple[str, Mapping[str, Any], float, float, int]] = []
        for rec in records:
            if rec.dir == "local" and rec.event.get("type") == "call.start":
                self._signalling.attempt_started(call, page)
            self._check_seq(page, rec.seq, rows, t_kernel, call)
            t_ms = rec.t_ms if rec.t_ms is not None else t_kernel
            rows.append((rec.dir, rec.event, t_ms, t_kernel, call))
        self._w.events.extend(rows)
        current = call == self._port.call
        changed = False
        for direction, event, t_ms, _, _ in rows:
            if current:  # an older call's late events must not touch this call's state
                changed |= self.latency.feed(call, direction, event, t_ms)
                self._port.publish(direction, event, t_ms, call)
            if direction == "server":
                self._dispatch(event, current=current)
        if changed:
            self._w.live_latency = self.latency.summary()

    def _check_seq(
        self, page: str, seq: int | None, rows: list[Any], t_kernel: float, call: int
    ) -> None:
        """Each front end numbers its records; a jump means records were lost on the way, and
        the log says so (a ``log.gap`` event) instead of hiding it. The next number expected
        follows the last one seen, so one forged number cannot switch the check off."""
        if seq is None:
            return
        expected = self._next_seq.get(page)
        self._next_seq[page] = seq + 1
        if expected is not None and seq > expected:
            gap = {"type": "log.gap", "page": page, "expected_seq": expected, "got_seq": seq}
            rows.append(("local", gap, t_kernel, t_kernel, call))

    def _dispatch(self, event: Mapping[str, Any], *, current: bool = True) -> None:
        etype = event.get("type")
        if current:
            kind = V.canonical(etype)
            if kind == V.SESSION_UPDATED and isinstance(event.get("session"), dict):
                self._w.server_session = event["session"]
            elif kind == V.RESPONSE_CREATED:
                self.active_response = text(obj(event.get("response")).get("id")) or "?"
            elif kind == V.RESPONSE_DONE:
                self.active_response = None
            elif kind == V.AUDIO_STARTED:
                self.audio_playing = True
            elif kind in V.AUDIO_ENDED:
                self.audio_playing = False
        name = etype if isinstance(etype, str) else ""
        for fn in [*self.callbacks.get(name, []), *self.callbacks.get("*", [])]:
            try:
                fn(dict(event))
            except Exception as exc:  # a user's callback must not break the event stream
                tb = self._port.scrub(traceback.format_exc())
                self._port.log_local(
                    {"type": "callback.error", "event_type": name, "traceback": tb}
                )
                self._w.error = (
                    f"Your callback for {name!r} raised {type(exc).__name__}: {exc} "
                    "(traceback in w.events, type 'callback.error')"
                )
                print(tb, file=sys.stderr)
