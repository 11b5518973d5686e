"""What holds a session's call: the one small contract between the session core and a transport.

The contract is the kernel <-> page protocol (``protocol.json``): the core posts a transport
the messages of its ``to_browser`` kinds and hears back its ``to_kernel`` kinds, whoever holds
the call. Read as a transport's verbs:

==================  =========================================================================
connect             ``connect`` (the first ``session.update``, queued client events, ``mic``)
send client events  ``send`` (in order; a stop among them cuts the reply to what was heard)
receive events      ``events`` back: client / server / local records, numbered, on one clock
audio in            ``play`` / ``stop_clip`` (a clip into the microphone, in real time)
audio out           ``recording`` back (both sides, one clock) and local ``audio.audible``
hang up             ``disconnect``
state               ``state`` back: connecting / connected / disconnected / failed
==================  =========================================================================

Two transports implement it: :class:`PageTransport` hands the messages to the browser's view
(``js/``: WebRTC, the data channel, the sideband beside it), and
``_kernel_call.KernelCall`` holds the call in the kernel over the service's WebSocket. Each
side is tested against the same contract (``tests/unit/test_bridge.py``, ``tests/js``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Transport(Protocol):
    """Whatever holds a session's calls."""

    kind: str  # "page" or "websocket"
    # The words a call fails with when nobody takes it up (None: the transport always does).
    no_page_words: str | None

    def deliver(self, message: dict[str, Any], buffers: list[bytes] | None) -> None:
        """One message for the call's holder (already scrubbed of every secret)."""
        ...

    def close(self) -> None:
        """The session is closing: let go of everything now."""
        ...


class PageTransport:
    """The browser's WebRTC call: messages go to the widget's view over its comm."""

    kind = "page"

    def __init__(
        self,
        *,
        post: Callable[[dict[str, Any]], None],
        post_binary: Callable[[dict[str, Any], list[bytes]], None],
        no_page_words: str,
    ) -> None:
        self._post = post
        self._post_binary = post_binary
        self.no_page_words: str | None = no_page_words

    def deliver(self, message: dict[str, Any], buffers: list[bytes] | None) -> None:
        if buffers is None:
            self._post(message)
        else:
            self._post_binary(message, buffers)

    def close(self) -> None:
        """The page lets go of the call on ``disconnect``; the comm closes with the widget."""
