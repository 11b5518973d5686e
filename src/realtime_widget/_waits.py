"""Waiting for the call inside one cell: ``wait_for``, ``ready`` and ``ask``.

``wait_for`` waits for the next server event of a type, ``ready`` for the call's first
``session.updated`` and ``ask`` for one question's reply. Each returns a :class:`Pending` handle
that fills in as the current call's records arrive (``_pending.py``; the host probe that decides
whether ``await`` can work is ``_delivery.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import _vocab as V
from ._pending import Pending, new_id
from ._vocab import ResponseText, obj, text

if TYPE_CHECKING:
    from ._clips import Clip
    from ._delivery import Delivery
    from ._port import CallPort
    from ._turns import ResponseTurn

# Local records ``wait_for`` also waits for, by their exact type: where a call the kernel holds
# has its own record of what WebRTC's service reports (output_audio_buffer.started/stopped).
LOCAL_WAITABLE = frozenset({V.SPEAKER_STARTED, V.SPEAKER_STOPPED, "audio.audible"})

# The turn of (call, response id) while the widget's live tracker still holds it.
TurnOf = Callable[[int, str], "ResponseTurn | None"]


class EventWaiter(Pending):
    """The next server event of a type, as ``wait_for()`` asked for it.

    ``await`` it for the event (a dict); or read ``.event`` in a later cell (None until it
    came). ``event_type`` and ``where`` are the wait's own. A call that ends first fails it with
    ``ConnectionError``; an error raised by ``where`` is raised to the awaiter. Made by
    ``wait_for()``, not by hand.

    Args:
        delivery: The session's delivery check (server events only: the sideband carries
            them).
        event_type: The event type waited for, ``"*"`` for any.
        where: A test of the event; only an event for which it is true counts. None: any.
        timeout: The default seconds an ``await`` waits.
        on_done: Called with the waiter once it finished or was cancelled (the session drops
            it).

    Example:
        >>> waiter = w.wait_for("response.done", timeout=20)
        >>> w.send_text("Hi!")
        >>> event = await waiter
        >>> event["response"]["status"]
        'completed'
    """

    def __init__(
        self,
        delivery: Delivery,
        event_type: str,
        where: Callable[[dict[str, Any]], Any] | None,
        timeout: float,
        on_done: Callable[[EventWaiter], None],
    ) -> None:
        super().__init__(delivery)
        self.event_type = event_type
        self.where = where
        self.event: dict[str, Any] | None = None
        self._default_timeout = timeout
        self._what = f"no {event_type!r} server event arrived; it"
        self._on_done = on_done

    def _timeout_words(self, timeout: float) -> str:
        return f"no {self.event_type!r} server event arrived within {timeout:g} s"

    def _offer(self, event: Mapping[str, Any]) -> bool:
        """Take ``event`` if it matches; True when this waiter is finished."""
        if self._finished:
            return True
        if self.event_type != "*" and V.canonical(self.event_type) != V.canonical(
            event.get("type")
        ):
            return False
        if self.where is not None:
            try:
                if not self.where(dict(event)):
                    return False
            except Exception as exc:  # the predicate's error is the awaiter's to see
                self._finish(exc)
                return True
        self.event = dict(event)
        self._finish()
        return True

    def cancel(self) -> None:
        """Stop waiting: the waiter is dropped and never finishes.

        An ``await`` on it then times out. For a wait that turned out not to be needed.

        Example:
            >>> waiter = w.wait_for("error")
            >>> waiter.cancel()
        """
        self._on_done(self)

    def _result(self) -> Any:
        return self.event

    def _on_finished(self) -> None:
        self._on_done(self)

    def __repr__(self) -> str:
        state = "waiting" if not self._finished else ("error" if self._exc else "done")
        return f"<EventWaiter {self.event_type!r} {state}>"


class Ready(Pending):
    """The first ``session.updated`` of a call, as ``ready()`` asked for it.

    ``await`` it for the session the service confirmed (a dict), or read ``.session`` in a
    later cell (None until it came); ``.call`` is the call's number. A call that ends first
    fails it with ``ConnectionError``. Made by ``ready()``, not by hand.

    Args:
        delivery: The session's delivery check (server events only).
        call: The number of the call it waits on.
        timeout: The default seconds an ``await`` waits.

    Example:
        >>> w.connect()
        >>> session = await w.ready()
        >>> session["model"]
        'openai/gpt-4o-mini'
    """

    _what = "the call's first session.updated"

    def __init__(self, delivery: Delivery, call: int, timeout: float) -> None:
        super().__init__(delivery)
        self.call = call
        self.session: dict[str, Any] | None = None
        self._default_timeout = timeout

    def _timeout_words(self, timeout: float) -> str:
        return f"call {self.call} got no session.updated within {timeout:g} s"

    def _result(self) -> Any:
        return self.session


class Reply(Pending):
    """One reply to ``ask()``: awaitable, and filled in as its events arrive.

    ``reply = await w.ask(...)`` waits for the whole response; or read the handle in a later
    cell. ``text`` is the reply's output text, else its audio transcript; ``transcript`` the
    audio transcript alone; ``status`` and ``reason`` from ``response.done`` (``"completed"``,
    ``"cancelled"``, ``"failed"``, ``"incomplete"``); ``usage`` its token counts;
    ``latency_ms`` its felt latency (``to_first_output_ms`` of ``turns()``, from the session's
    own tracker); ``events`` the server events of this response, in order; ``response_id`` the
    service's id; ``question`` the typed question; ``clip`` the spoken question's handle for
    ``ask(audio=)``; ``error`` why it failed (the call ended, the socket dropped mid-reply).
    Made by ``ask()``, not by hand.

    Args:
        delivery: The session's delivery check.
        turn_of: Finds the session tracker's turn of a response, for ``latency_ms``.
        call: The number of the call the question went to.
        ask_id: The ask's own id, sent in the response's metadata to claim it.
        question: The typed question, or None for a spoken one.
        clip: The spoken question's clip, or None for a typed one.
        timeout: The default seconds an ``await`` waits.

    Example:
        >>> reply = await w.ask("Do you have vegetarian dishes?")
        >>> reply.status, reply.text
        ('completed', 'Yes: the risotto and the curry.')
        >>> round(reply.latency_ms)
        640
    """

    _default_timeout = 60.0
    _what = "the reply"

    def __init__(
        self,
        delivery: Delivery,
        turn_of: TurnOf,
        *,
        call: int,
        ask_id: str,
        question: str | None,
        clip: Clip | None = None,
        timeout: float = 60.0,
    ) -> None:
        super().__init__(delivery)
        self._turn_of = turn_of
        self.call = call
        self.ask_id = ask_id
        self.question = question
        self.clip = clip
        self.response_id: str | None = None
        self.status: str | None = None
        self.reason: str | None = None
        self.usage: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.error: str | None = None
        self._text = ResponseText()
        self._latency: float | None = None
        self._default_timeout = timeout
        # armed: the next response.created may be ours (after our response.create went out,
        # or after our clip started playing)
        self.armed = False

    @property
    def text(self) -> str:
        """The reply's output text, else its audio transcript; grows as the reply streams."""
        return self._text.text

    @property
    def transcript(self) -> str:
        """The transcript of the reply's audio alone ("" for a text-only reply)."""
        return self._text.transcript

    @property
    def latency_ms(self) -> float | None:
        """What the user waited for the first of the reply (heard, else read), in ms.

        None until it is known.
        """
        if self.response_id is not None:
            turn = self._turn_of(self.call, self.response_id)
            if turn is not None:
                value = turn.first_output_ms()
                if value is not None:
                    self._latency = value
        return self._latency

    def _timeout_words(self, timeout: float) -> str:
        got = "no response.created yet" if self.response_id is None else "no response.done yet"
        return f"the reply to ask() did not finish within {timeout:g} s ({got})"

    def _claims(self, response: Mapping[str, Any]) -> bool:
        """Is this ``response.created`` ours? By the ask id in its metadata, else by order."""
        meta = obj(response.get("metadata"))
        if meta.get("rtw_ask") is not None:
            return bool(meta.get("rtw_ask") == self.ask_id)
        return self.armed

    def _feed(self, event: Mapping[str, Any]) -> None:
        """One server event of this response."""
        self.events.append(dict(event))
        if self._text.feed(event):
            return
        if V.canonical(event.get("type")) == V.RESPONSE_DONE:
            resp = obj(event.get("response"))
            self.status = text(resp.get("status"))
            details = obj(resp.get("status_details"))
            self.reason = text(details.get("reason")) or text(obj(details.get("error")).get("code"))
            self.usage = dict(obj(resp.get("usage")))
            _ = self.latency_ms  # keep the figure while the tracker still holds the turn
            self._finish()

    def _fail(self, words: str) -> None:
        if not self._finished:
            self.error = words
            self._finish(ConnectionError(words))

    def __repr__(self) -> str:
        if not self._finished:
            state = "waiting" if self.response_id is None else f"streaming {self.response_id}"
            return f"<Reply {state}: {self.text[:60]!r}>"
        lat = f", {self.latency_ms:.0f} ms" if self.latency_ms is not None else ""
        return f"<Reply {self.status or self.error}{lat}: {self.text[:80]!r}>"


class Awaiting:
    """``wait_for``, ``ready`` and ``ask`` of one widget: hears the current call's records."""

    def __init__(
        self,
        port: CallPort,
        delivery: Delivery,
        *,
        turn_of: TurnOf,
        server_vad: Callable[[], bool],
    ) -> None:
        self._port = port
        self._delivery = delivery
        # wait_for, ready and a typed ask are finished by server events alone: with the
        # sideband up they can be awaited in one cell on any host (a spoken ask needs the page).
        self._server_events = delivery.server_events()
        self._turn_of = turn_of
        self._server_vad = server_vad  # whether the service answers a clip by itself
        self._lock = threading.Lock()
        self._waiters: list[EventWaiter] = []
        self._ready: list[Ready] = []
        self._ready_call = 0  # the last call whose first session.updated came
        self._ready_session: dict[str, Any] | None = None
        self._replies: list[Reply] = []  # asked, not finished
        self._by_response: dict[str, Reply] = {}
        port.subscribe(self.on_record)

    # -- the API ---------------------------------------------------------------------------

    def wait_for(
        self, event_type: str, timeout: float, where: Callable[[dict[str, Any]], Any] | None
    ) -> EventWaiter:
        if not isinstance(event_type, str) or not event_type:
            raise ValueError("event_type must be a server event type such as 'response.done'")
        if where is not None and not callable(where):
            raise TypeError(f"where must be a function of the event; got {where!r}")
        waiter = EventWaiter(self._server_events, event_type, where, timeout, self._drop)
        with self._lock:
            self._waiters.append(waiter)
        return waiter

    def _drop(self, waiter: EventWaiter) -> None:
        with self._lock:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def ready(self, timeout: float) -> Ready:
        port = self._port
        if not port.live:
            raise RuntimeError(
                f"no call to wait for (status {port.status!r}): connect() first, or click Connect"
            )
        handle = Ready(self._server_events, port.call, timeout)
        with self._lock:
            if self._ready_call == port.call:
                handle.session = self._ready_session
                handle._finish()
            else:
                self._ready.append(handle)
        return handle

    def ask(
        self,
        question: str | None,
        *,
        clip: Clip | None = None,
        timeout: float = 60.0,
        respond: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> Reply:
        reply = Reply(
            self._server_events if clip is None else self._delivery,
            self._turn_of,
            call=self._port.call,
            ask_id=new_id("ask"),
            question=question,
            clip=clip,
            timeout=timeout,
        )
        with self._lock:
            self._replies.append(reply)
        if question is not None:
            self._port.send_events(
                [
                    {
                        "type": V.ITEM_CREATE,
                        "item": {
                            "type": "message",
                            "role": "user",
                            "content": [{"type": "input_text", "text": question}],
                        },
                    },
                    {
                        "type": V.RESPONSE_CREATE,
                        "response": {"metadata": {**(metadata or {}), "rtw_ask": reply.ask_id}},
                    },
                ]
            )
        elif respond and clip is not None:
            clip.when_ended(lambda _clip: self._respond_after_clip(reply, metadata))
        return reply

    def _respond_after_clip(self, reply: Reply, metadata: Mapping[str, Any] | None) -> None:
        """Without server VAD nothing answers a clip by itself: commit it and ask."""
        if not self._server_vad() and not reply.done:
            self._port.send_events(
                [
                    {"type": V.AUDIO_BUFFER_COMMIT},
                    {
                        "type": V.RESPONSE_CREATE,
                        "response": {"metadata": {**(metadata or {}), "rtw_ask": reply.ask_id}},
                    },
                ]
            )

    # -- records and call state -----------------------------------------------------------

    def on_record(self, direction: str, event: Mapping[str, Any], t_ms: float, call: int) -> None:
        etype = V.canonical(event.get("type"))
        if direction == "client" and etype == V.RESPONSE_CREATE:
            meta = obj(obj(event.get("response")).get("metadata"))
            with self._lock:
                for reply in self._replies:
                    if reply.call == call and meta.get("rtw_ask") == reply.ask_id:
                        reply.armed = True
            return
        if direction == "local" and etype == "say.started":
            clip_id = event.get("clip_id")
            with self._lock:
                for reply in self._replies:
                    if reply.clip is not None and reply.clip.clip_id == clip_id:
                        reply.armed = True
            return
        if direction == "local" and etype == "socket.reconnected":
            # a kernel-held call's socket dropped and came back: a new session at the service,
            # so replies in flight on the old one will never come
            self._replies_lost(
                call,
                "the WebSocket dropped mid-reply and reconnected: "
                + (text(event.get("reason")) or "the reply in flight was lost"),
            )
            return
        if direction == "local" and etype in LOCAL_WAITABLE:
            # a kernel-held call's speaker has no server event: wait_for names its record
            with self._lock:
                waiters = [w for w in self._waiters if w.event_type == etype]
            for waiter in waiters:
                waiter._offer(event)
            return
        if direction != "server":
            return
        if etype == V.SESSION_UPDATED:
            with self._lock:
                first = self._ready_call != call
                self._ready_call, self._ready_session = call, dict(obj(event.get("session")))
                ready = [r for r in self._ready if r.call == call] if first else []
                self._ready = [r for r in self._ready if r.call != call]
            for handle in ready:
                handle.session = self._ready_session
                handle._finish()
        if etype == V.RESPONSE_CREATED:
            self._created(call, obj(event.get("response")))
        self._to_reply(event)
        with self._lock:
            waiters = list(self._waiters)
        for waiter in waiters:
            waiter._offer(event)

    def _created(self, call: int, response: Mapping[str, Any]) -> None:
        rid = text(response.get("id"))
        if rid is None:
            return
        with self._lock:
            for reply in self._replies:
                if reply.call == call and reply.response_id is None and reply._claims(response):
                    reply.response_id = rid
                    self._by_response[rid] = reply
                    break

    def _to_reply(self, event: Mapping[str, Any]) -> None:
        rid = text(event.get("response_id")) or text(obj(event.get("response")).get("id"))
        if rid is None:
            return
        with self._lock:
            reply = self._by_response.get(rid)
        if reply is None:
            return
        reply._feed(event)
        if reply.done:
            with self._lock:
                self._by_response.pop(rid, None)
                if reply in self._replies:
                    self._replies.remove(reply)

    def _replies_lost(self, call: int, words: str) -> None:
        with self._lock:
            lost = [r for r in self._replies if r.call == call]
            self._replies = [r for r in self._replies if r.call != call]
            for rid in [k for k, r in self._by_response.items() if r in lost]:
                del self._by_response[rid]
        for reply in lost:
            reply._fail(words)

    def call_ended(self, words: str) -> None:
        """The call failed or hung up: what waits for it can no longer come."""
        with self._lock:
            replies, self._replies = self._replies, []
            self._by_response.clear()
            ready, self._ready = self._ready, []
            waiters, self._waiters = self._waiters, []
        for reply in replies:
            reply._fail(words)
        for handle in ready:
            handle._finish(ConnectionError(words))
        for waiter in waiters:
            waiter._finish(ConnectionError(words))
