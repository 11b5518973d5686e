"""A local realtime service that speaks the provider's protocol over real WebRTC (aiortc).

Use it when there is no API key or no network: quickstarts, tests, CI, benchmarks::

    from realtime_widget.emulator import Emulator
    with Emulator() as emu:
        ...  # point a client at emu.base_url with emu.api_key

See ``docs/emulator.md`` for the events it supports and its knobs.
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
