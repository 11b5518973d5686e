"""Identifier factories shaped like the provider's (``event_…``, ``item_…``, ``resp_…``)."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    # 80 random bits: unique across calls and emulator instances without shared counters.
    return f"{prefix}_{secrets.token_hex(10)}"
