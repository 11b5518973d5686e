"""A scripted page and the service behind it, for the experiments' tests (no browser): it
answers session updates, item creates and deletes, and each response.create with a spoken reply
whose audio lasts the reply's length divided by the session's speed, on a clock of its own, so
every figure is exact."""

from __future__ import annotations

import itertools
from typing import Any

from realtime_widget import RealtimeWidget, Script
from tests.conftest import pretend_live
from tests.helpers.fake_page import FakePage
from tests.helpers.page import Service, widget_on

FIRST_DELTA_MS = 120.0
CHARS_PER_S = 15.0


class ServicePage(FakePage):
    """A page and the service behind it. ``silent`` texts get no response (a turn that times
    out); ``delay_s`` with ``threaded=True`` answers from a timer thread."""

    def __init__(self, w: Any, *, silent: tuple[str, ...] = (), **kw: Any) -> None:
        super().__init__(w, reply_text="", **kw)
        self.speed = 1.0
        self.items: list[str] = []
        self.user: list[str] = []
        self.silent = silent
        self.ids = itertools.count(1)
        self.served: list[list[dict[str, Any]]] = []
        self.output_pending = False  # a tool output the next response answers (any batch)

    def serve(self, call: int, events: list[dict[str, Any]]) -> None:
        self.served.append(events)
        out: list[tuple[str, dict[str, Any], float]] = []
        for ev in events:
            out.append(("client", ev, 1.0))
            kind = ev["type"]
            if kind == "session.update":
                speed = ev["session"].get("audio", {}).get("output", {}).get("speed")
                self.speed = speed if speed is not None else self.speed
                session = {"audio": {"output": {"speed": self.speed}}}
                out.append(("server", {"type": "session.updated", "session": session}, 3.0))
            elif kind == "conversation.item.create":
                item = dict(ev["item"], id=f"item_{next(self.ids)}")
                self.items.append(item["id"])
                if item.get("role") == "user":
                    self.user.append(item["content"][0]["text"])
                self.output_pending |= item.get("type") == "function_call_output"
                out.append(("server", {"type": "conversation.item.added", "item": item}, 2.0))
            elif kind == "conversation.item.delete":
                self.items.remove(ev["item_id"])
                out.append(
                    ("server", {"type": "conversation.item.deleted", "item_id": ev["item_id"]}, 1.0)
                )
            elif kind == "response.create":
                out += self.respond(ev, events)
        self.timed(call, out)

    def respond(self, ev: dict[str, Any], batch: list[dict[str, Any]]) -> list[Any]:
        last = self.user[-1] if self.user else ""
        if last in self.silent:
            return []
        rid = f"resp_{next(self._responses)}"
        meta = ev.get("response", {}).get("metadata")
        created = {
            "type": "response.created",
            "response": {"id": rid, "metadata": meta, "output_modalities": ["audio"]},
        }
        tool_output, self.output_pending = self.output_pending, False
        tools = [t["name"] for t in self.w.tools]
        if "menu" in last and "get_menu" in tools and not tool_output:
            item = {
                "type": "function_call",
                "name": "get_menu",
                "call_id": "call_1",
                "arguments": "{}",
                "id": f"item_{next(self.ids)}",
            }
            self.items.append(item["id"])
            return [
                ("server", created, 5.0),
                (
                    "server",
                    {"type": "response.output_item.added", "response_id": rid, "item": item},
                    5.0,
                ),
                (
                    "server",
                    {"type": "response.output_item.done", "response_id": rid, "item": item},
                    5.0,
                ),
                (
                    "server",
                    {
                        "type": "response.done",
                        "response": {
                            "id": rid,
                            "status": "completed",
                            "output": [item],
                            "usage": {"total_tokens": 7},
                        },
                    },
                    5.0,
                ),
            ]
        said = "The menu is soup." if tool_output else f"You said: {last}"
        audio_ms = len(said) / CHARS_PER_S * 1000.0 / self.speed
        words = said.split(" ")
        step = audio_ms / len(words)
        item_id = f"item_{next(self.ids)}"
        self.items.append(item_id)
        added = {"type": "conversation.item.added", "item": {"id": item_id, "role": "assistant"}}
        return [
            ("server", created, 10.0),
            ("server", added, 2.0),
            (
                "server",
                {"type": "output_audio_buffer.started", "response_id": rid},
                FIRST_DELTA_MS - 12.0,
            ),
            *[
                (
                    "server",
                    {
                        "type": "response.output_audio_transcript.delta",
                        "response_id": rid,
                        "delta": (" " if i else "") + word,
                    },
                    0.0 if i == 0 else step,
                )
                for i, word in enumerate(words)
            ],
            (
                "server",
                {
                    "type": "response.output_audio_transcript.done",
                    "response_id": rid,
                    "transcript": said,
                },
                1.0,
            ),
            (
                "server",
                {
                    "type": "response.done",
                    "response": {
                        "id": rid,
                        "status": "completed",
                        "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
                    },
                },
                1.0,
            ),
            ("server", {"type": "output_audio_buffer.stopped", "response_id": rid}, step - 2.0),
        ]

    def timed(self, call: int, items: list[tuple[str, dict[str, Any], float]]) -> None:
        recs = []
        for direction, event, dt in items:
            self.clock += dt
            recs.append(
                {"seq": next(self._seq), "dir": direction, "t_ms": self.clock, "event": event}
            )
        self.deliver({"kind": "events", "call": call, "page": "", "records": recs})


def make_widget() -> RealtimeWidget:
    """A widget on a mock service (what it posts to the page is captured, then replaced by a
    ``ServicePage`` with ``live()``)."""
    w, _ = widget_on(Service())
    return w


def live(w: Any, **kw: Any) -> ServicePage:
    page = ServicePage(w, **kw)
    pretend_live(w)
    return page


SPEEDS = {"normal": {"speed": 1.0}, "fast": {"speed": 1.5}}
SCRIPT = Script(["Hello there!", Script.text("Anything vegetarian?")])
