"""The one error type client-facing validation raises; the call turns it into an ``error`` event."""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import RealtimeWidgetError


@dataclass(frozen=True)
class ClientError(RealtimeWidgetError):
    """A client event the emulator refuses, shaped like the provider's ``error`` object."""

    code: str
    param: str | None
    message: str
    type: str = "invalid_request_error"
