"""RealtimeWidget: a live voice session in a notebook, driven from Python.

This module is the public API and its traits. The call's signalling lives in
``_signalling.py``, the message protocol in ``_bridge.py`` (+ ``protocol.json``), secrets in
``_secrets.py``, the turn and latency rules in ``_turns.py``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from . import _awaiting, _clips, _recording
from . import _bridge as B
from ._log import EventLog
from ._provider import DEFAULT_BASE_URL, Provider
from ._secrets import Scrubber, Secret, check_key
from ._session import SESSION_TRAITS, SessionTraits, partial_session, traits_from_session
from ._signalling import Signalling
from ._turns import TurnTracker, obj, text

_STATIC = Path(__file__).parent / "static"
Callback = Callable[[dict[str, Any]], Any]


def _now_ms() -> float:
    return time.time() * 1000.0


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

    # Python owns these (protocol.json's python_owned_traits): a page's writes are undone.
    status = t.Unicode("disconnected", help=" | ".join(B.STATUSES)).tag(sync=True)
    error = t.Unicode("", help="The last problem, in words; empty when there is none").tag(
        sync=True
    )
    mic = t.Bool(True, help="Send the microphone; False makes a receive-only call").tag(sync=True)
    muted = t.Bool(False, help="Mute the microphone track without ending the call").tag(sync=True)
    server_session = t.Dict(
        default_value={}, help="The session as the service last confirmed it (session.updated)"
    )
    record = t.Bool(
        False, help="Record both sides of the call in the browser (see w.recording)"
    ).tag(sync=True)
    tool_calls = t.List(
        t.Dict(),
        default_value=[],
        help="The latest tool calls as the view shows them (name, arguments, status, output)",
    ).tag(sync=True)
    host_info = t.Dict(
        default_value={},
        help="What this notebook host supports (binary buffers, messages while a cell awaits)",
    ).tag(sync=True)
    live_latency = t.Dict(
        default_value={"last_ms": None, "median_ms": None, "count": 0},
        help="The felt latency of the latest turn and the median of recent ones (see _turns.py)",
    ).tag(sync=True)

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        auth_scheme: str = "Bearer",
        mic: bool = True,
        record: bool = False,
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
        self._signalling = Signalling(
            _Host(self),
            Provider(self._base_url, self._api_key, auth_scheme=auth_scheme, timeout=timeout),
        )
        # The one scrubber: every shown, synced, logged, exported or posted text passes it.
        self._scrub = Scrubber(lambda: self._signalling.provider.secrets())
        self._scrub_key = Scrubber(lambda: [self._api_key.reveal()])  # for ice_servers only
        self._events = EventLog(log_path, scrub=self._scrub.json_text)
        self._callbacks: dict[str, list[Callback]] = {}
        self._batched: list[str] | None = None  # trait names changed inside batch_update()
        # The call's own state, reset by each connect: what the service says is in flight
        # (for cancel_response) and whether its audio is still playing.
        self._active_response: str | None = None
        self._audio_playing = False
        self._next_seq: dict[str, int] = {}  # each front end's next record number
        self._latency = TurnTracker(keep_all=False)
        # Features (tools, audio, awaiting) hear the current call's records, and handle their
        # own message kinds, through these: _receive_events and _on_custom_msg stay as they are.
        self._record_listeners: list[Callable[[str, Mapping[str, Any], float, int], None]] = []
        self._message_handlers: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._tool_runner: Any = None  # a ToolRunner once a tool is registered
        super().__init__(mic=mic, record=record, **session)
        self.observe(self._on_session_trait, names=list(SESSION_TRAITS))
        self.on_msg(self._on_custom_msg)
        self._init_scripted()

    # -- public API --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def events(self) -> EventLog:
        """Every event of every call of this widget, both directions, in order."""
        return self._events

    @property
    def call_number(self) -> int:
        """The number of the current (or last) call (1, 2, ...; the log's ``call_number``
        column); 0 before the first ``connect()``."""
        return self._signalling.call

    def connect(self) -> None:
        """Start a call. Returns at once; watch ``status`` (connecting -> connected)."""
        self._signalling.connect(page="")

    def disconnect(self) -> None:
        """End the call, releasing the microphone and the peer connection. The log stays."""
        self._signalling.disconnect()

    def send(self, event: Mapping[str, Any]) -> None:
        """Send any client event. Before the data channel opens it is queued, in order."""
        self._signalling.send_events([self._checked_event(event)])

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
        self._signalling.send_events(events)

    def create_response(self, **fields: Any) -> None:
        """Send ``response.create``; keyword arguments become its ``response`` object
        (``instructions``, ``output_modalities``, ``conversation``, ``metadata``, ...)."""
        event: dict[str, Any] = {"type": "response.create"}
        if fields:
            event["response"] = fields
        self._signalling.send_events([self._checked_event(event)])

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
            self._signalling.send_events(events)

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

    # -- tools: Python functions the agent calls (see _tools.py) --------------------------------

    def tool(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        approve: bool = False,
        timeout: float = 30.0,
    ) -> Any:
        """Register a Python function as a tool the agent can call; it runs in this kernel.

        Its JSON schema comes from the signature and docstring. ``approve=True`` holds each
        call until ``approve(call_id)`` / ``reject(call_id)`` (or the view's buttons).
        Usable as ``@w.tool`` or ``@w.tool(approve=True)``; returns the function."""

        def register(f: Callable[..., Any]) -> Callable[..., Any]:
            from ._tools import Tool

            made = Tool(f, name=name, description=description, approve=approve, timeout=timeout)
            others = [
                x
                for x in self.tools
                if not (x.get("type", "function") == "function" and x.get("name") == made.name)
            ]
            self._runner().tools[made.name] = made
            self.tools = [*others, made.schema()]  # one partial session.update while live
            return f

        return register(fn) if fn is not None else register

    @property
    def tool_functions(self) -> Mapping[str, Any]:
        """The registered tools by name (each shows its schema); read-only."""
        from types import MappingProxyType

        return MappingProxyType(dict(self._tool_runner.tools if self._tool_runner else {}))

    def remove_tool(self, name: str) -> None:
        """Unregister a tool and take it out of the session's ``tools``."""
        runner = self._tool_runner
        if runner is None or name not in runner.tools:
            known = sorted(runner.tools) if runner else []
            raise KeyError(f"no registered tool {name!r}; registered: {known}")
        del runner.tools[name]
        self.tools = [
            x
            for x in self.tools
            if not (x.get("type", "function") == "function" and x.get("name") == name)
        ]

    def approve(self, call_id: str) -> None:
        """Let a held tool call run (``approve=True`` tools)."""
        self._runner().decide(call_id, True)

    def reject(self, call_id: str, reason: str = "") -> None:
        """Refuse a held tool call; the model is told ``reason``."""
        self._runner().decide(call_id, False, reason)

    def _runner(self) -> Any:
        if self._tool_runner is None:
            from ._tools import ToolRunner

            self._tool_runner = ToolRunner(_ToolHost(self))
            self._record_listeners.append(self._tool_runner.on_record)
        return self._tool_runner

    def controls(self, *, debounce: float = 0.4) -> Any:
        """An ipywidgets panel linked both ways to this session's settings. Edits are sent as
        one ``session.update`` once they settle (``debounce`` seconds); the service's answer
        shows under the panel. Closing the panel lets go of the widget."""
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

    # -- scripted sessions: say, ask, wait_for, ready, recordings -------------------------------
    # (_clips.py, _awaiting.py, _recording.py; the host probe fills host_info)

    def say(
        self,
        source: Any = None,
        *,
        text: str | None = None,
        duck: float = _clips.DEFAULT_DUCK,
        sample_rate: int | None = None,
        voice: str = _clips.ESPEAK_VOICE,
        wpm: int = _clips.ESPEAK_WPM,
    ) -> _clips.Clip:
        """Play audio into the call, as if spoken into the microphone: a path, WAV/other audio
        bytes, ``(array, sample_rate)`` (numpy), or ``text=`` spoken by espeak-ng in the kernel
        (``voice``, ``wpm``). The microphone's gain is ``duck`` while it plays. Returns at once
        with a handle that fills in (``started_ms``, ``ended_ms``, ``duration_ms``, ``error``);
        ``await`` it to wait until it finished playing; ``.stop()`` cuts it."""
        return self._clip_player.say(
            source, text=text, duck=duck, sample_rate=sample_rate, voice=voice, wpm=wpm
        )

    def ask(
        self,
        text: str | None = None,
        *,
        audio: Any = None,
        spoken: bool = False,
        timeout: float = 60.0,
        duck: float = _clips.DEFAULT_DUCK,
        sample_rate: int | None = None,
        voice: str = _clips.ESPEAK_VOICE,
        wpm: int = _clips.ESPEAK_WPM,
    ) -> _awaiting.Reply:
        """Ask one question and get a handle on its reply: ``text`` as a typed turn, or
        ``audio=`` (anything ``say()`` plays; ``spoken=True`` speaks ``text``) as a spoken turn
        the service hears. ``reply = await w.ask(...)`` in the same cell where the host allows
        it; else read the handle in the next cell (``.text``, ``.transcript``, ``.status``,
        ``.response_id``, ``.latency_ms``, ``.events``)."""
        if not self._live:
            raise RuntimeError(
                f"ask() needs a call (status {self.status!r}): connect() first, or click Connect"
            )
        if (text is None) == (audio is None) and not (spoken and text is not None):
            raise TypeError("ask() takes one question: text, audio=..., or text with spoken=True")
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise ValueError(f"text must be a non-empty string; got {text!r}")
        if audio is None and not spoken:
            return self._waits.ask(text, timeout=timeout)
        clip = self._clip_player.say(
            audio,
            text=text if spoken else None,
            duck=duck,
            sample_rate=sample_rate,
            voice=voice,
            wpm=wpm,
        )
        return self._waits.ask(None, clip=clip, timeout=timeout)

    def wait_for(
        self,
        event_type: str,
        *,
        timeout: float = 30.0,
        where: Callable[[dict[str, Any]], Any] | None = None,
    ) -> _awaiting.EventWaiter:
        """The next server event of ``event_type`` (``"*"``: any) for which ``where(event)``
        holds, counted from this call: ``ev = await w.wait_for("response.done")``."""
        return self._waits.wait_for(event_type, timeout=timeout, where=where)

    def ready(self, timeout: float = 10.0) -> _awaiting.Ready:
        """``await w.ready()``: until the call's first ``session.updated`` (the session the
        service confirmed); at once if it came already."""
        return self._waits.ready(timeout)

    @property
    def recording(self) -> _recording.Recording | None:
        """The current call's recording (``record=True``), or None when it has none."""
        return self._recordings.by_call.get(self.call_number)

    @property
    def recordings(self) -> Mapping[int, _recording.Recording]:
        """Every call's recording, by call number."""
        return dict(self._recordings.by_call)

    def _init_scripted(self) -> None:
        self._delivery = _awaiting.Delivery(self)
        self._clip_player = _clips.ClipPlayer(self, self._delivery)
        self._waits = _awaiting.Awaiting(self, self._delivery)
        self._recordings = _recording.Recordings(self)
        self.observe(self._scripted_status, names=["status"])

    def _scripted_status(self, change: Mapping[str, Any]) -> None:
        new, old = change["new"], change["old"]
        if new == "connecting" and self.host_info.get("round_trip_ms") is None:
            self._delivery.probe()  # learn, once, what this host carries (host_info)
        elif new == "connected":
            self._clip_player.flush()
        elif new in ("failed", "disconnected") and old in ("connecting", "connected"):
            words = self.error or f"the call is {new}"
            self._clip_player.call_ended(words)
            self._waits.call_ended(words)

    def _send_binary(self, message: dict[str, Any], buffers: list[bytes]) -> None:
        """A message with binary buffers (``play``, ``probe``), scrubbed like every other."""
        anywidget.AnyWidget.send(self, self._scrub.value(message), buffers or None)

    # -- end of scripted sessions ---------------------------------------------------------------

    # -- experiments: one script across session variants (_experiments.py) ---------------------

    def run_script(
        self,
        script: Any,
        variants: Mapping[str, Mapping[str, Any]] | None = None,
        repeat: int = 1,
        *,
        fresh_call: Any = frozenset(),
        isolation: str = "conversation",
        timeout: float = 60.0,
        seed: int = 0,
        progress: bool = True,
    ) -> Any:
        """Play a ``Script`` in every (variant, repeat) run and return its ``Runs`` at once:
        ``runs = await w.run_script(script, variants={"fast": {"speed": 1.3}}, repeat=3)``, or
        read ``runs`` in a later cell. Each run applies its variant's fields as one
        ``session.update`` (a new call for fields in ``fresh_call``, or every run with
        ``fresh_call=True``), starts from an empty conversation (``isolation``), and plays the
        turns in order, each awaiting its reply. See ``realtime_widget._experiments``."""
        from ._experiments import run_script

        return run_script(
            self,
            script,
            variants,
            repeat,
            fresh_call=fresh_call,
            isolation=isolation,
            timeout=timeout,
            seed=seed,
            progress=progress,
        )

    # -- end of experiments ---------------------------------------------------------------------

    def close(self) -> None:
        """Hang up, stop the worker thread and close the widget and its log file."""
        if not hasattr(self, "_events"):  # __init__ raised before the widget existed
            super().close()
            return
        if self.comm is not None:
            self.disconnect()
        self._signalling.shutdown()
        self._signalling.provider.close()
        if self._tool_runner is not None:
            self._tool_runner.close()
        self._events.close()
        if hasattr(self, "_recordings"):
            self._recordings.close()
        super().close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # Shown in a page: fetch the ICE servers now, so a Connect click starts at once.
        self._signalling.prefetch_ice()
        return super()._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        # Only user-facing state; the key is never part of it.
        return (
            f"<RealtimeWidget status={self.status!r} base_url={self._base_url!r} "
            f"voice={self.voice!r} events={len(self._events)}>"
        )

    # -- boundaries: what leaves the kernel or is kept ----------------------------------------

    @t.validate("error")
    def _scrubbed_error(self, proposal: Any) -> str:
        return self._scrub.text(str(proposal["value"]))

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """A page's trait writes: those Python owns are refused, logged, and put back."""
        refused = sorted(set(sync_data) & B.PYTHON_OWNED_TRAITS)
        if refused:
            sync_data = {k: v for k, v in sync_data.items() if k not in refused}
            self._log_local({"type": "state.refused", "names": refused})
        if sync_data:
            super().set_state(sync_data)
        if refused:
            self.send_state(refused)  # every page sees Python's value again

    def _post(self, message: dict[str, Any]) -> None:
        """Send one custom message to the front end (the only way anything reaches it)."""
        anywidget.AnyWidget.send(self, message)

    def _to_browser(self, message: dict[str, Any]) -> None:
        """Every message to a page passes here: the key is scrubbed from all of it; TURN
        credentials may ride only in a connect message's ``ice_servers``."""
        out = {
            k: (self._scrub_key.value(v) if k == "ice_servers" else self._scrub.value(v))
            for k, v in message.items()
        }
        self._post(out)

    def _log_local(self, event: dict[str, Any], call: int | None = None) -> None:
        now = _now_ms()
        self._events.append(
            "local",
            event,
            t_ms=now,
            t_kernel_ms=now,
            call_number=self.call_number if call is None else call,
        )

    # -- internals ---------------------------------------------------------------------------

    @property
    def _provider(self) -> Provider:
        return self._signalling.provider

    @_provider.setter
    def _provider(self, provider: Provider) -> None:
        self._signalling.provider = provider

    def _wait_idle(self, timeout: float = 10.0) -> None:
        """Wait for provider calls in flight (for tests and scripts; cells never need it)."""
        self._signalling.wait_idle(timeout)

    @property
    def _live(self) -> bool:
        return self._signalling.live

    def _call_started(self, call: int) -> None:
        """Per-call state starts afresh: nothing is in flight on a new call."""
        self._active_response = None
        self._audio_playing = False
        if self._tool_runner is not None:
            self._tool_runner.reset()

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
        self._signalling.send_events(
            [{"type": "session.update", "session": partial_session(self, names)}]
        )

    # -- from the browser --------------------------------------------------------------------

    def _on_custom_msg(self, _widget: Any, content: Any, buffers: Any) -> None:
        parsed = B.parse(content, buffers)
        if parsed.problems:
            self._log_local(
                {
                    "type": "message.refused",
                    "kind": parsed.kind,
                    "page": parsed.page,
                    "reason": "; ".join(parsed.problems),
                }
            )
        msg = parsed.msg
        if msg is None:
            return
        kind, page = msg["kind"], msg["page"]
        if kind == B.EVENTS:
            self._receive_events(msg["call"], page, msg["records"])
        elif kind == B.OFFER:
            self._signalling.offer(msg["call"], page, msg["sdp"])
        elif kind == B.STATE:
            accepted = self._signalling.state(msg["call"], page, msg["state"], msg["detail"])
            # (a page letting go confirms with "disconnected": expected, not worth a record)
            if not accepted and msg["state"] != "disconnected":
                self._refuse(
                    kind, page, f"{msg['state']}: page does not speak for call {msg['call']}"
                )
        elif kind == B.REQUEST:
            self._receive_request(page, msg)
        elif kind in self._message_handlers:
            self._message_handlers[kind](msg)

    def _refuse(self, kind: str, page: str, reason: str) -> None:
        self._log_local({"type": "message.refused", "kind": kind, "page": page, "reason": reason})

    def _receive_request(self, page: str, msg: dict[str, Any]) -> None:
        action = msg["action"]
        if action != "connect" and self._live and not self._signalling.speaks_for(page):
            self._refuse(B.REQUEST, page, f"{action}: page does not hold the call")
            return
        try:
            if action == "connect":
                self._signalling.connect(page)  # the page whose button was clicked takes it
            elif action == "disconnect":
                self.disconnect()
            elif action == "send_text":
                self.send_text(msg["text"])
            elif action == "cancel_response":
                self.cancel_response()
            elif action in ("approve", "reject"):
                self._runner().decide(msg["call_id"], action == "approve", msg["reason"])
        except (ValueError, TypeError) as exc:
            self.error = str(exc)

    def _receive_events(self, call: int, page: str, records: list[B.Record]) -> None:
        t_kernel = _now_ms()
        rows: list[tuple[str, Mapping[str, Any], float, float, int]] = []
        for rec in records:
            if rec.dir == "local" and rec.event.get("type") == "call.start":
                self._signalling.attempt_started(call, page)
            self._check_seq(page, rec.seq, rows, t_kernel, call)
            t_ms = rec.t_ms if rec.t_ms is not None else t_kernel
            rows.append((rec.dir, rec.event, t_ms, t_kernel, call))
        self._events.extend(rows)
        current = call == self.call_number
        changed = False
        for direction, event, t_ms, _, _ in rows:
            if current:  # an older call's late events must not touch this call's state
                changed |= self._latency.feed(call, direction, event, t_ms)
                for listener in self._record_listeners:
                    listener(direction, event, t_ms, call)
            if direction == "server":
                self._dispatch(event, current=current)
        if changed:
            self.live_latency = self._latency.summary()

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
            if etype == "session.updated" and isinstance(event.get("session"), dict):
                self.server_session = event["session"]
            elif etype == "response.created":
                self._active_response = text(obj(event.get("response")).get("id")) or "?"
            elif etype == "response.done":
                self._active_response = None
            elif etype == "output_audio_buffer.started":
                self._audio_playing = True
            elif etype in ("output_audio_buffer.stopped", "output_audio_buffer.cleared"):
                self._audio_playing = False
        name = etype if isinstance(etype, str) else ""
        for fn in [*self._callbacks.get(name, []), *self._callbacks.get("*", [])]:
            try:
                fn(dict(event))
            except Exception as exc:  # a user's callback must not break the event stream
                tb = self._scrub.text(traceback.format_exc())
                self._log_local({"type": "callback.error", "event_type": name, "traceback": tb})
                self.error = (
                    f"Your callback for {name!r} raised {type(exc).__name__}: {exc} "
                    "(traceback in w.events, type 'callback.error')"
                )
                print(tb, file=sys.stderr)


class _Host:
    """The widget as its signalling sees it (see ``_signalling.Host``)."""

    def __init__(self, widget: RealtimeWidget) -> None:
        self._w = widget

    def post(self, message: dict[str, Any]) -> None:
        self._w._to_browser(message)

    def show_status(self, status: str, error: str | None) -> None:
        if error is not None:
            self._w.error = error
        self._w.status = status

    def log_local(self, event: dict[str, Any], call: int) -> None:
        self._w._log_local(event, call)

    def session_update(self) -> dict[str, Any]:
        from ._session import session_payload

        return {"type": "session.update", "session": session_payload(self._w)}

    def wants_mic(self) -> bool:
        return bool(self._w.mic)

    def call_started(self, call: int) -> None:
        self._w._call_started(call)


class _ToolHost:
    """The widget as the tool loop sees it (see ``_tools.RunnerHost``)."""

    def __init__(self, widget: RealtimeWidget) -> None:
        self._w = widget

    def send_events(self, events: list[dict[str, Any]]) -> None:
        self._w._signalling.send_events(events)

    def log_local(self, event: dict[str, Any]) -> None:
        self._w._log_local(event)

    def show_calls(self, calls: list[dict[str, Any]]) -> None:
        self._w.tool_calls = calls

    def scrub(self, text: str) -> str:
        return self._w._scrub.text(text)

    def loop(self) -> Any:
        return self._w._signalling._loop
