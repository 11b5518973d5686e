"""RealtimeWidget: a live voice session in a notebook, driven from Python."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from . import _bridge as B
from ._log import EventLog
from ._provider import (
    DEFAULT_BASE_URL,
    NO_KEY_MESSAGE,
    Provider,
    ProviderError,
    Secret,
    check_key,
    redact,
)
from ._session import SESSION_TRAITS, SessionTraits, partial_session, traits_from_session

_STATIC = Path(__file__).parent / "static"
Callback = Callable[[dict[str, Any]], Any]


def _now_ms() -> float:
    return time.time() * 1000.0


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _unexpected(doing: str, exc: BaseException) -> str:
    # Only the exception's type: its text could quote a request header.
    return f"Unexpected {type(exc).__name__} while {doing}; connect() again, or report a bug."


def _key_from_env() -> str:
    key = os.environ.get("INWORLD_API_KEY", "")
    if key:
        return key
    try:  # a .env file is honoured when python-dotenv is installed (the "all" extra)
        from dotenv import dotenv_values
    except ImportError:
        return ""
    return dotenv_values().get("INWORLD_API_KEY") or ""


class RealtimeWidget(SessionTraits, anywidget.AnyWidget):
    """A voice conversation with a realtime agent, in the browser's WebRTC, driven from Python.

    Nothing here waits for the browser: ``connect()`` returns at once and the call's progress
    shows in ``status``, ``error``, callbacks and ``events``.
    """

    _esm = _STATIC / "widget.js"
    _css = _STATIC / "widget.css"

    status = t.Unicode("disconnected", help=" | ".join(B.STATUSES)).tag(sync=True)
    error = t.Unicode("", help="The last problem, in words; empty when there is none").tag(
        sync=True
    )
    mic = t.Bool(True, help="Send the microphone; False makes a receive-only call").tag(sync=True)
    muted = t.Bool(False, help="Mute the microphone track without ending the call").tag(sync=True)
    server_session = t.Dict(
        default_value={}, help="The session as the service last confirmed it (session.updated)"
    )

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        auth_scheme: str = "Bearer",
        mic: bool = True,
        log_path: str | os.PathLike[str] | None = None,
        timeout: float = 10.0,
        **session: Any,
    ) -> None:
        unknown = sorted(set(session) - set(SESSION_TRAITS))
        if unknown:
            raise TypeError(
                f"RealtimeWidget() got unknown argument(s) {unknown}; session fields are: "
                f"{', '.join(SESSION_TRAITS)}"
            )
        self._api_key = Secret(check_key(api_key if api_key is not None else _key_from_env()))
        self._base_url = base_url or os.environ.get("INWORLD_BASE_URL") or DEFAULT_BASE_URL
        self._provider = Provider(
            self._base_url, self._api_key, auth_scheme=auth_scheme, timeout=timeout
        )
        self._events = EventLog(log_path)
        self._callbacks: dict[str, list[Callback]] = {}
        # Client events waiting for a call's `connect` message (they travel inside it).
        self._pending: list[dict[str, Any]] = []
        self._call = 0
        self._posted_call = 0  # the last call whose `connect` message went to the browser
        # Several pages may show this widget; one holds the call: the one whose Connect was
        # clicked, else the first to send an offer. "" addresses whichever page has it.
        self._connect_page = ""
        self._call_page: str | None = None
        # Guards the call's state (status, call numbers, pending events) and keeps message
        # order against the worker thread that runs the HTTP requests.
        self._lock = threading.RLock()
        # Inside a kernel, work finished on the worker thread is handed back to the kernel's
        # event loop, so traits change and messages go out on the main thread, between cells.
        self._loop = _running_loop()
        self._executor: ThreadPoolExecutor | None = None
        self._batched: list[str] | None = None  # trait names changed inside batch_update()
        self._work: list[Future[Any]] = []
        # What the service last said is in flight (for cancel_response)
        self._active_response: str | None = None
        self._next_seq: dict[str, int] = {}  # each front end's next record number
        self._audio_playing = False
        super().__init__(mic=mic, **session)
        self.observe(self._on_session_trait, names=list(SESSION_TRAITS))
        self.on_msg(self._on_custom_msg)

    # -- public API --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def events(self) -> EventLog:
        """Every event of every call of this widget, both directions, in order."""
        return self._events

    @property
    def call(self) -> int:
        """The number of the current (or last) call; 0 before the first ``connect()``."""
        return self._call

    def connect(self) -> None:
        """Start a call. Returns at once; watch ``status`` (connecting -> connected)."""
        self._connect(page="")

    def _connect(self, page: str) -> None:
        """``page``: the front end that asked (its Connect button), or "" for whichever front
        end answers first. Either way one page holds the call (see ``_call_page``)."""
        with self._lock:
            if self._live:
                return
            self._call += 1
            call = self._call
            self._call_page = page or None
            self._connect_page = page
            self.error = ""
            self.status = "connecting"
        if not self._api_key:
            self._fail(call, NO_KEY_MESSAGE)
            return
        self._submit(self._fetch_ice, call)

    def disconnect(self) -> None:
        """End the call, releasing the microphone and the peer connection. The log stays."""
        with self._lock:
            if self._browser_has_call:
                self._post(B.message(B.DISCONNECT, call=self._call, page=self._owner))
            # The call number stays, so late events of this call are still logged under it.
            self.status = "disconnected"

    def send(self, event: Mapping[str, Any]) -> None:
        """Send any client event. Before the data channel opens it is queued, in order."""
        self._send_events([self._checked_event(event)])

    def send_text(self, text: str, *, respond: bool = True) -> None:
        """Add a user text message to the conversation and (by default) ask for a response."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"text must be a non-empty string; got {text!r}")
        events: list[dict[str, Any]] = [
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                },
            }
        ]
        if respond:
            events.append({"type": "response.create"})
        self._send_events(events)

    def create_response(self, **fields: Any) -> None:
        """Send ``response.create``; keyword arguments become its ``response`` object
        (``instructions``, ``output_modalities``, ``conversation``, ``metadata``, ...)."""
        event: dict[str, Any] = {"type": "response.create"}
        if fields:
            event["response"] = fields
        self._send_events([self._checked_event(event)])

    def cancel_response(self, response_id: str | None = None, *, clear_audio: bool = True) -> None:
        """Interrupt the agent: ``response.cancel`` (for ``response_id``, else the active
        response), then, over WebRTC, ``output_audio_buffer.clear`` so audio the service has
        already queued stops too (``clear_audio=False`` to leave it)."""
        events: list[dict[str, Any]] = []
        # Cancelling with nothing in flight is an error at the service: only when one is.
        if response_id or self._active_response:
            events.append({"type": "response.cancel"})
            if response_id:
                events[0]["response_id"] = response_id
        if clear_audio and (self._audio_playing or events):
            events.append({"type": "output_audio_buffer.clear"})
        if events:
            self._send_events(events)

    def on(self, event_type: str, callback: Callback | None = None) -> Any:
        """Call ``callback(event)`` in the kernel for each server event of ``event_type``
        (``"*"`` for all). Usable as a decorator; returns the callback."""
        if not isinstance(event_type, str) or not event_type:
            raise ValueError(
                "event_type must be a server event type such as 'response.done' or '*'"
            )

        def register(fn: Callback) -> Callback:
            if not callable(fn):
                raise TypeError(f"callback must be callable; got {fn!r}")
            self._callbacks.setdefault(event_type, []).append(fn)
            return fn

        return register(callback) if callback is not None else register

    def off(self, event_type: str, callback: Callback | None = None) -> None:
        """Remove one callback, or all callbacks of ``event_type``."""
        if callback is None:
            self._callbacks.pop(event_type, None)
        elif callback in self._callbacks.get(event_type, []):
            self._callbacks[event_type].remove(callback)

    def apply_session(self, session: Mapping[str, Any]) -> None:
        """Validate a session dict (as ``session_config()`` returns) and apply it at once:
        nothing changes if any field is invalid, and a live call gets one ``session.update``."""
        self.update_session(**traits_from_session(session))

    def update_session(self, **fields: Any) -> None:
        """Set several session fields at once, as one ``session.update``; if any value is
        invalid, none is applied. ``w.update_session(voice="Sarah", speed=1.2)``"""
        unknown = sorted(set(fields) - set(SESSION_TRAITS))
        if unknown:
            raise TypeError(
                f"unknown session field(s) {unknown}; known: {', '.join(SESSION_TRAITS)}"
            )
        # Validate everything on a scratch copy first, so a bad field changes nothing.
        scratch = SessionTraits(**{n: getattr(self, n) for n in SESSION_TRAITS})
        for name, value in fields.items():
            setattr(scratch, name, value)
        with self.batch_update():
            for name in fields:
                setattr(self, name, getattr(scratch, name))

    def controls(self, *, debounce: float = 0.4) -> Any:
        """An ipywidgets panel linked both ways to this session's settings. Edits are sent as
        one ``session.update`` once they settle (``debounce`` seconds); the service's answer
        shows under the panel."""
        from ._controls import ControlPanel

        return ControlPanel(self, debounce=debounce)

    @contextmanager
    def batch_update(self) -> Any:
        """Group several session trait changes into one ``session.update``."""
        outer = self._batched is None
        if outer:
            self._batched = []
        try:
            yield self
        finally:
            if outer:
                names, self._batched = self._batched or [], None
                if names:
                    self._session_changed(names)

    def close(self) -> None:
        """Hang up, stop the worker thread and close the widget and its log file."""
        if not hasattr(self, "_events"):  # __init__ raised before the widget existed
            super().close()
            return
        if self.comm is not None:
            self.disconnect()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._events.close()
        super().close()

    def __repr__(self) -> str:
        # Only user-facing state; the key is never part of it.
        return (
            f"<RealtimeWidget status={self.status!r} base_url={self._base_url!r} "
            f"voice={self.voice!r} events={len(self._events)}>"
        )

    # -- internals ---------------------------------------------------------------------------

    def _post(self, message: dict[str, Any]) -> None:
        """Send one custom message to the front end (the only way anything reaches it)."""
        anywidget.AnyWidget.send(self, message)

    def _submit(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="realtime-widget")
        self._work = [f for f in self._work if not f.done()]
        self._work.append(self._executor.submit(fn, *args))

    def _wait_idle(self, timeout: float = 10.0) -> None:
        """Wait for provider calls in flight (for tests and scripts; cells never need it)."""
        for f in list(self._work):
            f.result(timeout=timeout)

    @property
    def _live(self) -> bool:
        return self.status in ("connecting", "connected")

    def _current(self, call: int) -> bool:
        return call == self._call and self._live

    def _on_main(self, fn: Callable[..., Any], call: int, *args: Any) -> None:
        """Run ``fn(call, ...)`` on the kernel's event loop when there is one (else right
        here); if it raises, the call fails with words instead of hanging in "connecting"."""

        def guarded() -> None:
            try:
                fn(call, *args)
            except Exception as exc:
                self._fail(call, _unexpected("starting the call", exc))

        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(guarded)
        else:
            guarded()

    def _fail(self, call: int, message: str, *, log: bool = True) -> None:
        """Fail ``call`` if it is still the live one. ``log=False`` when the browser has
        recorded the failure itself, so each failure is in the log once."""
        with self._lock:
            if not self._current(call):
                return  # e.g. the user hung up meanwhile: a late error must not revive it
            error = self._redact(message)
            self.error = error
            self.status = "failed"
        if log:
            now = _now_ms()
            self._events.append(
                "local",
                {"type": "call.failed", "detail": error},
                t_ms=now,
                t_kernel_ms=now,
                call=call,
            )

    def _redact(self, text: str) -> str:
        """Scrub the key and any TURN credential from words about to be shown or kept."""
        return redact(text, self._provider.secrets())

    @property
    def _browser_has_call(self) -> bool:
        """The live call's `connect` message has gone out: the browser knows the call."""
        return self._live and self._posted_call == self._call

    def _fetch_ice(self, call: int) -> None:  # on the worker thread
        try:
            ice_servers = self._provider.ice_servers()
        except ProviderError as exc:
            self._on_main(self._fail, call, exc.message)
        except Exception as exc:
            self._on_main(self._fail, call, _unexpected("fetching the ICE servers", exc))
        else:
            self._on_main(self._start_call, call, ice_servers)

    def _start_call(self, call: int, ice_servers: list[dict[str, Any]]) -> None:
        from ._session import session_payload

        with self._lock:  # held across the check and the post: disconnect() cannot slip in
            if not self._current(call):
                return
            queued, self._pending = self._pending, []
            self._posted_call = call
            self._post(
                B.message(
                    B.CONNECT,
                    call=call,
                    ice_servers=ice_servers,  # TURN credentials travel here and nowhere else
                    session_update={"type": "session.update", "session": session_payload(self)},
                    queued=queued,
                    mic=self.mic,
                    gather_timeout_ms=B.DEFAULT_GATHER_TIMEOUT_MS,
                    page=self._connect_page,
                )
            )

    def _answer_offer(self, call: int, sdp: str) -> None:  # on the worker thread
        try:
            answer = self._provider.exchange_sdp(sdp)
        except ProviderError as exc:
            self._on_main(self._refuse_offer, call, exc.message)
        except Exception as exc:
            self._on_main(self._refuse_offer, call, _unexpected("exchanging the SDP", exc))
        else:
            self._on_main(self._deliver_answer, call, answer)

    def _deliver_answer(self, call: int, answer: str) -> None:
        with self._lock:
            if self._current(call):
                self._post(B.message(B.ANSWER, call=call, page=self._owner, sdp=answer))

    def _refuse_offer(self, call: int, message: str) -> None:
        with self._lock:
            if self._current(call):
                # The browser records the failure (and reports it back) on this message.
                self._post(B.message(B.SIGNAL_ERROR, call=call, page=self._owner, message=message))
            self._fail(call, message, log=False)

    @staticmethod
    def _checked_event(event: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(event, Mapping):
            raise TypeError(f"event must be a dict with a 'type'; got {type(event).__name__}")
        etype = event.get("type")
        if not isinstance(etype, str) or not etype:
            raise ValueError(f"event needs a string 'type' (e.g. 'response.create'); got {etype!r}")
        try:
            return dict(json.loads(json.dumps(event)))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"event {etype!r} is not JSON-serializable: {exc}") from None

    def _send_events(self, events: list[dict[str, Any]]) -> None:
        with self._lock:
            if self._browser_has_call:
                self._post(B.message(B.SEND, call=self._call, page=self._owner, events=events))
            else:  # no call, or its `connect` message not out yet: it will carry them
                self._pending.extend(events)

    def _on_session_trait(self, change: Mapping[str, Any]) -> None:
        if self._batched is not None:
            if change["name"] not in self._batched:
                self._batched.append(change["name"])
            return
        self._session_changed([change["name"]])

    def _session_changed(self, names: list[str]) -> None:
        # Only a live call needs an update: the next connect() sends the whole session anyway.
        if not self._live:
            return
        self._send_events([{"type": "session.update", "session": partial_session(self, names)}])

    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("kind")
        call = content.get("call", self._call)
        page = str(content.get("page", ""))
        if kind == B.EVENTS:
            self._receive_events(call, page, content.get("records") or [])
        elif kind == B.OFFER:
            self._receive_offer(call, page, content.get("sdp"))
        elif kind == B.STATE:
            if self._call_page is not None and page != self._call_page:
                return  # another page's report on a call it does not hold
            self._receive_state(call, str(content.get("state")), str(content.get("detail") or ""))
        elif kind == B.REQUEST:
            self._receive_request(page, content)

    @property
    def _owner(self) -> str:
        """The page holding the current call ("" while no page has offered yet)."""
        return self._call_page or ""

    def _receive_offer(self, call: int, page: str, sdp: Any) -> None:
        with self._lock:
            if not self._current(call):  # an orphan (the user hung up meanwhile): drop it
                self._post(B.message(B.DISCONNECT, call=call, page=page))
                return
            if self._call_page is None:
                self._call_page = page  # the first page to offer holds the call
            elif page != self._call_page:  # another tab showing this widget lost the race
                self._post(B.message(B.DISCONNECT, call=call, page=page))
                return
        if isinstance(sdp, str):
            self._submit(self._answer_offer, call, sdp)
        else:
            self._post(B.message(B.DISCONNECT, call=call, page=page))
            self._fail(call, "The browser sent an offer without SDP; connect() again.")

    def _receive_state(self, call: int, state: str, detail: str) -> None:
        detail = self._redact(detail)
        if state == "failed":  # the browser has logged it (call.failed) already
            self._fail(call, detail or "The call failed.", log=False)
            return
        with self._lock:
            if call != self._call or state not in B.STATUSES:
                return
            if self.status in ("disconnected", "failed") and state != "disconnected":
                return  # over already: a late report must not revive the call
            if detail:
                self.error = detail
            self.status = state

    def _receive_request(self, page: str, content: dict[str, Any]) -> None:
        action = content.get("action")
        try:
            if action == "connect":
                self._connect(page)  # the page whose button was clicked takes the call
            elif action == "disconnect":
                self.disconnect()
            elif action == "send_text":
                self.send_text(str(content.get("text", "")))
            elif action == "cancel_response":
                self.cancel_response()
        except (ValueError, TypeError) as exc:
            self.error = str(exc)

    def _receive_events(self, call: int, page: str, records: list[Any]) -> None:
        t_kernel = _now_ms()
        rows: list[tuple[str, Mapping[str, Any], float, float, int]] = []
        for rec in records:
            if not isinstance(rec, dict) or rec.get("dir") not in B.DIRECTIONS:
                continue
            self._check_seq(page, rec.get("seq"), rows, t_kernel, int(call))
            t_ms = rec.get("t_ms")
            event = rec.get("event")
            rows.append(
                (
                    rec["dir"],
                    event if isinstance(event, dict) else {"type": "local.invalid", "value": event},
                    float(t_ms) if isinstance(t_ms, int | float) else t_kernel,
                    t_kernel,
                    int(call),
                )
            )
        self._events.extend(rows)
        for direction, event, *_ in rows:
            if direction == "server" and isinstance(event, dict):
                self._dispatch(event)

    def _check_seq(self, page: str, seq: Any, rows: list[Any], t_kernel: float, call: int) -> None:
        """Each front end numbers its records; a jump means records were lost on the way, and
        the log says so (a ``log.gap`` event) instead of hiding it."""
        if not isinstance(seq, int):
            return
        expected = self._next_seq.get(page)
        self._next_seq[page] = max(seq + 1, expected or 0)
        if expected is not None and seq > expected:
            gap = {"type": "log.gap", "page": page, "expected_seq": expected, "got_seq": seq}
            rows.append(("local", gap, t_kernel, t_kernel, call))

    def _dispatch(self, event: dict[str, Any]) -> None:
        etype = event.get("type")
        if etype == "session.updated" and isinstance(event.get("session"), dict):
            self.server_session = event["session"]
        elif etype == "response.created":
            self._active_response = (event.get("response") or {}).get("id") or "?"
        elif etype == "response.done":
            self._active_response = None
        elif etype == "output_audio_buffer.started":
            self._audio_playing = True
        elif etype in ("output_audio_buffer.stopped", "output_audio_buffer.cleared"):
            self._audio_playing = False
        for fn in [*self._callbacks.get(str(etype), []), *self._callbacks.get("*", [])]:
            try:
                fn(event)
            except Exception as exc:  # a user's callback must not break the event stream
                tb = traceback.format_exc()
                self._events.append(
                    "local",
                    {"type": "callback.error", "event_type": etype, "traceback": tb},
                    t_ms=_now_ms(),
                    t_kernel_ms=_now_ms(),
                    call=self._call,
                )
                self.error = (
                    f"Your callback for {etype!r} raised {type(exc).__name__}: {exc} "
                    "(traceback in w.events, type 'callback.error')"
                )
                print(tb, file=sys.stderr)
