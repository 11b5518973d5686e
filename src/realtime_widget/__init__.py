"""realtime-widget: live voice sessions with realtime agents in Jupyter, driven from Python."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._awaiting import MidCellDeliveryError
from ._experiments import Runs, Script
from ._log import EventLog
from ._provider import ProviderError
from ._recording import Recording, read_recordings
from ._widget import RealtimeWidget

if TYPE_CHECKING:
    from .emulator import Emulator

__all__ = [
    "Emulator",
    "EventLog",
    "MidCellDeliveryError",
    "ProviderError",
    "RealtimeWidget",
    "Recording",
    "Runs",
    "Script",
    "read_recordings",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The emulator needs aiortc/aiohttp/numpy (the "emulator" extra): import it only when asked.
    if name == "Emulator":
        from .emulator import Emulator

        return Emulator
    raise AttributeError(f"module 'realtime_widget' has no attribute {name!r}")
