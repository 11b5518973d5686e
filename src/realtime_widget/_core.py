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
    """A realtime session's state and features, driven from Python.

    The base of :class:`~realtime_widget.RealtimeWidget` and
    :class:`~realtime_widget.RealtimeSession`: every method and property documented here works
    the same on both. A subclass chooses the transport (``_open_transport``) and how the call is
    shown.

    Nothing here waits for the service: ``connect()`` starts a call and its progress shows in
    ``status``, ``error``, callbacks and ``events``.

    Example:
        >>> from realtime_widget import RealtimeSession, RealtimeWidget
        >>> RealtimeWidget.ask is RealtimeSession.ask
        True
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
        """Trace this session's calls from now on, as OpenTelemetry spans.

        The spans follow the GenAI semantic conventions (see docs/tracing.md) and go to
        ``tracer_provider``, or to the global tracer provider. Without ``trace()`` a session traces
        by itself when opentelemetry-api is installed and an SDK is configured (``tracing=False`` in
        the constructor never traces). Calling it again replaces the tracing set up before. Needs
        the ``otel`` extra (``pip install "realtime-widget[otel]"``).

        Args:
            tracer_provider: The OpenTelemetry ``TracerProvider`` that receives the spans; None for
                the global one.
            capture_content: True to put message text and transcripts into the spans, False to keep
                them out; None follows ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.

        Example:
            >>> from realtime_widget import tracing
            >>> provider = tracing.otlp("http://localhost:4318", set_global=False)
            >>> w.trace(provider, capture_content=True)
        """
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
        """Write one of the call's state traits; the one writer of them.

        Every write of ``status``, ``error``, ``server_session``, ``live_latency``, ``host_info``
        and ``tool_calls`` comes through here, whichever part learned it.
        """
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
        """The service's base URL this session calls (``https://api.inworld.ai`` by default).

        It comes from the ``base_url`` argument, else from ``INWORLD_BASE_URL``, else the default.
        """
        return self._base_url

    def model_endpoint(self) -> ModelEndpoint:
        """This service's OpenAI-compatible endpoints (chat, speech), with this session's key.

        Judges and callers use it to reach the same service with the same key. The key stays hidden:
        it is never a trait, a repr or a row.

        Returns:
            A :class:`~realtime_widget.evaluate.ModelEndpoint` for this session's base URL, key and
            auth scheme.

        Example:
            >>> endpoint = w.model_endpoint()
            >>> endpoint.base_url == w.base_url
            True
        """
        from .evaluate import ModelEndpoint  # the evaluate package, when a judge or caller asks

        return ModelEndpoint(
            self._base_url, self._api_key, auth_scheme=self._signalling.provider.auth_scheme
        )

    @property
    def events(self) -> EventLog:
        """Every event of every call of this session, both directions, in order.

        An :class:`~realtime_widget.EventLog`: ``w.events.turns()``, ``w.events.to_pandas()``,
        ``w.events.latency_summary()``; kept across calls and after ``disconnect()``.
        """
        return self._events

    @property
    def service_call_id(self) -> str | None:
        """The service's own id for the current (or last) call; None until it is known.

        It comes from the ``Location`` header of the service's create-call answer, once the call was
        answered; it stays None when the service sent none. It is not a function call's ``call_id``.
        The kernel hangs up and opens the sideband with it.
        """
        return self._signalling.service_call_id

    @property
    def sideband(self) -> bool:
        """Whether the current call's sideband is up (the kernel's own line to the service)."""
        return bool(self._delivery.sideband)

    @property
    def call_number(self) -> int:
        """The number of the current (or last) call: 1, 2, ...; 0 before the first ``connect()``.

        It is the log's ``call_number`` column.
        """
        return self._signalling.call

    def connect(self) -> None:
        """Start a call; returns at once.

        Watch ``status`` go from ``"connecting"`` to ``"connected"`` (or ``"failed"``, with the
        reason in ``error``); ``await w.ready()`` waits for the session the service confirmed.
        :meth:`RealtimeSession.connect <realtime_widget.RealtimeSession.connect>` returns an
        awaitable instead.

        Example:
            >>> w.connect()
            >>> w.status
            'connecting'
        """
        self._signalling.connect(page="")

    def disconnect(self) -> None:
        """End the call, releasing the microphone and the peer connection.

        The service is asked to end the call too (a failed hang-up is logged, never raised). The
        log, the recordings and the session's fields stay; ``connect()`` starts a new call.

        Example:
            >>> w.disconnect()
            >>> w.status
            'disconnected'
        """
        self._signalling.disconnect()

    def send_event(self, event: Mapping[str, Any]) -> None:
        """Send any client event, as the service documents it.

        Before the call's data channel opens, events are queued and sent in order.

        Args:
            event: A client event: a dict with a ``type`` (``"conversation.item.create"``,
                ``"response.create"``, ``"input_audio_buffer.clear"``, ...) and its fields.

        Example:
            >>> w.send_event({"type": "response.create", "response": {"instructions": "Say hi."}})
        """
        self._signalling.send_events([V.client_event(event)])

    def send_text(self, text: str, *, respond: bool = True) -> None:
        """Add a user text message to the conversation and, by default, ask for a response.

        Typed while the agent's response is still in flight, it interrupts that answer first, as the
        Stop button does (``response.cancel``, and the reply cut to what was heard), then asks: a
        person typing over the agent means to be answered, and the service refuses a second
        ``response.create`` while one is active. To wait for the answer in Python use ``ask()``.

        Args:
            text: The user's message; a non-empty string.
            respond: Whether to send ``response.create`` after the message (False only adds it to
                the conversation).

        Raises:
            ValueError: ``text`` is not a non-empty string.

        Example:
            >>> w.send_text("What time do you open?")
            >>> w.send_text("My name is Ada.", respond=False)
        """
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
        """Ask the agent for a response now (``response.create``).

        Args:
            **fields: The ``response`` object of the event: ``instructions``,
                ``output_modalities``, ``conversation`` (``"auto"`` or ``"none"``), ``metadata``,
                ``max_output_tokens``, ... as the service documents them; none sends a bare
                ``response.create``.

        Example:
            >>> w.create_response(instructions="Greet the caller.", output_modalities=["text"])
        """
        event: dict[str, Any] = {"type": V.RESPONSE_CREATE}
        if fields:
            event["response"] = fields
        self._signalling.send_events([V.client_event(event)])

    def cancel_response(self, response_id: str | None = None, *, clear_audio: bool = True) -> None:
        """Interrupt the agent, as the Stop button does.

        Sends ``response.cancel`` (for ``response_id``, else for the active response; nothing when
        no response is in flight), then, over WebRTC, ``output_audio_buffer.clear`` so audio the
        service has already queued stops too.

        Args:
            response_id: The response to cancel; None for the active one.
            clear_audio: Whether to also clear the audio still queued to play; False lets it play
                out.

        Example:
            >>> w.cancel_response()
            >>> w.cancel_response(clear_audio=False)
        """
        events = self._stop_events(response_id, clear_audio)
        if events:
            self._signalling.send_events(events)

    def _stop_events(self, response_id: str | None, clear_audio: bool) -> list[dict[str, Any]]:
        """The events that stop the agent.

        A cancel while a response is in flight (cancelling with none is an error at the service),
        and the clear of audio still playing.
        """
        events: list[dict[str, Any]] = []
        if response_id or self._inbox.active_response:
            events.append({"type": V.RESPONSE_CANCEL})
            if response_id:
                events[0]["response_id"] = response_id
        if clear_audio and (self._inbox.audio_playing or events):
            events.append({"type": V.AUDIO_BUFFER_CLEAR})
        return events

    def on(self, event_type: str, callback: Callback | None = None) -> Any:
        """Call ``callback(event)`` in the kernel for each server event of ``event_type``.

        Callbacks run in the kernel as events arrive, in order; remove them with ``off()``. Usable
        as a decorator (``@w.on("response.done")``).

        Args:
            event_type: A server event type such as ``"response.done"``, or ``"*"`` for every
                event.
            callback: A function of the event (a dict); None to use ``on()`` as a decorator.

        Returns:
            ``callback`` itself, or, without one, a decorator that registers the function it
            decorates and returns it.

        Raises:
            ValueError: ``event_type`` is not a non-empty string.
            TypeError: The callback is not callable.

        Example:
            >>> @w.on("response.done")
            ... def done(event):
            ...     print(event["response"]["status"])
            >>> w.on("error", print)
            <built-in function print>
        """
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
        """Remove one callback of ``event_type``, or all of them.

        A callback that was not registered is ignored.

        Args:
            event_type: The event type the callback was registered for (``"*"`` included).
            callback: The function to remove; None removes every callback of ``event_type``.

        Example:
            >>> w.off("response.done", done)
            >>> w.off("error")
        """
        callbacks = self._inbox.callbacks
        if callback is None:
            callbacks.pop(event_type, None)
        elif callback in callbacks.get(event_type, []):
            callbacks[event_type].remove(callback)

    def apply_session(self, session: Mapping[str, Any]) -> None:
        """Validate a session dict and apply it at once.

        Takes a ``session`` object as ``session_config()`` returns it (or a part of one). Nothing
        changes if any field is invalid or unknown, and a live call gets one ``session.update``.

        Args:
            session: A ``session`` object, nested as the service takes it
                (``{"audio": {"output": {"voice": "Sarah"}}}``), whole or partial.

        Example:
            >>> saved = w.session_config()
            >>> w.apply_session({"audio": {"output": {"voice": "Sarah", "speed": 1.2}}})
            >>> w.apply_session(saved)
        """
        self.update_session(**traits_from_session(session))

    def update_session(self, **fields: Any) -> None:
        """Set several session fields at once, as one ``session.update``.

        If any value is invalid, none is applied. Setting a trait directly (``w.voice = "Sarah"``)
        does the same for one field.

        Args:
            **fields: Session fields by trait name (``voice``, ``speed``, ``instructions``,
                ``turn_detection``, ...) and their new values.

        Raises:
            TypeError: A name is not a session field.

        Example:
            >>> w.update_session(voice="Sarah", speed=1.2)
        """
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

        Its JSON schema comes from the signature and the docstring (the ``tools`` extra: pydantic
        and docstring-parser), and it is added to the session's ``tools`` (one ``session.update``
        while live). Sync functions run on worker threads, ``async def`` ones on the kernel's loop;
        the return value goes back to the model as text (strings as they are, the rest as JSON).
        ``approve=True`` holds each call until ``approve_tool_call(call_id)`` /
        ``reject_tool_call(call_id)`` (or the view's buttons). Registering a name again replaces it.

        Args:
            fn: The function; None to use ``tool()`` as a decorator with options
                (``@w.tool(approve=True)``).
            name: The tool's name for the model; the function's name by default.
            description: What the tool does, for the model; the docstring's text by default.
            approve: Hold every call for a person's approval before it runs.
            timeout: Seconds a call may run before the model is told it timed out.

        Returns:
            ``fn`` itself, or, without one, a decorator that registers the function it decorates
            and returns it.

        Example:
            >>> @w.tool
            ... def opening_hours(day: str) -> str:
            ...     '''The opening hours on a day.
            ...
            ...     Args:
            ...         day: The day of the week.
            ...     '''
            ...     return "9 to 5"
            >>> @w.tool(approve=True, timeout=10)
            ... def book_table(time: str, people: int) -> dict:
            ...     return {"booked": True}
        """

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
        """The registered tools by name, each a :class:`~realtime_widget.types.Tool`; read-only."""
        return MappingProxyType(dict(self._tool_runner.tools if self._tool_runner else {}))

    def remove_tool(self, name: str) -> None:
        """Unregister a tool and take it out of the session's ``tools``.

        Args:
            name: The registered tool's name.

        Raises:
            KeyError: No tool of that name is registered.

        Example:
            >>> w.remove_tool("opening_hours")
        """
        runner = self._tool_runner
        if runner is None or name not in runner.tools:
            known = sorted(runner.tools) if runner else []
            raise KeyError(f"no registered tool {name!r}; registered: {known}")
        del runner.tools[name]
        from ._tools import without_function

        self.tools = without_function(self.tools, name)

    def approve_tool_call(self, call_id: str) -> None:
        """Let a tool call held for approval run (a tool registered with ``approve=True``).

        Args:
            call_id: The call's ``call_id``, as ``tool_calls`` shows it.

        Example:
            >>> held = [c for c in w.tool_calls if c["status"] == "pending_approval"]
            >>> w.approve_tool_call(held[0]["call_id"])
        """
        self._runner().decide(call_id, True)

    def reject_tool_call(self, call_id: str, reason: str = "") -> None:
        """Refuse a tool call held for approval; the model is told why.

        Args:
            call_id: The call's ``call_id``, as ``tool_calls`` shows it.
            reason: The words the model gets as the tool's answer.

        Example:
            >>> w.reject_tool_call(held[0]["call_id"], reason="The caller did not confirm.")
        """
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
        """An ipywidgets panel linked both ways to this session's settings.

        Edits in the panel are sent as one ``session.update`` once they settle; changes made in
        Python show in the panel at once. The service's answer shows under the panel, and a refused
        field's reason under that field. Closing the panel lets go of the session.

        Args:
            debounce: Seconds to wait after the last edit before sending the update.

        Returns:
            The :class:`~realtime_widget.types.ControlPanel`; display it in a cell.

        Example:
            >>> panel = w.controls(debounce=0.2)
            >>> panel  # the last line of a cell shows it
        """
        from ._controls import ControlPanel

        return ControlPanel(self, debounce=debounce, guard=self._session_guard)

    @contextmanager
    def batch_update(self) -> Iterator[SessionCore]:
        """Group several session field changes into one ``session.update``.

        A context manager: inside it trait changes are collected, and on leaving it a live call gets
        one update with all of them. Nested blocks send at the outermost one's end.

        Yields:
            This session.

        Example:
            >>> with w.batch_update():
            ...     w.voice = "Ashley"
            ...     w.speed = 1.1
        """
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
        """Play audio into the call, as if spoken into the microphone.

        The clip plays at real time into what the service hears, with the microphone's gain at
        ``duck`` while it plays. It returns at once with a handle that fills in (``started_ms``,
        ``ended_ms``, ``duration_ms``, ``error``); ``await`` it to wait until it finished playing,
        ``.stop()`` cuts it. Clips queue behind each other. To also wait for the agent's answer use
        ``ask(audio=...)``.

        Args:
            source: What to play: a file path, WAV or other encoded audio bytes, or
                ``(array, sample_rate)`` (a numpy array of samples). None with ``text``.
            text: Words to speak instead of ``source``, synthesized by espeak-ng in the kernel.
            duck: The microphone's gain while the clip plays, from 0 to 1 (room noise must not hold
                a turn).
            sample_rate: The sample rate of an array ``source`` given without one, in Hz.
            voice: The espeak-ng voice for ``text`` (``"en-us"`` by default).
            wpm: The speaking rate for ``text``, in words per minute.
            condition: A :class:`~realtime_widget.Condition` that transforms the samples first
                (noise, a phone line, a gain); needs the ``conditions`` extra.

        Returns:
            The clip's :class:`~realtime_widget.types.Clip` handle.

        Raises:
            RuntimeError: There is no call to play into.
            TypeError: Nothing to play, both ``source`` and ``text``, or a source of another kind.
            ValueError: ``duck`` is outside 0..1, or the clip is empty.
            FileNotFoundError: A path with no file.

        Example:
            >>> clip = w.say("greeting.wav")
            >>> clip = w.say(text="I'd like a table for two.", wpm=160)
            >>> await clip  # until it finished playing
            >>> clip.duration_ms
            1840.0
        """
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
        """Ask one question and get a handle on its reply.

        The question is ``text`` as a typed turn, or ``audio=`` (anything ``say()`` plays; or
        ``text`` with ``spoken=True``, spoken by espeak-ng) as a spoken turn the service hears.
        ``reply = await w.ask(...)`` waits in the same cell where the host allows it; otherwise read
        the handle in the next cell (``.text``, ``.transcript``, ``.status``, ``.response_id``,
        ``.latency_ms``, ``.events``).

        Args:
            text: The question, typed (or spoken with ``spoken=True``).
            audio: A spoken question instead: a path, audio bytes or ``(array, sample_rate)``.
            spoken: Speak ``text`` into the call rather than type it.
            timeout: Seconds an ``await`` of the reply waits before it raises ``TimeoutError``.
            duck: The microphone's gain while a spoken question plays, 0 to 1.
            sample_rate: The sample rate of an array ``audio`` given without one, in Hz.
            voice: The espeak-ng voice for a spoken ``text``.
            wpm: The speaking rate for a spoken ``text``, in words per minute.
            metadata: String values that go into the reply's ``response.create`` as
                ``response.metadata`` (beside the ask's own id), where the widget sends one: a typed
                turn, or a spoken turn without server VAD.

        Returns:
            The :class:`~realtime_widget.types.Reply` handle, filled in as the response arrives.

        Raises:
            TypeError: Not exactly one question, or ``metadata`` is not a dict.
            RuntimeError: There is no call (``connect()`` first).
            ValueError: ``text`` is not a non-empty string.

        Example:
            >>> reply = await w.ask("What time do you open?")
            >>> reply.text
            'We open at nine.'
            >>> reply = await w.ask(audio="question.wav", timeout=30)
            >>> reply = await w.ask("Two people at eight, please.", spoken=True)
        """
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
        """Wait for the next server event of a type, counted from now on this call.

        Also waits for the local records that stand in for the service's reports where the kernel
        holds the call: ``"speaker.started"``, ``"speaker.stopped"`` (WebRTC's
        ``output_audio_buffer.*``) and ``"audio.audible"``. A call that ends first fails the wait.

        Args:
            event_type: A server event type such as ``"response.done"``, or ``"*"`` for any.
            timeout: Seconds an ``await`` waits before it raises ``TimeoutError``.
            where: A test of the event (a dict); only an event for which it is true counts. An
                error it raises is raised to the awaiter.

        Returns:
            An :class:`~realtime_widget.types.EventWaiter`; ``await`` it for the event, or read
            ``.event`` later.

        Example:
            >>> ev = await w.wait_for("response.done")
            >>> ev["response"]["status"]
            'completed'
            >>> ev = await w.wait_for("error", timeout=5, where=lambda e: e["error"].get("param"))
        """
        return self._waits.wait_for(event_type, timeout=timeout, where=where)

    def ready(self, timeout: float = 10.0) -> Ready:
        """Wait until the call's first ``session.updated``: the session the service confirmed.

        Finishes at once if it came already.

        Args:
            timeout: Seconds an ``await`` waits before it raises ``TimeoutError``.

        Returns:
            A :class:`~realtime_widget.types.Ready` handle; ``await`` gives the confirmed
            ``session`` dict.

        Raises:
            RuntimeError: There is no call (``connect()`` first).

        Example:
            >>> w.connect()
            >>> session = await w.ready()
            >>> session["audio"]["output"]["voice"]
            'Clive'
        """
        return self._waits.ready(timeout)

    @property
    def recording(self) -> Recording | None:
        """The current call's recording (with ``record=True``), or None when it has none.

        A :class:`~realtime_widget.Recording` of both sides of the call on the log's clock:
        ``w.recording.to_wav("call.wav")``.
        """
        return self._recordings.by_call.get(self.call_number)

    @property
    def recordings(self) -> Mapping[int, Recording]:
        """Every call's :class:`~realtime_widget.Recording`, by call number (a copy)."""
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
        """This session's grid feature, built on first use.

        The core imports the experiments package only when a grid runs.
        """
        if self._grid is None:
            from .experiments._feature import Experiments

            self._grid = Experiments(self, self._port, self._delivery.server_events())
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
        """Play a script in every (variant, repeat) run and return its ``Runs`` at once.

        Each run applies its variant's fields as one ``session.update`` (a new call for fields in
        ``fresh_call``, or every run with ``fresh_call=True``), starts from an empty conversation
        (``isolation``), and plays the turns in order, each awaiting its reply. ``await`` the result
        to wait for every run, or read it in a later cell; its rows are one per turn
        (``runs.turns()``, ``runs.summary()``, ``runs.to_parquet()``). See
        ``realtime_widget.experiments``.

        Args:
            script: A :class:`~realtime_widget.Script`, a list of turns (a string is a typed turn),
                or a simulated :class:`~realtime_widget.Caller`.
            variants: Session fields by variant name (``{"fast": {"speed": 1.3}}``); None plays
                the session as it is, as one variant named ``"session"``.
            repeat: How many times each variant plays the script.
            fresh_call: Session fields whose change needs a new call rather than a
                ``session.update`` (``{"voice"}``), or True for a new call every run.
            isolation: ``"conversation"`` (the default) deletes the conversation so far before each
                run; ``"call"`` starts each run on a new call; ``"none"`` keeps the conversation.
            timeout: Seconds each turn may wait for its reply; a turn that times out is a row with
                its error, and the run goes on.
            seed: The grid's seed: each run derives its own from it, its variant and its repeat (for
                conditions' noise and simulated callers), so the same grid plays the same way again.
            progress: Show the runs' progress (a bar in a notebook, a line on a terminal).
            conditions: A second axis, ``{name: Condition or None}``: every variant runs under each,
                its spoken turns' audio transformed.
            concurrency: How many runs play at once, each on a session of its own (a
                ``RealtimeSession`` only: a widget's page holds one call).
            executor: A ``dask.distributed.Client`` that plays each run as a task on a worker (the
                ``dask`` extra).

        Returns:
            The :class:`~realtime_widget.Runs` handle, filled in as the runs play.

        Example:
            >>> from realtime_widget import Script
            >>> script = Script(["Hi, I'd like a table.", "For two, at eight."])
            >>> runs = await w.run_script(script, variants={"fast": {"speed": 1.3}}, repeat=3)
            >>> runs.summary()
        """
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
        """Search session settings for the best judged score within a latency budget, on Optuna.

        Each trial is a set of session fields the sampler picks from ``space``; it plays the script
        ``repeat`` times as one variant of a grid (``run_script``), is scored by the judge's mean
        (or ``score(turns)``), and its latency is the ``quantile`` of ``latency_column`` over its
        completed turns. A trial over the budget is infeasible and steers the search away. Needs the
        ``tune`` extra (``pip install "realtime-widget[tune]"``). See ``experiments.tune``.

        Args:
            script: A :class:`~realtime_widget.Script`, a list of turns, or a
                :class:`~realtime_widget.Caller`.
            space: Session fields (or dotted paths into ``turn_detection`` / ``provider_data``) and
                what to try: a ``(low, high)`` or ``(low, high, step)`` range of floats or ints, or
                a list of choices.
            judge: The :class:`~realtime_widget.Judge` whose mean score is maximized; or pass
                ``score=`` instead.
            **options: ``score`` (a function of a trial's turns table returning a number),
                ``latency_budget_ms``, ``latency_column`` (``"to_first_output_ms"``), ``quantile``
                (0.95), ``trials`` (20), ``repeat`` (1), ``concurrency`` (1), ``executor``,
                ``storage`` and ``study_name`` (to resume a study), ``seed`` (0), ``sampler``
                (``"tpe"``, ``"random"`` or an Optuna sampler), ``timeout`` (60 s per turn) and
                ``progress`` (True).

        Returns:
            The :class:`~realtime_widget.experiments.Tuning`: ``.best`` (the best settings, as
            ``apply_session`` takes them), ``.trials()``, ``.pareto()``, ``.plot()``, ``.runs``.

        Example:
            >>> tuning = await s.tune(
            ...     script,
            ...     space={"speed": (0.8, 1.4), "voice": ["Clive", "Ashley"]},
            ...     judge=judge,
            ...     latency_budget_ms=1200,
            ...     trials=40,
            ...     concurrency=4,
            ... )
            >>> s.apply_session(tuning.best)
        """
        from .experiments._tune import tune

        return await tune(self, script, space, judge, **options)

    # -- end of experiments ---------------------------------------------------------------------

    def close(self) -> None:
        """Hang up, stop the worker thread and close the session and its log file.

        The session cannot call again after it; the log's rows stay readable.

        Example:
            >>> w.close()
        """
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
