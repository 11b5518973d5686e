"""The one error type client-facing validation raises; the call turns it into an ``error`` event."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClientError(Exception):
    """A client event the emulator refuses, shaped like the provider's ``error`` object."""

    code: str
    param: str | None
    message: str
    type: str = "invalid_request_error"
