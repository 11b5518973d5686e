"""RealtimeWidget: a live voice session in a notebook, driven from Python.

The widget is the session core (``_core.py``) + the page transport (the browser's WebRTC,
``_transport.PageTransport``) + the view (``js/``). This module holds only what a page adds:
the synced traits, the comm, the page's trait writes refused, and the ICE prefetch on display.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import anywidget

from . import _bridge as B
from ._core import SessionCore
from ._transport import PageTransport

_STATIC = Path(__file__).parent / "static"


def _synced(trait: Any) -> Any:
    """The core's trait, as a trait of its own that syncs to the page."""
    return copy.deepcopy(trait).tag(sync=True)


class RealtimeWidget(SessionCore, anywidget.AnyWidget):
    """A live voice conversation with an Inworld Realtime agent, in a notebook, driven from Python.

    Shown in a cell, the widget is a voice page: Connect, talk into the microphone, type, watch
    the transcript, the agent's tool calls and the felt latency. The call runs in the browser's
    WebRTC; Python holds the session: its fields are traits (``w.voice = "Sarah"`` sends a
    ``session.update`` on a live call), server events reach the kernel (``on()``, ``events``),
    and a cell can play audio into the call (``say()``), ask a question and await the reply
    (``ask()``), wait for an event (``wait_for()``), register Python tools (``tool()``), record
    both sides (``record=True``) and play a script across session variants (``run_script()``).

    Nothing here waits for the browser: ``connect()`` returns at once and the call's progress
    shows in ``status``, ``error``, callbacks and ``events``. For a session with no page
    (papermill, CI, many calls at once) use :class:`~realtime_widget.RealtimeSession`, which has
    the same methods.

    Args:
        base_url: The service's base URL; by default ``INWORLD_BASE_URL``, else
            ``https://api.inworld.ai``.
        api_key: The API key; by default ``INWORLD_API_KEY`` from the environment (or a ``.env``
            file, with python-dotenv). It stays in the kernel: never a trait, a repr or a log row.
        auth_scheme: The ``Authorization`` scheme the key is sent with: ``"Bearer"`` (the
            default) or ``"Basic"``.
        mic: Send the microphone; False makes a receive-only call.
        record: Record both sides of each call, on the log's clock (``recording``).
        log_path: A JSONL file the event log is appended to as events arrive (recordings go to a
            ``.audio`` file beside it); None keeps the log in memory only.
        timeout: Seconds each request to the service (the call's SDP exchange, ICE servers,
            hang-up) may take.
        sideband: ``"auto"`` (the default) opens the call's sideband, the kernel's own WebSocket
            to the call, when the service offers it and the ``sideband`` extra is installed;
            True requires it; False never opens it. With it up, server events reach the kernel
            directly, so ``await w.ask(...)`` works inside one cell on every host.
        tracing: True traces every call as OpenTelemetry spans (the ``otel`` extra); False
            never; None (the default) traces when opentelemetry-api is installed and an SDK is
            configured.
        tracer_provider: The OpenTelemetry ``TracerProvider`` for the spans; None for the
            global one.
        capture_content: Put message text and transcripts into the spans (True), keep them out
            (False), or follow ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (None).
        **session: Session fields by trait name: ``model``, ``instructions``, ``voice``,
            ``speed``, ``turn_detection``, ``tools``, ... (see the traits below).

    Raises:
        TypeError: An argument is not a session field.
        ValueError: A bad ``sideband`` value, or a key an HTTP header cannot carry.

    Example:
        >>> from realtime_widget import RealtimeWidget
        >>> w = RealtimeWidget(instructions="You are a concise concierge.", voice="Sarah")
        >>> w  # shows the voice page; click Connect, or:
        >>> w.connect()
        >>> reply = await w.ask("What time do you open?")
        >>> reply.text
        'We open at nine.'
        >>> w.events.turns()  # one row per response, with its latencies
    """

    _esm = _STATIC / "widget.js"
    _css = _STATIC / "widget.css"
    _transport_kind = "page"

    # Python owns these (protocol.json's python_owned_traits): a page's writes are undone.
    status = _synced(SessionCore.status)
    error = _synced(SessionCore.error)
    mic = _synced(SessionCore.mic)
    muted = _synced(SessionCore.muted)
    record = _synced(SessionCore.record)
    tool_calls = _synced(SessionCore.tool_calls)
    host_info = _synced(SessionCore.host_info)
    live_latency = _synced(SessionCore.live_latency)

    def _open_transport(self) -> PageTransport:
        transport = PageTransport(
            post=lambda message: self._post(message),
            post_binary=lambda message, buffers: self._send_binary(message, buffers),
            no_page_words=NO_PAGE_WORDS,
        )
        self.on_msg(self._on_custom_msg)
        return transport

    def _transport_open(self) -> bool:
        return self.comm is not None

    def _close_view(self) -> None:
        anywidget.AnyWidget.close(self)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # Shown in a page: fetch the ICE servers now, so a Connect click starts at once.
        self._signalling.prefetch_ice()
        return super()._repr_mimebundle_(**kwargs)

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Apply a page's trait writes; those Python owns are refused, logged and put back.

        Called by ipywidgets when the page changes a synced trait. ``status``, ``error``, ``mic``,
        ``record``, ``server_session``, ``tool_calls``, ``host_info`` and ``live_latency``
        belong to Python: a page's write of one of them is dropped, logged as
        ``state.refused``, and every page is sent Python's value again. Notebook code sets
        traits directly instead.

        Args:
            sync_data: The trait values the page sent, by name.

        Example:
            >>> w.set_state({"voice": "Ashley"})  # as a page's edit would
            >>> w.voice
            'Ashley'
        """
        refused = sorted(set(sync_data) & B.PYTHON_OWNED_TRAITS)
        if refused:
            sync_data = {k: v for k, v in sync_data.items() if k not in refused}
            self._port.log_local({"type": "state.refused", "names": refused})
        if sync_data:
            super().set_state(sync_data)
        if refused:
            self.send_state(refused)  # every page sees Python's value again

    def _post(self, message: dict[str, Any]) -> None:
        """Send one custom message to the front end (ipywidgets' ``send``)."""
        self.send(message)

    def _send_binary(self, message: dict[str, Any], buffers: list[bytes]) -> None:
        """A message with binary buffers (``play``, ``probe``)."""
        self.send(message, buffers or None)

    def _on_custom_msg(self, _widget: Any, content: Any, buffers: Any) -> None:
        self._inbox.receive(content, buffers)


# A call no page ever took up: the notebook runs with no front end (papermill, nbconvert,
# nbclient), or the widget was never displayed.
NO_PAGE_WORDS = (
    "No page took up this call: a RealtimeWidget needs its view open in a browser (this "
    "notebook may be running with no front end: papermill, nbconvert, nbclient). To run with "
    "no page, hold the call in the kernel: RealtimeSession(...) (the service's WebSocket), "
    "e.g. `async with RealtimeSession(...) as s: await s.ask(...)`."
)
