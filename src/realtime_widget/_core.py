"""The session core: what a call is in Python, whatever holds it.

``SessionCore`` holds the session traits and their guard, the event log, tools, clips, waits,
recordings, the sideband and ``run_script``, and wires each feature to the one port
(``_port.py``): no feature ever sees the widget. A call reaches the service through a
*transport* (``_transport.py``): the page (the browser's WebRTC, ``RealtimeWidget``) or the
kernel itself (the service's WebSocket, ``RealtimeSession``). The core writes the status,
the error and the live figures in one place (``_show``), whichever transport reports them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import traitlets as t

from . import _audio, _clips
from . import _bridge as B
from . import _vocab as V
from ._call_control import CallControl, check_mode
from ._clips import Clip, ClipPlayer
from ._delivery import Delivery
from ._env import base_url_from_env, key_from_env
from ._inbox import Callback, Inbox
from ._log import EventLog
from ._port import SessionPort
from ._provider import DEFAULT_BASE_URL, Provider
from ._recording import Recording, Recordings
from ._secrets import Scrubber, Secret, check_key
from ._session import (
    SESSION_TRAITS,
    SessionTraits,
    partial_session,
    session_payload,
    traits_from_session,
)
from ._session_guard import SessionGuard
from ._signalling import CallHost, Signalling
from ._waits import Awaiting, EventWaiter, Ready, Reply

if TYPE_CHECKING:
    from ._controls import ControlPanel
    from ._tools import Tool, ToolRunner
    from ._transport import Transport
    from .evaluate import ModelEndpoint
    from .experiments import Runs, Script, Turn
    from .experiments._feature import Experiments
    from .experiments._tune import Tuning
    from .media import Condition


class SessionCore(SessionTraits):
    """A realtime session's state and features, driven from Python; its subclasses choose the
    transport (``_open_transport``) and how it is shown.

    Nothing here waits for the service: ``connect()`` starts a call and its progress shows in
    ``status``, ``error``, callbacks and ``events``.
    """

    # The call's state, written by the core alone (``_show``); the widget syncs them to its view.
    status = t.Unicode("disconnected", help=" | ".join(B.STATUSES))
    error = t.Unicode("", help="The last problem, in words; empty when there is none")
    mic = t.Bool(True, help="Send the microphone; False makes a receive-only call")
    muted = t.Bool(False, help="Mute the microphone track without ending the call")
    server_session = t.Dict(
        default_value={}, help="The session as the service last confirmed it (session.updated)"
    )
    record = t.Bool(
        False, help="Record both sides of the call, on the log's clock (see .recording)"
    )
    tool_calls = t.List(
        t.Dict(),
        default_value=[],
        help="The latest tool calls as the view shows them (name, arguments, status, output)",
    )
    host_info = t.Dict(
        default_value={},
        help="What this notebook host supports (binary buffers, messages while a cell awaits) "
        "and whether the call's sideband is up",
    )
    live_latency = t.Dict(
        default_value={"last_ms": None, "median_ms": None, "count": 0},
        help="The latest turn's felt latency and the recent median (events.latency_summary())",
    )

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
        sideband: str | bool = "auto",
        tracing: bool | None = None,
        tracer_provider: Any = None,
        capture_content: bool | None = None,
        **session: Any,
    ) -> None:
        # The sideband is the page's: a call the kernel holds has no second path.
        sideband_mode = check_mode(sideband) if self._transport_kind == "page" else False
        unknown = sorted(set(session) - set(SESSION_TRAITS))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got unknown argument(s) {unknown}; session fields "
                f"are: {', '.join(SESSION_TRAITS)}"
            )
        self._api_key = Secret(check_key(api_key if api_key is not None else key_from_env()))
        self._base_url = base_url or base_url_from_env() or DEFAULT_BASE_URL
        provider = Provider(self._base_url, self._api_key, auth_scheme=auth_scheme, timeout=timeout)
        # The one scrubber: every shown, synced, logged, exported or posted text passes it.
        self._scrub = Scrubber(lambda: self._signalling.provider.secrets())
        self._events = EventLog(log_path, scrub=self._scrub.json_text)
        # The features' one port to the call (what the transport is posted passes its scrubbers).
        self._port = SessionPort(
            events=self._events,
            scrub=self._scrub,
            scrub_key=Scrubber(lambda: [self._api_key.reveal()]),  # for ice_servers only
            outlet=self._outlet,
            shown=lambda: (self.status, self.error),
        )
        self._signalling = Signalling(
            CallHost(
                post=self._port.post,
                show_status=self._show_status,
                log_local=self._port.log_local,
                session_update=self._session_update_event,
                wants_mic=lambda: bool(self.mic),
                call_started=self._call_started,
                call_answered=self._call_answered,
            ),
            provider,
            needs_ice=self._transport_kind == "page",
        )
        self._port.bind(self._signalling)
        # Every session.update checked against the service's answer (session.rejected / drift).
        self._session_guard = SessionGuard(self._port, self._show_session_error)
        self._inbox = Inbox(
            self._port, self._signalling, self._events, show=self._show, request=self._request
        )
        self._batched: list[str] | None = None  # trait names changed inside batch_update()
        self._tool_runner: ToolRunner | None = None  # once a tool is registered
        super().__init__(mic=mic, record=record, **session)
        self._transport: Transport = self._open_transport()
        self.observe(self._on_session_trait, names=list(SESSION_TRAITS))
        self._init_scripted()
        # The kernel on the call: its sideband, the page watch, the exit hang-up.
        self._control = CallControl(
            self._port,
            self._signalling,
            self._inbox,
            self._delivery,
            mode=sideband_mode,
            show_error=self._show_session_error,
            no_page_words=self._transport.no_page_words,
        )
        self.observe(self._control_status, names=["status"])
        self._init_tracing(tracing, tracer_provider, capture_content)

    # -- tracing: OpenTelemetry spans from this session's log (_otel.py; extra: otel) ----------

    def _init_tracing(self, tracing: bool | None, provider: Any, capture: bool | None) -> None:
        from ._otel import attach  # imports no opentelemetry until a trace is asked for

        self._tracing = attach(self._events, tracing, provider, capture, self._scrub.text)

    def trace(self, tracer_provider: Any = None, *, capture_content: bool | None = None) -> None:
        """Trace this session's calls from now on, as OpenTelemetry spans on the GenAI
        conventions (see docs/tracing.md), to ``tracer_provider`` or the global one. Without
        it a session traces when opentelemetry-api is installed and an SDK is configured
        (``tracing=False`` to never). Needs the ``otel`` extra."""
        if self._tracing is not None:
            self._tracing.close()
        self._init_tracing(True, tracer_provider, capture_content)

    # -- end of tracing ------------------------------------------------------------------------

    # -- what a subclass provides: its transport -------------------------------------------------

    _transport_kind = "page"  # "page" (the browser's WebRTC) or "websocket" (the kernel's)

    def _open_transport(self) -> Transport:
        """The transport this session's calls go through (built once, after the traits)."""
        raise NotImplementedError

    def _outlet(self, message: dict[str, Any], buffers: list[bytes] | None) -> None:
        """The port's way out, after its scrubbers: to whatever holds the call."""
        self._transport.deliver(message, buffers)

    # -- the one writer of the call's state ------------------------------------------------------

    def _show(self, name: str, value: Any) -> None:
        """Every write of ``status``, ``error``, ``server_session``, ``live_latency``,
        ``host_info`` and ``tool_calls`` comes through here, whichever part learned it."""
        setattr(self, name, value)

    def _show_status(self, status: str, error: str | None) -> None:
        if error is not None:
            self._show("error", error)
        self._show("status", status)

    def _session_update_event(self) -> dict[str, Any]:
        return {"type": V.SESSION_UPDATE, "session": session_payload(self)}

    def _request(self, action: str, msg: dict[str, Any]) -> None:
        """A button in a page: the same as the session's own API call."""
        try:
            if action == "disconnect":
                self.disconnect()
            elif action == "send_text":
                self.send_text(msg["text"])
            elif action == "cancel_response":
                self.cancel_response()
            elif action == "approve":
                self.approve_tool_call(msg["call_id"])
            elif action == "reject":
                self.reject_tool_call(msg["call_id"], msg["reason"])
        except (ValueError, TypeError, KeyError) as exc:
            words = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
            self._show("error", words)

    # -- public API --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._base_url

    def model_endpoint(self) -> ModelEndpoint:
        """This service's OpenAI-compatible endpoints (chat, speech) with this widget's key,
        for judges and callers; the key stays hidden (never a trait, repr or row)."""
        from .evaluate import ModelEndpoint  # the evaluate package, when a judge or caller asks

        return ModelEndpoint(
            self._base_url, self._api_key, auth_scheme=self._signalling.provider.auth_scheme
        )

    @property
    def events(self) -> EventLog:
        """Every event of every call of this widget, both directions, in order."""
        return self._events

    @property
    def service_call_id(self) -> str | None:
        """The service's own id for the current (or last) call (from its create-call answer's
        ``Location``), once the call was answered; None when the service sent none. Not a
        function call's ``call_id``. The kernel hangs up and opens the sideband with it."""
        return self._signalling.service_call_id

    @property
    def sideband(self) -> bool:
        """Whether the current call's sideband is up (the kernel's own line to the service)."""
        return bool(self._delivery.sideband)

    @property
    def call_number(self) -> int:
        """The number of the current (or last) call (1, 2, ...; the log's ``call_number``
        column); 0 before the first ``connect()``."""
        return self._signalling.call

    def connect(self) -> None:
        """Start a call. Returns at once; watch ``status`` (connecting -> connected)."""
        self._signalling.connect(page="")

    def disconnect(self) -> None:
        """End the call, releasing the microphone and the peer connection, and ask the service
        to end it (a failed hang-up is logged, never raised). The log stays."""
        self._signalling.disconnect()

    def send_event(self, event: Mapping[str, Any]) -> None:
        """Send any client event (a dict with a ``type``), as the service documents it. Before
        the data channel opens it is queued, in order."""
        self._signalling.send_events([V.client_event(event)])

    def send_text(self, text: str, *, respond: bool = True) -> None:
        """Add a user text message to the conversation and (by default) ask for a response.

        Typed while the agent's response is still in flight, it interrupts that answer first,
        as the Stop button does (``response.cancel``, and the reply cut to what was heard),
        then asks: a person typing over the agent means to be answered, and the service
        refuses a second ``response.create`` while one is active."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"text must be a non-empty string; got {text!r}")
        # (a reply that is only still playing, its response done, is heard out: the service
        # takes the new response.create, and its sound ends as it does on its own)
        active = respond and self._inbox.active_response is not None
        events: list[dict[str, Any]] = self._stop_events(None, True) if active else []
        events.append(
            {
                "type": V.ITEM_CREATE,
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                },
            }
        )
        if respond:
            events.append({"type": V.RESPONSE_CREATE})
        self._signalling.send_events(events)

    def create_response(self, **fields: Any) -> None:
        """Send ``response.create``; keyword arguments become its ``response`` object
        (``instructions``, ``output_modalities``, ``conversation``, ``metadata``, ...)."""
        event: dict[str, Any] = {"type": V.RESPONSE_CREATE}
        if fields:
            event["response"] = fields
        self._signalling.send_events([V.client_event(event)])

    def cancel_response(self, response_id: str | None = None, *, clear_audio: bool = True) -> None:
        """Interrupt the agent: ``response.cancel`` (for ``response_id``, else the active
        response), then, over WebRTC, ``output_audio_buffer.clear`` so audio the service has
        already queued stops too (``clear_audio=False`` to leave it)."""
        events = self._stop_events(response_id, clear_audio)
        if events:
            self._signalling.send_events(events)

    def _stop_events(self, response_id: str | None, clear_audio: bool) -> list[dict[str, Any]]:
        """What stops the agent: a cancel while a response is in flight (cancelling with none
        is an error at the service), and the clear of audio still playing."""
        events: list[dict[str, Any]] = []
        if response_id or self._inbox.active_response:
            events.append({"type": V.RESPONSE_CANCEL})
            if response_id:
                events[0]["response_id"] = response_id
        if clear_audio and (self._inbox.audio_playing or events):
            events.append({"type": V.AUDIO_BUFFER_CLEAR})
        return events

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
            self._inbox.callbacks.setdefault(event_type, []).append(fn)
            return fn

        return register(callback) if callback is not None else register

    def off(self, event_type: str, callback: Callback | None = None) -> None:
        """Remove one callback, or all callbacks of ``event_type``."""
        callbacks = self._inbox.callbacks
        if callback is None:
            callbacks.pop(event_type, None)
        elif callback in callbacks.get(event_type, []):
            callbacks[event_type].remove(callback)

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
    # tool() / remove_tool() / tool_functions register them; tool_calls (a trait) shows their
    # calls; approve_tool_call() / reject_tool_call() decide a call held for approval.

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
        call until ``approve_tool_call(call_id)`` / ``reject_tool_call(call_id)`` (or the view's
        buttons).
        Usable as ``@w.tool`` or ``@w.tool(approve=True)``; returns the function."""

        def register(f: Callable[..., Any]) -> Callable[..., Any]:
            from ._tools import Tool, without_function

            made = Tool(f, name=name, description=description, approve=approve, timeout=timeout)
            self._runner().tools[made.name] = made
            # one partial session.update while live
            self.tools = [*without_function(self.tools, made.name), made.schema()]
            return f

        return register(fn) if fn is not None else register

    @property
    def tool_functions(self) -> Mapping[str, Tool]:
        """The registered tools by name (each shows its schema); read-only."""
        return MappingProxyType(dict(self._tool_runner.tools if self._tool_runner else {}))

    def remove_tool(self, name: str) -> None:
        """Unregister a tool and take it out of the session's ``tools``."""
        runner = self._tool_runner
        if runner is None or name not in runner.tools:
            known = sorted(runner.tools) if runner else []
            raise KeyError(f"no registered tool {name!r}; registered: {known}")
        del runner.tools[name]
        from ._tools import without_function

        self.tools = without_function(self.tools, name)

    def approve_tool_call(self, call_id: str) -> None:
        """Let a tool call held for approval run (tools registered with ``approve=True``)."""
        self._runner().decide(call_id, True)

    def reject_tool_call(self, call_id: str, reason: str = "") -> None:
        """Refuse a tool call held for approval; the model is told ``reason``."""
        self._runner().decide(call_id, False, reason)

    def _runner(self) -> ToolRunner:
        if self._tool_runner is None:
            from ._tools import ToolRunner

            self._tool_runner = ToolRunner(self._port, self._show_tool_calls)
            self._port.subscribe(self._tool_runner.on_record)
        return self._tool_runner

    def _show_session_error(self, words: str) -> None:
        self._show("error", words)  # the error trait's validator scrubs it like every other

    def _show_tool_calls(self, calls: list[dict[str, Any]]) -> None:
        self._show("tool_calls", calls)

    def controls(self, *, debounce: float = 0.4) -> ControlPanel:
        """An ipywidgets panel linked both ways to this session's settings. Edits are sent as
        one ``session.update`` once they settle (``debounce`` seconds); the service's answer
        shows under the panel. Closing the panel lets go of the session."""
        from ._controls import ControlPanel

        return ControlPanel(self, debounce=debounce, guard=self._session_guard)

    @contextmanager
    def batch_update(self) -> Iterator[SessionCore]:
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
    # (_clips.py, _waits.py, _recording.py; the host probe of _delivery.py fills host_info)

    def say(
        self,
        source: Any = None,
        *,
        text: str | None = None,
        duck: float = _clips.DEFAULT_DUCK,
        sample_rate: int | None = None,
        voice: str = _audio.ESPEAK_VOICE,
        wpm: int = _audio.ESPEAK_WPM,
        condition: Condition | None = None,
    ) -> Clip:
        """Play audio into the call, as if spoken into the microphone: a path, WAV/other audio
        bytes, ``(array, sample_rate)`` (numpy), or ``text=`` spoken by espeak-ng in the kernel
        (``voice``, ``wpm``). The microphone's gain is ``duck`` while it plays. ``condition``
        (a ``Condition``) transforms the samples first: noise, a phone line, a gain. Returns at
        once with a handle that fills in (``started_ms``, ``ended_ms``, ``duration_ms``,
        ``error``); ``await`` it to wait until it finished playing; ``.stop()`` cuts it."""
        return self._clip_player.say(
            source,
            text=text,
            duck=duck,
            sample_rate=sample_rate,
            voice=voice,
            wpm=wpm,
            condition=condition,
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
        voice: str = _audio.ESPEAK_VOICE,
        wpm: int = _audio.ESPEAK_WPM,
        metadata: Mapping[str, Any] | None = None,
    ) -> Reply:
        """Ask one question and get a handle on its reply: ``text`` as a typed turn, or
        ``audio=`` (anything ``say()`` plays; ``spoken=True`` speaks ``text``) as a spoken turn
        the service hears. ``reply = await w.ask(...)`` in the same cell where the host allows
        it; else read the handle in the next cell (``.text``, ``.transcript``, ``.status``,
        ``.response_id``, ``.latency_ms``, ``.events``). ``metadata`` goes into the reply's
        ``response.create`` (``response.metadata``, beside the ask's own id) where the widget
        sends one (a typed turn; a spoken turn without server VAD)."""
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a dict of strings; got {type(metadata).__name__}")
        if not self._live:
            raise RuntimeError(
                f"ask() needs a call (status {self.status!r}): connect() first, or click Connect"
            )
        if (text is None) == (audio is None) and not (spoken and text is not None):
            raise TypeError("ask() takes one question: text, audio=..., or text with spoken=True")
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise ValueError(f"text must be a non-empty string; got {text!r}")
        if audio is None and not spoken:
            return self._waits.ask(text, timeout=timeout, metadata=metadata)
        clip = self._clip_player.say(
            audio,
            text=text if spoken else None,
            duck=duck,
            sample_rate=sample_rate,
            voice=voice,
            wpm=wpm,
        )
        return self._waits.ask(None, clip=clip, timeout=timeout, metadata=metadata)

    def wait_for(
        self,
        event_type: str,
        *,
        timeout: float = 30.0,
        where: Callable[[dict[str, Any]], Any] | None = None,
    ) -> EventWaiter:
        """The next server event of ``event_type`` (``"*"``: any) for which ``where(event)``
        holds, counted from this call: ``ev = await w.wait_for("response.done")``. Also the
        local records that stand for the service's reports where the kernel holds the call:
        ``"speaker.started"``, ``"speaker.stopped"`` (WebRTC's ``output_audio_buffer.*``) and
        ``"audio.audible"``."""
        return self._waits.wait_for(event_type, timeout=timeout, where=where)

    def ready(self, timeout: float = 10.0) -> Ready:
        """``await w.ready()``: until the call's first ``session.updated`` (the session the
        service confirmed); at once if it came already."""
        return self._waits.ready(timeout)

    @property
    def recording(self) -> Recording | None:
        """The current call's recording (``record=True``), or None when it has none."""
        return self._recordings.by_call.get(self.call_number)

    @property
    def recordings(self) -> Mapping[int, Recording]:
        """Every call's recording, by call number."""
        return dict(self._recordings.by_call)

    def _init_scripted(self) -> None:
        port = self._port
        self._delivery = Delivery(port, self._show_host_info)
        if self._transport_kind != "page":
            self._delivery.kernel_held()
        self._clip_player = ClipPlayer(port, self._delivery)
        self._waits = Awaiting(
            port,
            self._delivery,
            turn_of=self._inbox.latency.turn,
            server_vad=lambda: self.turn_detection is not None,
        )
        self._recordings = Recordings(port, self._events)
        # typed scripts are finished by server events alone (awaitable in one cell with a sideband)
        self._grid_port = port
        self._grid: Experiments | None = None  # built by the first run_script (experiments)
        self.observe(self._scripted_status, names=["status"])

    def _show_host_info(self, info: dict[str, Any]) -> None:
        self._show("host_info", info)

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

    # -- end of scripted sessions ---------------------------------------------------------------

    # -- experiments: one script across session variants (the experiments package) ------------

    def _experiments(self) -> Experiments:
        """This session's grid feature, built on first use: the core imports the experiments
        package only when a grid runs."""
        if self._grid is None:
            from .experiments._feature import Experiments

            self._grid = Experiments(self, self._grid_port, self._delivery.server_events())
        return self._grid

    def run_script(
        self,
        script: Script | Iterable[str | Turn],
        variants: Mapping[str, Mapping[str, Any]] | None = None,
        repeat: int = 1,
        *,
        fresh_call: Iterable[str] | bool = frozenset(),
        isolation: str = "conversation",
        timeout: float = 60.0,
        seed: int = 0,
        progress: bool = True,
        conditions: Mapping[str, Condition | None] | None = None,
        concurrency: int = 1,
        executor: Any = None,
    ) -> Runs:
        """Play a ``Script`` in every (variant, repeat) run and return its ``Runs`` at once:
        ``runs = await w.run_script(script, variants={"fast": {"speed": 1.3}}, repeat=3)``, or
        read ``runs`` in a later cell. Each run applies its variant's fields as one
        ``session.update`` (a new call for fields in ``fresh_call``, or every run with
        ``fresh_call=True``), starts from an empty conversation (``isolation``), and plays the
        turns in order, each awaiting its reply. ``conditions`` ({name: Condition or None}) is
        a second axis: every variant runs under each, its spoken turns' audio transformed.
        See ``realtime_widget.experiments``."""
        return self._experiments().run(
            script,
            variants,
            repeat,
            fresh_call=fresh_call,
            isolation=isolation,
            timeout=timeout,
            seed=seed,
            progress=progress,
            conditions=conditions,
            concurrency=concurrency,
            executor=executor,
        )

    async def tune(
        self, script: Any, space: Mapping[str, Any], judge: Any = None, **options: Any
    ) -> Tuning:
        """Search ``space`` (session fields, dotted paths into nested ones: a ``(low, high)``
        range or a list of choices) for the best judged score whose ``latency_budget_ms`` holds,
        on Optuna: ``tuning = await s.tune(script, space={"speed": (0.8, 1.4)}, judge=judge,
        latency_budget_ms=1200, trials=40, concurrency=4)``. See ``experiments.tune``."""
        from .experiments._tune import tune

        return await tune(self, script, space, judge, **options)

    # -- end of experiments ---------------------------------------------------------------------

    def close(self) -> None:
        """Hang up, stop the worker thread and close the session and its log file."""
        if not hasattr(self, "_events"):  # __init__ raised before the session existed
            self._close_view()
            return
        if self._live:  # now, on this thread: the worker thread stops below
            self._signalling.hang_up_now("disconnect")
        if self._live or self._transport_open():
            self.disconnect()
        self._transport.close()
        self._control.close()
        self._signalling.shutdown()
        self._signalling.provider.close()
        if self._tool_runner is not None:
            self._tool_runner.close()
        self._session_guard.close()
        tracing = getattr(self, "_tracing", None)
        if tracing is not None:
            tracing.close()  # ends what is still open
        self._events.close()
        if hasattr(self, "_recordings"):
            self._recordings.close()
        self._close_view()

    def _transport_open(self) -> bool:
        """Whether the transport can still hear a disconnect (the widget: its comm is open)."""
        return False

    def _close_view(self) -> None:
        """What closes beside the session (the widget's comm)."""

    def __repr__(self) -> str:
        # Only user-facing state; the key is never part of it.
        return (
            f"<{type(self).__name__} status={self.status!r} base_url={self._base_url!r} "
            f"voice={self.voice!r} events={len(self._events)}>"
        )

    # -- boundaries: what leaves the kernel or is kept ----------------------------------------

    @t.validate("error")
    def _scrubbed_error(self, proposal: Any) -> str:
        return self._scrub.text(str(proposal["value"]))

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

    def _call_answered(self, call: int, service_call_id: str | None) -> None:
        self._control.answered(call, service_call_id)

    def _control_status(self, change: Mapping[str, Any]) -> None:
        self._control.status_changed(change["new"])

    def _call_started(self, call: int) -> None:
        """Per-call state starts afresh: nothing is in flight on a new call."""
        self._inbox.call_started()
        if self._tool_runner is not None:
            self._tool_runner.reset()

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
            [{"type": V.SESSION_UPDATE, "session": partial_session(self, names)}]
        )
