"""Per-response turn analysis: what triggered each response, and how long each step took."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._log import EventLog

# Beta names seen in the wild are read as their GA twins.
_DELTAS = {
    "response.output_audio_transcript.delta",
    "response.output_text.delta",
    "response.audio_transcript.delta",
    "response.text.delta",
}
TURN_COLUMNS = (
    "call",
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
)
TIME_COLUMNS = TURN_COLUMNS[3:12]


@dataclass
class Turn:
    call: int
    response_id: str
    trigger: str
    t: dict[str, float | None] = field(default_factory=dict)
    status: str | None = None
    reason: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    audio: bool = False  # the response asked for audio output

    def mark(self, name: str, t_ms: float) -> None:
        if self.t.get(name) is None:  # the first occurrence is the one that counts
            self.t[name] = t_ms

    def _first_output(self, since: Any) -> float | None:
        """What the user first got, heard or else read: the widget's live figure (the same
        rule as js/latency.ts). A reply that speaks falls back to its text only once it is
        done unheard, so the figure does not jump from the text time to the heard time."""
        if self.t.get("first_audible") is not None:
            return since("first_audible")
        if not self.audio or self.t.get("done") is not None:
            return since("first_delta")
        return None

    def row(self) -> dict[str, Any]:
        start = self.t.get("turn_start")

        def since(name: str) -> float | None:
            v = self.t.get(name)
            return None if v is None or start is None else v - start

        audible = self.t.get("first_audible")
        to_audio = since("first_audible") if audible is not None else since("audio_started")
        return {
            "call": self.call,
            "response_id": self.response_id,
            "trigger": self.trigger,
            **{name: self.t.get(name) for name in TIME_COLUMNS},
            "status": self.status,
            "reason": self.reason,
            "input_tokens": self.usage.get("input_tokens"),
            "output_tokens": self.usage.get("output_tokens"),
            "total_tokens": self.usage.get("total_tokens"),
            "to_created_ms": since("created"),
            "to_first_delta_ms": since("first_delta"),
            # the browser's own ear first; the service's "audio started" when it has none
            "to_first_audio_ms": to_audio,
            "to_first_output_ms": self._first_output(since),
        }


def collect_turns(log: EventLog) -> list[Turn]:
    """One Turn per ``response.created``, in order, from a single pass over the log."""
    turns: dict[str, Turn] = {}
    # What the next response will be answering, per call: the latest user input seen.
    pending: dict[int, dict[str, Any]] = {}
    for rec in log:
        call, direction, etype, t_ms, ev = (
            rec["call"],
            rec["direction"],
            rec["type"],
            rec["t_ms"],
            rec["event"],
        )
        p = pending.setdefault(call, {})
        if direction == "server" and etype == "input_audio_buffer.speech_started":
            pending[call] = {"trigger": "speech", "speech_started": t_ms}
        elif direction == "server" and etype == "input_audio_buffer.speech_stopped":
            p.setdefault("trigger", "speech")
            p["speech_stopped"] = t_ms
            p["turn_start"] = t_ms
        elif direction == "client" and etype == "conversation.item.create":
            item = ev.get("item") or {}
            if item.get("role") == "user" or item.get("type") == "function_call_output":
                kind = "text" if item.get("type") == "message" else "tool_output"
                pending[call] = {"trigger": kind}
        elif direction == "client" and etype == "response.create":
            p.setdefault("trigger", "response.create")
            p["turn_start"] = t_ms
        elif direction == "server" and etype == "response.created":
            rid = (ev.get("response") or {}).get("id") or f"?{rec['seq']}"
            turn = Turn(call, rid, p.get("trigger", "response.create"))
            modalities = (ev.get("response") or {}).get("output_modalities") or []
            turn.audio = "audio" in modalities
            for key in ("speech_started", "speech_stopped", "turn_start"):
                if p.get(key) is not None:
                    turn.t[key] = p[key]
            turn.mark("created", t_ms)
            turns[rid] = turn
            pending[call] = {}
        else:
            _mark_response_event(turns, direction, etype, t_ms, ev)
    return list(turns.values())


def _mark_response_event(
    turns: dict[str, Turn], direction: str, etype: str, t_ms: float, ev: dict[str, Any]
) -> None:
    if etype == "response.done":
        resp = ev.get("response") or {}
        turn = turns.get(resp.get("id", ""))
        if turn is not None:
            turn.mark("done", t_ms)
            turn.status = resp.get("status")
            details = resp.get("status_details") or {}
            turn.reason = details.get("reason") or (details.get("error") or {}).get("code")
            turn.usage = resp.get("usage") or {}
        return
    turn = turns.get(ev.get("response_id") or "")
    if turn is None:
        return
    if direction == "server" and etype in _DELTAS:
        turn.mark("first_delta", t_ms)
    elif etype == "output_audio_buffer.started":
        turn.mark("audio_started", t_ms)
    elif etype == "output_audio_buffer.stopped":
        turn.mark("audio_stopped", t_ms)
    elif direction == "local" and etype == "audio.audible":
        turn.mark("first_audible", t_ms)
