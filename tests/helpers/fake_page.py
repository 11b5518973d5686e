"""A scripted page (and service behind it) for the scripted-session tests: it takes what the
widget posts, answers probes, and sends records back, on the calling thread or on another
thread as a kernel's subshell would."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from realtime_widget import RealtimeWidget
from tests.helpers import seam

T0 = 1_700_000_000_000.0


class FakePage:
    """Stands in for the browser: ``sent`` holds plain messages, ``binary`` (message, buffers)
    pairs. ``drop_buffers`` loses every binary buffer in both directions (as some hosts do);
    ``answer_probes=False`` never answers (a kernel that holds messages while a cell awaits);
    ``threaded`` delivers from a timer thread; ``reply_text`` makes the service answer each
    ``response.create`` with that transcript."""

    def __init__(
        self,
        w: RealtimeWidget,
        *,
        drop_buffers: bool = False,
        answer_probes: bool = True,
        threaded: bool = False,
        reply_text: str | None = None,
        delay_s: float = 0.02,
    ) -> None:
        self.w = w
        self.sent: list[dict[str, Any]] = []
        self.binary: list[tuple[dict[str, Any], list[bytes]]] = []
        self.drop_buffers = drop_buffers
        self.answer_probes = answer_probes
        self.threaded = threaded
        self.reply_text = reply_text
        self.delay_s = delay_s
        self.held_probes: list[dict[str, Any]] = []  # answers a probing kernel never got
        self._seq = itertools.count()
        self._responses = itertools.count(1)
        self.clock = T0
        seam.set_post(w, self.on_post)
        seam.set_send_binary(w, self.on_binary)

    # -- what the widget sends -------------------------------------------------------------

    def on_post(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message["kind"] == "send" and self.reply_text is not None:
            self.serve(message["call"], message["events"])

    def on_binary(self, message: dict[str, Any], buffers: list[bytes]) -> None:
        kept = [] if self.drop_buffers else [bytes(b) for b in buffers]
        self.binary.append((message, kept))
        if message["kind"] == "probe":
            reply = {
                "kind": "probe_reply",
                "page": "",
                "probe_id": message["probe_id"],
                "buffers": len(kept),
                "bytes": len(kept[0]) if kept else 0,
                "b64": "",
            }
            if self.answer_probes:
                self.deliver(reply, kept)
            else:
                self.held_probes.append(reply)

    def plays(self) -> list[dict[str, Any]]:
        return [m for m, _ in self.binary if m["kind"] == "play"]

    # -- what the page sends ---------------------------------------------------------------

    def deliver(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        def run() -> None:
            seam.from_page(self.w, content, list(buffers or []))

        if self.threaded:
            threading.Timer(self.delay_s, run).start()
        else:
            run()

    def records(self, call: int, *items: tuple[str, dict[str, Any]], step_ms: float = 10) -> None:
        recs = []
        for direction, event in items:
            self.clock += step_ms
            recs.append(
                {"seq": next(self._seq), "dir": direction, "t_ms": self.clock, "event": event}
            )
        self.deliver({"kind": "events", "call": call, "page": "", "records": recs})

    def serve(self, call: int, events: list[dict[str, Any]]) -> None:
        """The service's answer to client events: a spoken reply to each response.create."""
        items: list[tuple[str, dict[str, Any]]] = [("client", ev) for ev in events]
        for ev in events:
            if ev["type"] != "response.create":
                continue
            rid = f"resp_{next(self._responses)}"
            meta = ev.get("response", {}).get("metadata")
            words = (self.reply_text or "").split(" ")
            items += [
                (
                    "server",
                    {
                        "type": "response.created",
                        "response": {
                            "id": rid,
                            "metadata": meta,
                            "output_modalities": ["audio"],
                        },
                    },
                ),
                *[
                    (
                        "server",
                        {
                            "type": "response.output_audio_transcript.delta",
                            "response_id": rid,
                            "delta": (" " if i else "") + word,
                        },
                    )
                    for i, word in enumerate(words)
                ],
                (
                    "server",
                    {
                        "type": "response.done",
                        "response": {"id": rid, "status": "completed", "usage": {}},
                    },
                ),
            ]
        self.records(call, *items)


def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.005)
