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
    """A voice conversation with a realtime agent, in the browser's WebRTC, driven from Python.

    Nothing here waits for the browser: ``connect()`` returns at once and the call's progress
    shows in ``status``, ``error``, callbacks and ``events``. For a session with no page
    (papermill, CI, many calls at once) use :class:`RealtimeSession`.
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
        """A page's trait writes: those Python owns are refused, logged, and put back."""
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
