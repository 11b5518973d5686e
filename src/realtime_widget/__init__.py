"""realtime-widget: live voice sessions with realtime agents in Jupyter, driven from Python."""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

from ._delivery import MidCellDeliveryError
from ._errors import RealtimeWidgetError
from ._headless import RealtimeSession, SessionClosedError
from ._log import EventLog
from ._provider import ProviderError
from ._public import publish as _publish
from ._recording import Recording, read_recordings
from ._widget import RealtimeWidget
from .evaluate import Caller, Judge
from .experiments import Runs, Script
from .media import Condition

if TYPE_CHECKING:
    from .emulator import Emulator

__all__ = [
    "Caller",
    "Condition",
    "Emulator",
    "EventLog",
    "Judge",
    "MidCellDeliveryError",
    "ProviderError",
    "RealtimeSession",
    "RealtimeWidget",
    "RealtimeWidgetError",
    "Recording",
    "Runs",
    "Script",
    "SessionClosedError",
    "read_recordings",
    "tracing",
]
_publish(__name__, globals(), __all__)

try:  # the one place the version is typed is pyproject.toml
    __version__ = _metadata.version("realtime-widget")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"


def __getattr__(name: str) -> Any:
    # The emulator needs aiortc/aiohttp/numpy (the "emulator" extra): import it only when asked.
    if name == "Emulator":
        from .emulator import Emulator

        return Emulator
    if name == "tracing":  # OpenTelemetry export set-up (the "otel" extra, when it is used)
        import importlib

        return importlib.import_module(".tracing", __name__)
    raise AttributeError(f"module 'realtime_widget' has no attribute {name!r}")
