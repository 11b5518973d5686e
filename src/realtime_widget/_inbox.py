"""The inbox: every message a page sends the kernel comes in here.

``_bridge.parse`` checks it first (a broken message is refused in words and logged); then
the signalling takes ``offer`` and ``state``, a button's ``request`` becomes the widget's own
API call, an ``events`` batch is logged, folded into the live latency, heard by the features
(through the port) and handed to the user's ``on()`` callbacks, and any other kind goes to the
feature that handles it (``probe_reply``, ``recording``, ...).

A call with a sideband hears each server event twice, from the page and from the kernel's own
WebSocket: the first copy is logged and heard by everyone, the second (matched by its
``event_id``) only completes that record (``EventLog.amend``: the page's clock, the sideband's
receive time, ``via="both"``). An event only one path delivered stays marked with that path.

Each path keeps the service's order, so first arrival keeps it too, once both carry every
event. Until then it may not: events the service sent before the sideband (re)opened reach the
kernel only through the page, which can be behind. So the sideband's first events wait (at most
``SIDEBAND_HOLD_MS`` after it opens) until the page catches up with one of them, and the log
holds the call's events in the service's order.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import _bridge as B
from . import _vocab as V
from ._turns import TurnTracker
from ._vocab import obj, text

if TYPE_CHECKING:
    from ._log import EventLog
    from ._port import SessionPort
    from ._signalling import Signalling

Callback = Callable[[dict[str, Any]], Any]
# Events one path delivered that the other may still deliver, per call: far more than a
# path is ever behind by (a few hundred events at most, the page's batches included).
UNMATCHED_KEPT = 5000
# After the sideband opens, how long its events may wait for the page to catch up (a page is
# tens of ms behind; one that is not caught up by then is taken to carry nothing older).
SIDEBAND_HOLD_MS = 250.0


class _Hold:
    """A sideband's first events, waiting for the page to catch up: (match key, event, t_ms)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], float]] = []
        self.timer: asyncio.TimerHandle | None = None

    def index(self, key: str) -> int | None:
        return next((i for i, (k, _, _) in enumerate(self.events) if k == key), None)


def match_key(event: Mapping[str, Any]) -> str:
    """What identifies one server event on both paths: its ``event_id``, else its whole text."""
    event_id = event.get("event_id")
    if isinstance(event_id, str) and event_id:
        return event_id
    return json.dumps(event, sort_keys=True, separators=(",", ":"), default=repr)


class Inbox:
    """The page's messages to one widget, and what the call's server events say about it.

    The response in flight (``active_response``) and whether its audio plays.
    """

    def __init__(
        self,
        port: SessionPort,
        signalling: Signalling,
        events: EventLog,
        *,
        show: Callable[[str, Any], None],
        request: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self._port = port
        self._log = events
        self._show = show  # the session's one writer of its call's state (server_session, ...)
        self._act = request  # a page's button: the session's own API call
        self._signalling = signalling
        self.callbacks: dict[str, list[Callback]] = {}  # the user's on(event_type, fn)
        # The call's own state, reset by each call: what the service says is in flight (for
        # cancel_response) and whether its audio is still playing.
        self.active_response: str | None = None
        self.audio_playing = False
        self.latency = TurnTracker(keep_all=False)  # the live figure (see _turns.py)
        self._next_seq: dict[str, int] = {}  # each front end's next record number
        # Calls with a second path (a sideband): match key -> the seq of the record one path
        # logged, until the other path's copy completes it.
        self._unmatched: dict[int, OrderedDict[str, int]] = {}
        self._merge = threading.Lock()  # the page's handler and the sideband's run apart
        self._holding: dict[int, _Hold] = {}  # calls whose sideband's first events wait
        # Told of every message a page sends (page id): the page holding the call is alive.
        self.on_heard: Callable[[str], None] | None = None

    def sideband_opened(self, call: int) -> None:
        """``call``'s sideband is (again) open.

        Its events wait for the page to catch up, at most ``SIDEBAND_HOLD_MS``. Call on the loop the
        sideband runs on.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop to end the wait on: events go in as they come
        hold = _Hold()
        with self._merge:
            old = self._holding.pop(call, None)
            if old is not None:  # a reopen before the last wait ended: its events wait on
                hold.events, old.events = old.events, []
            self._holding[call] = hold
        if old is not None and old.timer is not None:
            old.timer.cancel()
        hold.timer = loop.call_later(SIDEBAND_HOLD_MS / 1000.0, self._release, call, hold)

    def _release(self, call: int, hold: _Hold) -> None:
        """The wait is over (on the loop): the held events go in, in the sideband's order."""
        with self._merge:
            logged = self._release_locked(call, hold)
        if hold.timer is not None:
            hold.timer.cancel()
        self._heard_held(call, logged)

    def _release_locked(self, call: int, hold: _Hold) -> list[tuple[dict[str, Any], float]]:
        """Under the merge lock: end ``hold`` and log its events; those logged, to be heard."""
        if self._holding.get(call) is hold:
            del self._holding[call]
        held, hold.events = hold.events, []
        return [(ev, t) for _, ev, t in held if self._sideband_row(call, ev, t)]

    def _heard_held(self, call: int, logged: list[tuple[dict[str, Any], float]]) -> None:
        for event, t_ms in logged:
            self._heard_from_sideband(call, event, t_ms)

    def two_paths(self, call: int) -> None:
        """``call`` gets a sideband: from now on its server events are matched across paths."""
        with self._merge:
            self._unmatched.setdefault(call, OrderedDict())
            for old in [c for c in self._unmatched if c < call - 1]:
                del self._unmatched[old]  # calls long over: nothing more will match

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
        if self.on_heard is not None:
            self.on_heard(page)
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
        """A button in a page: the session's own API call, for the page holding the call."""
        action = msg["action"]
        if (
            action not in ("connect", "prepare")
            and self._port.live
            and not self._port.speaks_for(page)
        ):
            self._port.refuse(B.REQUEST, page, f"{action}: page does not hold the call")
            return
        if action == "connect":
            self._signalling.connect(page)  # the page whose button was clicked takes it
        elif action == "prepare":  # a page shows a Connect button: ICE servers ahead
            self._signalling.prepare()
        else:
            self._act(action, msg)

    def _events(self, call: int, page: str, records: list[B.Record]) -> None:
        t_kernel = time.time() * 1000.0
        rows: list[tuple[Any, ...]] = []
        # (direction, event, t_ms, first copy?, the page's copy?)
        heard: list[tuple[str, Mapping[str, Any], float, bool, bool]] = []
        with self._merge:
            unmatched = self._unmatched.get(call)
            keys: dict[str, int] = {}  # match key -> row index, of first copies
            flushed: dict[str, int] = {}  # ... of held sideband events logged in this batch
            for rec in records:
                if rec.dir == "local" and rec.event.get("type") == "call.start":
                    self._signalling.attempt_started(call, page)
                for gap in self._check_seq(page, rec.seq, t_kernel, call):
                    rows.append(gap)
                    heard.append((gap[0], gap[1], gap[2], True, True))
                t_ms = rec.t_ms if rec.t_ms is not None else t_kernel
                if unmatched and rec.dir == "client":
                    seq = unmatched.pop("client:" + match_key(rec.event), None)
                    if seq is not None:  # the kernel logged it (and was heard) already
                        self._log._amend(seq, t_ms=t_ms, via="page")
                        continue
                if unmatched is not None and rec.dir == "server":
                    key = match_key(rec.event)
                    i = flushed.pop(key, None)
                    if i is not None:  # the page's copy of a held event logged just now
                        ev, t_sb = rows[i][1], rows[i][6]
                        rows[i] = ("server", ev, t_ms, t_kernel, call, "both", t_sb)
                        del keys[key]
                        heard.append((rec.dir, rec.event, t_ms, False, True))
                        continue
                    seq = unmatched.pop(key, None)
                    if seq is not None:  # the sideband had it first: add the page's clock
                        self._log._amend(seq, t_ms=t_ms, via="both")
                        heard.append((rec.dir, rec.event, t_ms, False, True))
                        continue
                    hold = self._holding.get(call)
                    at = hold.index(key) if hold is not None else None
                    if hold is not None and at is not None:
                        # The page caught up with the sideband's held events: those before
                        # this one (the page lost them), this one, and those after it go in
                        # now, in order; the page's copies of the later ones complete them.
                        # (its timer, on the loop, finds the hold over and does nothing)
                        del self._holding[call]
                        held, hold.events = hold.events, []
                        for j, (k, ev, t_sb) in enumerate(held):
                            if j == at:
                                rows.append(("server", ev, t_ms, t_kernel, call, "both", t_sb))
                                heard.append(("server", ev, t_ms, True, True))
                                continue
                            keys[k] = flushed[k] = len(rows)
                            rows.append(("server", ev, t_sb, t_sb, call, "sideband", t_sb))
                            heard.append(("server", ev, t_sb, True, False))
                        continue
                    keys[key] = len(rows)
                    rows.append((rec.dir, rec.event, t_ms, t_kernel, call, "page", None))
                else:
                    rows.append((rec.dir, rec.event, t_ms, t_kernel, call))
                heard.append((rec.dir, rec.event, t_ms, True, True))
            first = self._log._extend(rows)
            if unmatched is not None:
                for key, i in keys.items():
                    unmatched[key] = first + i
                while len(unmatched) > UNMATCHED_KEPT:
                    unmatched.popitem(last=False)
        current = call == self._port.call
        changed = False
        for direction, event, t_ms, first_copy, from_page in heard:
            if current:  # an older call's late events must not touch this call's state
                # The live figure is on the page's clock, from every copy the page delivered.
                if from_page:
                    changed |= self.latency.feed(call, direction, event, t_ms)
                if first_copy:
                    self._port.publish(direction, event, t_ms, call)
            if direction == "server" and first_copy:
                self._dispatch(event, current=current)
            elif direction == "local" and current:  # a kernel-held call's own speaker
                etype = event.get("type")
                if etype in (V.SPEAKER_STARTED, V.SPEAKER_STOPPED):
                    self.audio_playing = etype == V.SPEAKER_STARTED
        if changed:
            self._show("live_latency", self.latency.summary())

    def from_sideband(self, call: int, event: dict[str, Any], t_ms: float) -> None:
        """A server event the call's sideband delivered (kernel receive time ``t_ms``)."""
        with self._merge:
            hold = self._holding.get(call)
            if hold is None:
                logged = [(event, t_ms)] if self._sideband_row(call, event, t_ms) else []
            else:
                key = match_key(event)
                hold.events.append((key, event, t_ms))
                unmatched = self._unmatched.get(call)
                if unmatched is None or key not in unmatched:
                    return  # waits for the page to catch up (or the hold to end)
                # the page is ahead of the sideband: nothing older to wait for
                logged = self._release_locked(call, hold)
        self._heard_held(call, logged)

    def _sideband_row(self, call: int, event: dict[str, Any], t_ms: float) -> bool:
        """Under the merge lock: log the sideband's copy (True), or complete the page's (False)."""
        unmatched = self._unmatched.setdefault(call, OrderedDict())
        key = match_key(event)
        seq = unmatched.pop(key, None)
        if seq is not None:  # the page had it first: add the sideband's receive time
            self._log._amend(seq, t_sideband_ms=t_ms, via="both")
            return False
        unmatched[key] = self._log._append(
            "server",
            event,
            t_ms=t_ms,
            t_kernel_ms=t_ms,
            call_number=call,
            via="sideband",
            t_sideband_ms=t_ms,
        )
        while len(unmatched) > UNMATCHED_KEPT:
            unmatched.popitem(last=False)
        return True

    def _heard_from_sideband(self, call: int, event: dict[str, Any], t_ms: float) -> None:
        current = call == self._port.call
        if current:
            self._port.publish("server", event, t_ms, call)
        self._dispatch(event, current=current)

    def sent_by_kernel(self, call: int, events: list[dict[str, Any]], t_ms: float) -> int:
        """Client events the kernel sent on the sideband.

        Logged here (the page never sees them) and heard like the page's records of what it sent.
        Returns the first's seq.
        """
        with self._merge:  # what the sideband holds came in before these: it goes in first
            hold = self._holding.get(call)
            held = self._release_locked(call, hold) if hold is not None else []
        self._heard_held(call, held)
        rows = [("client", ev, t_ms, t_ms, call, "sideband", t_ms) for ev in events]
        first = self._log._extend(rows)
        if call != self._port.call:
            return first
        changed = False
        for ev in events:
            changed |= self.latency.feed(call, "client", ev, t_ms)
            self._port.publish("client", ev, t_ms, call)
        if changed:
            self._show("live_latency", self.latency.summary())
        return first

    def expect_page_copies(self, call: int, logged: list[tuple[dict[str, Any], int]]) -> None:
        """Client events logged as the sideband's that go out on the data channel after all.

        The sideband failed before writing them: the page's record of each completes the
        kernel's (``via="page"``) instead of logging it twice.
        """
        with self._merge:
            unmatched = self._unmatched.setdefault(call, OrderedDict())
            for event, seq in logged:
                unmatched["client:" + match_key(event)] = seq

    def _check_seq(
        self, page: str, seq: int | None, t_kernel: float, call: int
    ) -> list[tuple[str, dict[str, Any], float, float, int]]:
        """Each front end numbers its records.

        A jump means records were lost on the way, and the log says so (a ``log.gap`` event) instead
        of hiding it. The next number expected follows the last one seen, so one forged number
        cannot switch the check off.
        """
        if seq is None:
            return []
        expected = self._next_seq.get(page)
        self._next_seq[page] = seq + 1
        if expected is not None and seq > expected:
            gap = {"type": "log.gap", "page": page, "expected_seq": expected, "got_seq": seq}
            return [("local", gap, t_kernel, t_kernel, call)]
        return []

    def _dispatch(self, event: Mapping[str, Any], *, current: bool = True) -> None:
        etype = event.get("type")
        if current:
            kind = V.canonical(etype)
            if kind == V.SESSION_UPDATED and isinstance(event.get("session"), dict):
                self._show("server_session", event["session"])
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
                self._show(
                    "error",
                    f"Your callback for {name!r} raised {type(exc).__name__}: {exc} "
                    "(traceback in w.events, type 'callback.error')",
                )
                print(tb, file=sys.stderr)
