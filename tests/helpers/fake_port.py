"""The session port's surface as the session guard and the controls use it, with no call."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any


class FakePort:
    """The CallPort surface the guard uses: records in, events and local records out."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[str, Mapping[str, Any], float, int], None]] = []
        self.sent: list[dict[str, Any]] = []
        self.local: list[dict[str, Any]] = []
        self.call = 1
        self.live = True

    def subscribe(self, listener: Any) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def send_events(self, events: list[dict[str, Any]]) -> None:
        json.dumps(events)  # what goes to the page must be JSON
        self.sent.extend(events)

    def log_local(self, event: dict[str, Any], call: int | None = None) -> None:
        json.dumps(event)
        self.local.append(event)

    def hear(self, direction: str, event: dict[str, Any], call: int | None = None) -> None:
        for fn in list(self.listeners):
            fn(direction, event, 0.0, self.call if call is None else call)
