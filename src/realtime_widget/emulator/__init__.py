"""A local realtime service that speaks the provider's protocol over real WebRTC (aiortc).

Use it when there is no API key or no network: quickstarts, tests, CI, benchmarks. It also speaks
the server-side WebSocket transport, and answers chat completions for judges and simulated
callers. :class:`Emulator` is the service; :class:`Knobs` are its latency and fault settings. What
the emulated model says is a :data:`Responder`'s choice (a :class:`TextReply` or a
:class:`ToolCall`, from a :class:`ResponseContext`; :func:`default_responder` by default), and
what it heard of speech a :data:`Transcriber`'s (from a :class:`TranscriptionRequest`).

Needs the ``emulator`` extra (aiortc, aiohttp, numpy): ``pip install "realtime-widget[emulator]"``;
the ``voice`` extra adds an offline speech detector, recognizer and voice. Importing this package
without the extra raises an error naming it. See ``docs/emulator.md`` for the events it supports
and its knobs.

Example:
    >>> from realtime_widget import RealtimeWidget
    >>> from realtime_widget.emulator import Emulator
    >>> with Emulator() as emu:  # or emu = Emulator().start(); ...; emu.stop()
    ...     w = RealtimeWidget(base_url=emu.base_url, api_key=emu.api_key)
"""

from __future__ import annotations

from .._public import publish as _publish
from ._deps import require_emulator_deps

require_emulator_deps()

from ._emulator import Emulator  # noqa: E402
from ._knobs import Knobs  # noqa: E402
from ._responder import (  # noqa: E402
    Responder,
    ResponderReply,
    ResponseContext,
    TextReply,
    ToolCall,
    Transcriber,
    TranscriptionRequest,
    default_responder,
    default_transcriber,
)

__all__ = [
    "Emulator",
    "Knobs",
    "Responder",
    "ResponderReply",
    "ResponseContext",
    "TextReply",
    "ToolCall",
    "Transcriber",
    "TranscriptionRequest",
    "default_responder",
    "default_transcriber",
]

_publish(__name__, globals(), __all__)
