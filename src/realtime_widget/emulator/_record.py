"""What a call keeps of its traffic: the most recent events of one direction, and counts of all.

A call can run for hours (a soak, a kiosk); keeping every event would grow without bound, and
inside a kernel (the embedded emulator) that is the user's memory. So each direction keeps a
window of the newest ``keep`` events (the ``events_kept`` knob) for inspection, and counts
every event, in total and per type, for whoever needs to know how many were sent.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

EVENTS_KEPT = 1000  # default window per direction per call (the events_kept knob)
NO_TYPE = "(no type)"  # the count key of a message without a string "type" (malformed, Inworld's)


class EventRecord:
    def __init__(self, keep: int = EVENTS_KEPT) -> None:
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self.count = 0
        self.by_type: Counter[str] = Counter()

    def add(self, event: dict[str, Any]) -> None:
        self.recent.append(event)
        self.count += 1
        kind = event.get("type")
        self.by_type[kind if isinstance(kind, str) else NO_TYPE] += 1

    def types(self) -> list[str]:
        """Types of the events in the window, oldest first."""
        return [e["type"] if isinstance(e.get("type"), str) else NO_TYPE for e in self.recent]
