"""Awaiting inside one cell: handles that fill in as records arrive, and ``await`` them where
the notebook host delivers the page's messages while a cell awaits.

Jupyter hands a widget's messages to the kernel between cells, except where the kernel lets
them in while a cell awaits: ipykernel >= 7.4 dispatches comm messages during an awaiting cell,
and JupyterLab >= 4.4 / Notebook >= 7.4 can send them on a kernel subshell
(``commsOverSubshells``), whose handlers run on another thread. Which one holds is learnt at
run time: the first ``await`` sends the page a ``probe`` and waits a moment for its reply.
Where it does not come, awaiting raises :class:`MidCellDeliveryError` (the fix, and the
next-cell path) instead of blocking a kernel that cannot receive what it waits for.

Every handle here (and the clip handle of ``_clips.py``) is a :class:`Pending`: its attributes
fill in from the records whatever happens, so ``r = w.ask(...)`` in one cell and ``r.text`` in
the next works on every host; ``await r`` is the same-cell path. Handles finish on whatever
thread delivered the record, and wake their awaiters on the awaiting loop (thread-safely).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import threading
import time
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any

from . import _bridge as B
from ._signalling import running_loop
from ._turns import obj, text

if TYPE_CHECKING:
    from ._widget import RealtimeWidget

PROBE_TIMEOUT_S = 3.0  # a page answers a probe in milliseconds; the kernel may be busy
PROBE_BYTES = bytes(range(0, 256, 17)) + b"rtw-probe\x00\xff"  # high bytes catch text mangling
_ids = itertools.count(1)


def _new_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}-{time.time_ns() % 1_000_000_000:09d}"


def _wake(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any]) -> None:
    """Resolve ``fut`` on its own loop, from any thread (a subshell's handler runs on another)."""

    def settle() -> None:
        if not fut.done():
            fut.set_result(None)

    if running_loop() is loop:
        settle()
    else:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(settle)


def ipykernel_version() -> tuple[int, ...] | None:
    """The version of the ipykernel running this code, or None outside a kernel."""
    mod = sys.modules.get("ipykernel.kernelapp")
    if mod is None or not mod.IPKernelApp.initialized():
        return None
    import ipykernel

    parts = []
    for piece in ipykernel.__version__.split(".")[:3]:
        digits = "".join(itertools.takewhile(str.isdigit, piece))
        parts.append(int(digits or 0))
    return tuple(parts)


class MidCellDeliveryError(RuntimeError):
    """This host does not deliver the page's messages to the kernel while a cell awaits."""


def _in_marimo() -> bool:
    mo = sys.modules.get("marimo")
    try:
        return bool(mo is not None and mo.running_in_notebook())
    except Exception:  # an old marimo without running_in_notebook()
        return False


def mid_cell_words(detail: str) -> str:
    version = ipykernel_version()
    kernel = f"ipykernel {'.'.join(map(str, version))}" if version else "this kernel"
    if _in_marimo():
        fix = (
            "marimo hands the page's messages to Python only after a cell ends, and no setting "
            "changes that."
        )
    else:
        fix = (
            f"Fix: upgrade the kernel ({kernel}) to ipykernel >= 7.4 "
            '(pip install -U "ipykernel>=7.4"; it needs Python >= 3.11), or in JupyterLab >= '
            "4.4 / Notebook >= 7.4 turn on Settings > Kernel > 'commsOverSubshells'; then "
            "restart the kernel."
        )
    return (
        f"Messages from the page do not reach the kernel while a cell awaits here ({detail}), "
        "so this await could never finish.\n"
        f"{fix}\n"
        "Or do not await: the handle fills in by itself. Run `r = w.ask(...)` (or `h = "
        "w.say(...)`) in one cell and read `r.text` (`h.ended_ms`) in the next; "
        "`w.on(event_type, fn)` runs code as events arrive.\n"
        "(If no page shows this widget, display it first: the page answers the probe.)"
    )


class Pending:
    """Something that finishes later. Its attributes fill in as records arrive (read them in a
    later cell), and ``await handle`` waits for it in the same cell where the host allows."""

    _default_timeout: float | None = 30.0
    _what = "it"

    def __init__(self, delivery: Delivery | None) -> None:
        self._delivery = delivery
        self._state_lock = threading.Lock()
        self._finished = False
        self._exc: BaseException | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = []

    @property
    def done(self) -> bool:
        return self._finished

    def _finish(self, exc: BaseException | None = None) -> bool:
        """Finish once (any thread); wakes every awaiter. False when already finished."""
        with self._state_lock:
            if self._finished:
                return False
            self._finished, self._exc = True, exc
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            _wake(loop, fut)
        return True

    def _result(self) -> Any:
        return self

    def _timeout_words(self, timeout: float) -> str:
        return f"{self._what} did not finish within {timeout:g} s"

    async def wait(self, timeout: float | None = None) -> Any:
        """Wait until finished (``timeout`` seconds; None for the handle's default)."""
        if not self._finished and self._delivery is not None:
            await self._delivery.ensure()
        return await self.settled(timeout)

    async def settled(self, timeout: float | None = None) -> Any:
        """``wait()`` without the host probe: for a task on the kernel's loop that may also run
        between cells (``run_script``), where the page's messages arrive whatever the host."""
        timeout = self._default_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        with self._state_lock:
            finished = self._finished
            if not finished:
                self._waiters.append((loop, fut))
        if not finished:
            try:
                await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(self._timeout_words(timeout or 0.0)) from None
            finally:
                with self._state_lock:
                    if (loop, fut) in self._waiters:
                        self._waiters.remove((loop, fut))
        if self._exc is not None:
            raise self._exc
        return self._result()

    def __await__(self) -> Generator[Any, None, Any]:
        return self.wait().__await__()


class Delivery:
    """The host probe: whether binary buffers survive each way, how long a round trip to the
    page takes, and whether the page's messages reach the kernel while a cell awaits. What it
    learns is in ``w.host_info`` and the log (``probe.result``)."""

    def __init__(self, widget: RealtimeWidget) -> None:
        self._w = widget
        self._lock = threading.Lock()
        self._sent: dict[str, float] = {}  # probe id -> kernel time sent (ms)
        self._awaiting: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        self._timed_out: set[str] = set()
        self.mid_cell: bool | None = None
        version = ipykernel_version()
        self._info: dict[str, Any] = {
            "buffers_to_browser": None,
            "buffers_to_kernel": None,
            "mid_cell": None,
            "ipykernel": ".".join(map(str, version)) if version else None,
            "round_trip_ms": None,
        }
        widget.host_info = dict(self._info)
        widget._message_handlers[B.PROBE_REPLY] = self.on_reply

    @property
    def buffers_to_browser(self) -> bool:
        """Send binary payloads as buffers unless a probe showed they are dropped."""
        return self._info["buffers_to_browser"] is not False

    def probe(self) -> str:
        """Send one probe to the page(s); the reply fills in ``host_info``."""
        probe_id = _new_id("probe")
        with self._lock:
            self._sent[probe_id] = time.time() * 1000.0
        self._w._send_binary(B.message(B.PROBE, page="", probe_id=probe_id, b64=""), [PROBE_BYTES])
        return probe_id

    def on_reply(self, msg: dict[str, Any]) -> None:
        """A page's ``probe_reply`` (on whatever thread delivered it)."""
        now = time.time() * 1000.0
        probe_id = msg["probe_id"]
        with self._lock:
            sent = self._sent.pop(probe_id, None)
            waiting = self._awaiting.pop(probe_id, None)
            late = probe_id in self._timed_out
            self._timed_out.discard(probe_id)
            if sent is None:
                return  # not ours (another kernel's page, or answered twice)
            info = dict(self._info)
            info["buffers_to_browser"] = msg["buffers"] >= 1 and msg["bytes"] == len(PROBE_BYTES)
            info["buffers_to_kernel"] = msg["received_buffers"] >= 1 and msg["data"] == PROBE_BYTES
            info["round_trip_ms"] = round(now - sent, 1)
            if waiting is not None and not waiting[1].done():
                self.mid_cell = True  # it arrived while a cell awaited it
            elif late and not self._awaiting:
                self.mid_cell = False  # it came only after the awaiting cell gave up
            info["mid_cell"] = self.mid_cell
            self._info = info
        self._w.host_info = dict(info)
        self._w._log_local(
            {
                "type": "probe.result",
                "buffers": {
                    "to_browser": info["buffers_to_browser"],
                    "to_kernel": info["buffers_to_kernel"],
                },
                "mid_cell": info["mid_cell"],
                "round_trip_ms": info["round_trip_ms"],
            }
        )
        if waiting is not None:
            _wake(*waiting)

    def _set_mid_cell(self, value: bool) -> None:
        with self._lock:
            self.mid_cell = value
            self._info = {**self._info, "mid_cell": value}
            info = dict(self._info)
        self._w.host_info = info

    async def ensure(self) -> None:
        """Return when the page's messages can reach this awaiting cell; else raise
        :class:`MidCellDeliveryError` (never wait for what cannot arrive)."""
        if self.mid_cell is True:
            return
        if self.mid_cell is False:
            raise MidCellDeliveryError(mid_cell_words("a probe earlier found so"))
        version = ipykernel_version()
        if version is not None and version < (7,):
            # No subshells and no comm dispatch during a cell before ipykernel 7.
            self._set_mid_cell(False)
            raise MidCellDeliveryError(mid_cell_words("kernels before ipykernel 7 hold them"))
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        probe_id = _new_id("probe")
        with self._lock:
            self._sent[probe_id] = time.time() * 1000.0
            self._awaiting[probe_id] = (loop, fut)
        self._w._send_binary(B.message(B.PROBE, page="", probe_id=probe_id, b64=""), [PROBE_BYTES])
        try:
            await asyncio.wait_for(fut, PROBE_TIMEOUT_S)
        except asyncio.TimeoutError:
            with self._lock:
                self._awaiting.pop(probe_id, None)
                self._timed_out.add(probe_id)
            raise MidCellDeliveryError(
                mid_cell_words(
                    f"a probe sent to the page got no answer within {PROBE_TIMEOUT_S:g} s"
                )
            ) from None
        finally:
            with self._lock:
                self._awaiting.pop(probe_id, None)


class EventWaiter(Pending):
    """The next server event of a type (``w.wait_for``): ``.event`` once it came."""

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

    def offer(self, event: Mapping[str, Any]) -> bool:
        """Take ``event`` if it matches; True when this waiter is finished."""
        if self._finished:
            return True
        if self.event_type not in ("*", event.get("type")):
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

    def _result(self) -> Any:
        return self.event

    def _finish(self, exc: BaseException | None = None) -> bool:
        finished = super()._finish(exc)
        if finished:
            self._on_done(self)
        return finished

    def __repr__(self) -> str:
        state = "waiting" if not self._finished else ("error" if self._exc else "done")
        return f"<EventWaiter {self.event_type!r} {state}>"


class Ready(Pending):
    """The first ``session.updated`` of a call (``w.ready()``): the session it confirmed."""

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
    """One reply to ``w.ask(...)``: awaitable (``reply = await r``), and filled in as its
    events arrive (read it in a later cell).

    ``text`` is the reply's output text, else its audio transcript; ``transcript`` the audio
    transcript alone; ``status`` from ``response.done``; ``latency_ms`` its felt latency
    (``to_first_output_ms`` of ``turns()``, from the widget's own tracker); ``events`` the server
    events of this response, in order; ``clip`` the spoken question's handle for ``ask(audio=)``.
    """

    _default_timeout = 60.0
    _what = "the reply"

    def __init__(
        self,
        delivery: Delivery,
        widget: RealtimeWidget,
        *,
        call: int,
        ask_id: str,
        question: str | None,
        clip: Any = None,
        timeout: float = 60.0,
    ) -> None:
        super().__init__(delivery)
        self._w = widget
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
        self._texts: list[str] = []
        self._transcripts: list[str] = []
        self._text_done: str | None = None
        self._transcript_done: str | None = None
        self._latency: float | None = None
        self._default_timeout = timeout
        # armed: the next response.created may be ours (after our response.create went out,
        # or after our clip started playing)
        self.armed = False

    @property
    def text(self) -> str:
        out = self._text_done if self._text_done is not None else "".join(self._texts)
        return out or self.transcript

    @property
    def transcript(self) -> str:
        if self._transcript_done is not None:
            return self._transcript_done
        return "".join(self._transcripts)

    @property
    def latency_ms(self) -> float | None:
        """What the user waited for the first of the reply (heard, else read), in ms."""
        if self.response_id is not None:
            turn = self._w._latency.turn(self.call, self.response_id)
            if turn is not None:
                value = turn.first_output_ms()
                if value is not None:
                    self._latency = value
        return self._latency

    def _timeout_words(self, timeout: float) -> str:
        got = "no response.created yet" if self.response_id is None else "no response.done yet"
        return f"the reply to ask() did not finish within {timeout:g} s ({got})"

    def claims(self, response: Mapping[str, Any]) -> bool:
        """Is this ``response.created`` ours? By the ask id in its metadata, else by order."""
        meta = obj(response.get("metadata"))
        if meta.get("rtw_ask") is not None:
            return bool(meta.get("rtw_ask") == self.ask_id)
        return self.armed

    def feed(self, event: Mapping[str, Any]) -> None:
        """One server event of this response."""
        self.events.append(dict(event))
        etype = event.get("type")
        if etype in ("response.output_text.delta", "response.text.delta"):
            self._texts.append(text(event.get("delta")) or "")
        elif etype in ("response.output_audio_transcript.delta", "response.audio_transcript.delta"):
            self._transcripts.append(text(event.get("delta")) or "")
        elif etype in ("response.output_text.done", "response.text.done"):
            self._text_done = text(event.get("text"))
        elif etype in ("response.output_audio_transcript.done", "response.audio_transcript.done"):
            self._transcript_done = text(event.get("transcript"))
        elif etype == "response.done":
            resp = obj(event.get("response"))
            self.status = text(resp.get("status"))
            details = obj(resp.get("status_details"))
            self.reason = text(details.get("reason")) or text(obj(details.get("error")).get("code"))
            self.usage = dict(obj(resp.get("usage")))
            _ = self.latency_ms  # keep the figure while the tracker still holds the turn
            self._finish()

    def fail(self, words: str) -> None:
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

    def __init__(self, widget: RealtimeWidget, delivery: Delivery) -> None:
        self._w = widget
        self._delivery = delivery
        self._lock = threading.Lock()
        self._waiters: list[EventWaiter] = []
        self._ready: list[Ready] = []
        self._ready_call = 0  # the last call whose first session.updated came
        self._ready_session: dict[str, Any] | None = None
        self._replies: list[Reply] = []  # asked, not finished
        self._by_response: dict[str, Reply] = {}
        widget._record_listeners.append(self.on_record)

    # -- the API ---------------------------------------------------------------------------

    def wait_for(
        self,
        event_type: str,
        *,
        timeout: float = 30.0,
        where: Callable[[dict[str, Any]], Any] | None = None,
    ) -> EventWaiter:
        if not isinstance(event_type, str) or not event_type:
            raise ValueError("event_type must be a server event type such as 'response.done'")
        if where is not None and not callable(where):
            raise TypeError(f"where must be a function of the event; got {where!r}")
        waiter = EventWaiter(self._delivery, event_type, where, timeout, self._forget)
        with self._lock:
            self._waiters.append(waiter)
        return waiter

    def _forget(self, waiter: EventWaiter) -> None:
        with self._lock:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def ready(self, timeout: float) -> Ready:
        w = self._w
        if not w._live:
            raise RuntimeError(
                f"no call to wait for (status {w.status!r}): connect() first, or click Connect"
            )
        handle = Ready(self._delivery, w.call_number, timeout)
        with self._lock:
            if self._ready_call == w.call_number:
                handle.session = self._ready_session
                handle._finish()
            else:
                self._ready.append(handle)
        return handle

    def ask(
        self,
        question: str | None,
        *,
        clip: Any = None,
        timeout: float = 60.0,
        respond: bool = True,
        metadata: Mapping[str, str] | None = None,
    ) -> Reply:
        w = self._w
        reply = Reply(
            self._delivery,
            w,
            call=w.call_number,
            ask_id=_new_id("ask"),
            question=question,
            clip=clip,
            timeout=timeout,
        )
        with self._lock:
            self._replies.append(reply)
        if question is not None:
            w._signalling.send_events(
                [
                    {
                        "type": "conversation.item.create",
                        "item": {
                            "type": "message",
                            "role": "user",
                            "content": [{"type": "input_text", "text": question}],
                        },
                    },
                    {
                        "type": "response.create",
                        "response": {"metadata": {**(metadata or {}), "rtw_ask": reply.ask_id}},
                    },
                ]
            )
        elif respond and clip is not None:
            clip._on_ended.append(lambda _clip: self._respond_after_clip(reply))
        return reply

    def _respond_after_clip(self, reply: Reply) -> None:
        """Without server VAD nothing answers a clip by itself: commit it and ask."""
        if self._w.turn_detection is None and not reply.done:
            self._w._signalling.send_events(
                [
                    {"type": "input_audio_buffer.commit"},
                    {
                        "type": "response.create",
                        "response": {"metadata": {"rtw_ask": reply.ask_id}},
                    },
                ]
            )

    # -- records and call state -----------------------------------------------------------

    def on_record(self, direction: str, event: Mapping[str, Any], t_ms: float, call: int) -> None:
        etype = event.get("type")
        if direction == "client" and etype == "response.create":
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
        if direction != "server":
            return
        if etype == "session.updated":
            with self._lock:
                first = self._ready_call != call
                self._ready_call, self._ready_session = call, dict(obj(event.get("session")))
                ready = [r for r in self._ready if r.call == call] if first else []
                self._ready = [r for r in self._ready if r.call != call]
            for handle in ready:
                handle.session = self._ready_session
                handle._finish()
        if etype == "response.created":
            self._created(call, obj(event.get("response")))
        self._to_reply(event)
        with self._lock:
            waiters = list(self._waiters)
        for waiter in waiters:
            waiter.offer(event)

    def _created(self, call: int, response: Mapping[str, Any]) -> None:
        rid = text(response.get("id"))
        if rid is None:
            return
        with self._lock:
            for reply in self._replies:
                if reply.call == call and reply.response_id is None and reply.claims(response):
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
        reply.feed(event)
        if reply.done:
            with self._lock:
                self._by_response.pop(rid, None)
                if reply in self._replies:
                    self._replies.remove(reply)

    def call_ended(self, words: str) -> None:
        """The call failed or hung up: what waits for it can no longer come."""
        with self._lock:
            replies, self._replies = self._replies, []
            self._by_response.clear()
            ready, self._ready = self._ready, []
            waiters, self._waiters = self._waiters, []
        for reply in replies:
            reply.fail(words)
        for handle in ready:
            handle._finish(ConnectionError(words))
        for waiter in waiters:
            waiter._finish(ConnectionError(words))
