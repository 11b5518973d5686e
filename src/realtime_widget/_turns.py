"""Per-response turns: what triggered each response, when each step happened, the latency.

The latency is the one a user felt. This module is the one owner of that definition:
``EventLog.turns()`` / ``latency_summary()`` fold a whole log through ``TurnTracker``, and the
widget feeds it each batch as it arrives to show the live figure (the browser only draws what
the kernel computed).

The rules:
- a turn is one server ``response.created`` (a reused response id starts a new turn);
- it starts at the latest server ``input_audio_buffer.speech_stopped`` or client
  ``response.create`` since the previous response (a new ``speech_started``, or a user /
  ``function_call_output`` ``conversation.item.create``, starts the next one afresh);
  when that speech was a clip played by ``say()`` (it started while the clip played and
  stopped after it ended), the turn starts at the clip's end (local ``say.ended``) and its
  trigger is ``clip``: the service's VAD silence does not count, so latency is voice to voice;
- its felt latency (``to_first_output_ms``) runs to the browser's first audible sample of the
  reply (local ``audio.audible``), else to its first transcript/text delta: at once for a
  text-only reply, and at ``response.done`` for a spoken reply nobody heard (so the figure does
  not flip from read to heard a moment later; a late audible still replaces it);
- the live summary is the latest-created measured turn and the median of the last ``window``
  measured turns in creation order.

Every reader of an event field is total: a field of the wrong shape counts as absent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from . import _vocab as V
from ._vocab import obj, text

__all__ = ["TURN_COLUMNS", "ResponseTurn", "TurnTracker", "collect_turns", "obj", "text"]

TURN_COLUMNS = (
    "call_number",
    "response_id",
    "trigger",
    "speech_started",
    "speech_stopped",
    "turn_start",
    "created",
    "first_delta",
    "audio_started",
    "first_audible",
    "audio_stopped",
    "done",
    "status",
    "reason",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "to_created_ms",
    "to_first_delta_ms",
    "to_first_audio_ms",
    "to_first_output_ms",
    "tool_calls",
    "tool_ms",
    "tool_hop_ms",
)
TIME_COLUMNS = TURN_COLUMNS[3:12]
LATENCY_WINDOW = 200
# Responses the live tracker remembers for late events (an audible after done).
_LIVE_OPEN = 64
_USAGE = ("input_tokens", "output_tokens", "total_tokens")
_CLIP_VAD_SLACK_MS = 1000.0  # how long after a clip's end the service's VAD may notice it
_TOOL_CALL_EVENTS = (V.FUNCTION_ARGUMENTS_DONE, V.OUTPUT_ITEM_DONE)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class ResponseTurn:
    """One response and the user turn it answered."""

    order: int
    call: int
    response_id: str
    trigger: str
    t: dict[str, float | None] = field(default_factory=dict)
    status: str | None = None
    reason: str | None = None
    usage: dict[str, int | None] = field(default_factory=dict)
    audio: bool = False  # the response asked for audio output
    # per function call this response made: when the browser got it ("recv"), how long the
    # tool ran ("dur", from the kernel's tool.finished) and when its output went out ("sent")
    tools: dict[str, dict[str, float]] = field(default_factory=dict)

    def tool_columns(self) -> dict[str, Any]:
        durations = [c["dur"] for c in self.tools.values() if "dur" in c]
        # the kernel hop: the first receive -> output sent, less the function's own time. The
        # kernel runs a call from whichever copy reaches it first: the page's, or the sideband's
        # (then it may answer on either path), so the hop starts at the earlier of the two.
        hops = [
            c["sent"] - min(c["recv"], c.get("recv_sideband", c["recv"])) - c["dur"]
            for c in self.tools.values()
            if {"sent", "recv", "dur"} <= c.keys()
        ]
        return {
            "tool_calls": len(self.tools),
            "tool_ms": sum(durations) if durations else None,
            "tool_hop_ms": max(hops) if hops else None,
        }

    def mark(self, name: str, t_ms: float) -> bool:
        if self.t.get(name) is None:  # the first occurrence is the one that counts
            self.t[name] = t_ms
            return True
        return False

    def since(self, name: str) -> float | None:
        start, value = self.t.get("turn_start"), self.t.get(name)
        return None if value is None or start is None else value - start

    def first_output_ms(self) -> float | None:
        """What the user first got: heard, or else read (see the module's rules)."""
        if self.t.get("first_audible") is not None:
            return self.since("first_audible")
        if not self.audio or self.t.get("done") is not None:
            return self.since("first_delta")
        return None

    def row(self) -> dict[str, Any]:
        heard = "first_audible" if self.t.get("first_audible") is not None else "audio_started"
        return {
            "call_number": self.call,
            "response_id": self.response_id,
            "trigger": self.trigger,
            **{name: self.t.get(name) for name in TIME_COLUMNS},
            "status": self.status,
            "reason": self.reason,
            "input_tokens": self.usage.get("input_tokens"),
            "output_tokens": self.usage.get("output_tokens"),
            "total_tokens": self.usage.get("total_tokens"),
            "to_created_ms": self.since("created"),
            "to_first_delta_ms": self.since("first_delta"),
            # the browser's own ear first; the service's "audio started" when it has none
            "to_first_audio_ms": self.since(heard),
            "to_first_output_ms": self.first_output_ms(),
            **self.tool_columns(),
        }


class TurnTracker:
    """Folds records into turns, O(1) per record.

    ``keep_all=False`` (the widget's live use) remembers only recent turns, so a long session's
    memory stays flat.
    """

    def __init__(self, *, keep_all: bool = True, window: int = LATENCY_WINDOW) -> None:
        self.keep_all = keep_all
        self.window = window
        self.turns: list[ResponseTurn] = []
        self._by_id: dict[tuple[int, str], ResponseTurn] = {}
        # What the next response of each call answers: the latest user input seen.
        self._pending: dict[int, dict[str, Any]] = {}
        self._order = 0
        self._measured: dict[int, float] = {}  # turn order -> to_first_output_ms, window-bounded
        self._clips: dict[int, dict[str, float]] = {}  # each call's latest say() clip times
        self._tool_turn: dict[tuple[int, str], ResponseTurn] = {}  # function call -> its turn
        self._summary = self._compute()

    def feed_records(self, records: Iterable[Mapping[str, Any]]) -> bool:
        changed = False
        for rec in records:
            t_sideband = rec.get("t_sideband_ms")
            changed |= self.feed(
                int(rec.get("call_number", 0) or 0),
                str(rec.get("direction", "")),
                obj(rec.get("event")),
                float(rec.get("t_ms", 0.0)),
                t_sideband=t_sideband if isinstance(t_sideband, (int, float)) else None,
            )
        return changed

    def feed(
        self,
        call: int,
        direction: str,
        ev: Mapping[str, Any],
        t_ms: float,
        *,
        t_sideband: float | None = None,
    ) -> bool:
        """Fold one record; True when the live summary changed.

        ``t_sideband`` is when the kernel heard the event on the sideband.
        """
        etype = V.canonical(ev.get("type"))
        p = self._pending.setdefault(call, {})
        if direction == "server" and etype == V.SPEECH_STARTED:
            self._pending[call] = {"trigger": "speech", "speech_started": t_ms}
        elif direction == "server" and etype == V.SPEECH_STOPPED:
            p.setdefault("trigger", "speech")
            p["speech_stopped"] = t_ms
            p["turn_start"] = t_ms
            clip = self._clips.get(call)
            if clip is not None and self._clip_spoke(clip, p, t_ms):
                del self._clips[call]
                p["trigger"] = "clip"  # the user's turn ended with the clip's last sample
                p["turn_start"] = clip["ended"]
        elif direction == "local" and etype in ("say.started", "say.ended"):
            key = "started" if etype == "say.started" else "ended"
            if key == "started":
                self._clips[call] = {}
            self._clips.setdefault(call, {})[key] = t_ms
        elif direction == "client" and etype == V.ITEM_CREATE:
            item = obj(ev.get("item"))
            if item.get("type") == "function_call_output":
                self._tool_mark(call, text(item.get("call_id")), "sent", t_ms)
            if item.get("role") == "user" or item.get("type") == "function_call_output":
                kind = "text" if item.get("type") == "message" else "tool_output"
                self._pending[call] = {"trigger": kind}
        elif direction == "client" and etype == V.RESPONSE_CREATE:
            p.setdefault("trigger", "response.create")
            p["turn_start"] = t_ms
        elif direction == "server" and etype == V.RESPONSE_CREATED:
            self._created(call, obj(ev.get("response")), t_ms, p)
        else:
            return self._response_event(call, direction, etype, ev, t_ms, t_sideband)
        return False

    @staticmethod
    def _clip_spoke(clip: Mapping[str, float], p: Mapping[str, Any], stopped: float) -> bool:
        """Did this speech come from the clip?

        It started while the clip played (the VAD may need a moment after the clip's end to notice
        it) and stopped after the clip ended.
        """
        began, ended = clip.get("started"), clip.get("ended")
        if began is None or ended is None or not began <= ended <= stopped:
            return False
        speech = p.get("speech_started")
        return speech is None or began <= speech <= ended + _CLIP_VAD_SLACK_MS

    def _created(self, call: int, resp: Mapping[str, Any], t_ms: float, p: dict[str, Any]) -> None:
        self._order += 1
        rid = text(resp.get("id")) or f"?{self._order}"
        turn = ResponseTurn(self._order, call, rid, p.get("trigger", "response.create"))
        # GA says output_modalities; the beta said modalities
        modalities = resp.get("output_modalities", resp.get("modalities"))
        turn.audio = isinstance(modalities, list) and "audio" in modalities
        for key in ("speech_started", "speech_stopped", "turn_start"):
            if p.get(key) is not None:
                turn.t[key] = p[key]
        turn.mark("created", t_ms)
        self._by_id[(call, rid)] = turn  # a reused id now names the newer response
        self._pending[call] = {}
        if self.keep_all:
            self.turns.append(turn)
        elif len(self._by_id) > _LIVE_OPEN:
            oldest = min(self._by_id, key=lambda k: self._by_id[k].order)
            del self._by_id[oldest]

    def _response_event(
        self,
        call: int,
        direction: str,
        etype: Any,
        ev: Mapping[str, Any],
        t_ms: float,
        t_sideband: float | None = None,
    ) -> bool:
        if etype == V.RESPONSE_DONE:
            resp = obj(ev.get("response"))
            turn = self._by_id.get((call, text(resp.get("id")) or ""))
            if turn is None:
                return False
            turn.mark("done", t_ms)
            turn.status = text(resp.get("status"))
            details = obj(resp.get("status_details"))
            turn.reason = text(details.get("reason")) or text(obj(details.get("error")).get("code"))
            usage = obj(resp.get("usage"))
            turn.usage = {k: _int(usage.get(k)) for k in _USAGE}
            return self._measure(turn)
        if direction == "local" and etype == "tool.finished":
            dur = ev.get("duration_ms")
            if isinstance(dur, int | float) and not isinstance(dur, bool):
                self._tool_mark(call, text(ev.get("call_id")), "dur", float(dur))
            return False
        turn = self._by_id.get((call, text(ev.get("response_id")) or ""))
        if turn is None:
            return False
        if direction == "server" and etype in _TOOL_CALL_EVENTS:
            item = obj(ev.get("item"))
            call_id = text(ev.get("call_id")) or text(item.get("call_id"))
            if call_id and (
                etype == V.FUNCTION_ARGUMENTS_DONE or item.get("type") == "function_call"
            ):
                turn.tools.setdefault(call_id, {}).setdefault("recv", t_ms)
                if t_sideband is not None:
                    turn.tools[call_id].setdefault("recv_sideband", t_sideband)
                self._tool_turn[(call, call_id)] = turn
                if len(self._tool_turn) > 4 * _LIVE_OPEN and not self.keep_all:
                    del self._tool_turn[next(iter(self._tool_turn))]
            return False
        if direction == "server" and etype in V.OUTPUT_DELTAS:
            return turn.mark("first_delta", t_ms) and self._measure(turn)
        if V.playback_started(direction, etype):
            turn.mark("audio_started", t_ms)
        elif etype == V.AUDIO_STOPPED or (direction == "local" and etype == V.SPEAKER_STOPPED):
            turn.mark("audio_stopped", t_ms)
        elif direction == "local" and etype == "audio.audible":
            return turn.mark("first_audible", t_ms) and self._measure(turn)
        return False

    def _tool_mark(self, call: int, call_id: str | None, key: str, value: float) -> None:
        turn = self._tool_turn.get((call, call_id or ""))
        if turn is not None:
            turn.tools[call_id or ""].setdefault(key, value)

    def _measure(self, turn: ResponseTurn) -> bool:
        value = turn.first_output_ms()
        if value is None or self._measured.get(turn.order) == value:
            return False
        full = len(self._measured) >= self.window
        if full and turn.order < min(self._measured):
            return False  # out of the window already: a late correction no longer counts
        self._measured[turn.order] = value
        while len(self._measured) > self.window:
            del self._measured[min(self._measured)]
        summary = self._compute()
        changed = summary != self._summary
        self._summary = summary
        return changed

    def _compute(self) -> dict[str, Any]:
        if not self._measured:
            return {"last_ms": None, "median_ms": None, "count": 0}
        last = self._measured[max(self._measured)]
        return {
            "last_ms": last,
            "median_ms": median(self._measured.values()),
            "count": len(self._measured),
        }

    def summary(self) -> dict[str, Any]:
        """The latest measured turn, the median of the window, and how many it covers."""
        return dict(self._summary)

    def turn(self, call: int, response_id: str) -> ResponseTurn | None:
        """The turn of a response, while the tracker still holds it (``w.ask()``'s latency)."""
        return self._by_id.get((call, response_id))


def collect_turns(records: Iterable[Mapping[str, Any]]) -> list[ResponseTurn]:
    """Every response's turn, in order, from one pass over log records."""
    tracker = TurnTracker()
    tracker.feed_records(records)
    return tracker.turns


def latency_summary(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    tracker = TurnTracker()
    tracker.feed_records(records)
    return tracker.summary()
