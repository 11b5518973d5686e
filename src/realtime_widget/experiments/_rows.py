"""One row per turn of a run, folded from the run's records.

The same latency rules as ``events.turns()``; the columns of ``storage.COLUMNS``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import _vocab as V
from .._turns import collect_turns
from .._vocab import ResponseText, obj, text
from ._script import Turn, TurnRecords
from ._storage import LATENCY_COLUMNS

if TYPE_CHECKING:
    from .._recording import Recording

TOKEN_COLUMNS = ("input_tokens", "output_tokens", "total_tokens")
# local records of a clip played into the call (``say()``)
SAY_STARTED = "say.started"

# A turn's seq span in the log, and the runner's error for it (None when it had none).
Span = tuple[int, int, str | None]


def _texts(records: Sequence[Mapping[str, Any]], rids: Sequence[str]) -> list[ResponseText]:
    """Each response's text, from its events."""
    by_rid = {rid: ResponseText() for rid in rids}
    for rec in records:
        ev = obj(rec.get("event"))
        acc = by_rid.get(text(ev.get("response_id")) or "")
        if rec.get("direction") == "server" and acc is not None:
            acc.feed(ev)
    return [by_rid[r] for r in rids]


def _tool_names(records: Sequence[Mapping[str, Any]], rids: set[str]) -> list[str]:
    """The functions the turn's responses called, in order (from ``response.done``)."""
    names: list[str] = []
    for rec in records:
        ev = obj(rec.get("event"))
        if rec.get("direction") != "server" or ev.get("type") != V.RESPONSE_DONE:
            continue
        resp = obj(ev.get("response"))
        if resp.get("id") not in rids:
            continue
        output = resp.get("output")
        for item in output if isinstance(output, list) else []:
            item = obj(item)
            if item.get("type") == "function_call" and isinstance(item.get("name"), str):
                names.append(item["name"])
    return names


def _sum(values: Iterable[Any]) -> float | None:
    got = [float(v) for v in values if v is not None]
    return sum(got) if got else None


def _isum(values: Iterable[Any]) -> int | None:
    got = [int(v) for v in values if v is not None]
    return sum(got) if got else None


def turn_rows(
    records: Sequence[Mapping[str, Any]],
    spans: Sequence[Span],
    turns: Sequence[Turn],
    run: Mapping[str, Any],
    *,
    recording: Recording | None = None,
) -> list[dict[str, Any]]:
    """One row per turn of a run, from its records, the turns played and each one's seq span.

    The records each carry their ``seq`` in the log. A row holds the turn's responses, what
    they said, their status, tool calls, the latencies of ``turns()`` (of the turn's first
    response: what the user waited for), the agent's audio time and the turn's own duration,
    and each kind's own columns (``Turn.measure``; ``Turn.measure_in`` with the previous
    turn's records and the call's ``recording``). ``run`` (variant, repeat, run, condition,
    seed, call number...) goes into every row.
    """
    by_rid = {t.response_id: t for t in collect_turns(records)}
    rows = []
    previous: list[Mapping[str, Any]] = []
    for i, (lo, hi, error) in enumerate(spans):
        turn = turns[i]
        recs = [r for r in records if lo <= int(r.get("seq", -1)) < hi]
        rids: list[str] = []
        start: float | None = None
        end: float | None = None
        heard: list[str] = []
        for rec in recs:
            ev = obj(rec.get("event"))
            etype, direction = V.canonical(ev.get("type")), rec.get("direction")
            t_ms = float(rec.get("t_ms") or 0.0)
            if direction == "server" and etype == V.RESPONSE_CREATED:
                rid = text(obj(ev.get("response")).get("id"))
                if rid is not None and rid not in rids:
                    rids.append(rid)
            elif (direction == "server" and etype == V.RESPONSE_DONE) or V.playback_ended(
                str(direction), etype
            ):
                end = t_ms if end is None else max(end, t_ms)
            elif start is None and (
                (direction == "client" and etype == V.ITEM_CREATE)
                or (direction == "local" and etype == SAY_STARTED)
            ):
                start = t_ms
            elif etype == V.INPUT_TRANSCRIPTION_COMPLETED:
                heard.append(text(ev.get("transcript")) or "")
        done = [by_rid[r].row() for r in rids if r in by_rid]
        first = done[0] if done else {}
        said = _texts(recs, rids)
        audio = [
            t["audio_stopped"] - t["audio_started"]
            for t in done
            if t["audio_started"] is not None and t["audio_stopped"] is not None
        ]
        status = done[-1]["status"] if done else None
        if status is None and error is None and not turn.expects_reply:
            status = "completed"  # nothing was to answer it (noise alone), and nothing did
        if error is not None or status is None:
            status = "cancelled" if error == "interrupted" else "error"
        no_reply = "no response" if turn.expects_reply else None
        rows.append(
            {
                **run,
                "turn": i + 1,
                "kind": turn.kind,
                "prompt": turn.prompt,
                "trigger": first.get("trigger"),
                "status": status,
                "reason": done[-1]["reason"] if done else None,
                "error": error if error is not None else (None if done else no_reply),
                "text": " ".join(s.text for s in said if s.text),
                "transcript": " ".join(s.transcript for s in said if s.transcript),
                "heard": " ".join(h for h in heard if h) or None,
                "response_id": rids[0] if rids else None,
                "responses": len(rids),
                "tool_calls": sum(t["tool_calls"] for t in done),
                "tools": _tool_names(recs, set(rids)),
                "tool_ms": _sum(t["tool_ms"] for t in done),
                "tool_hop_ms": max(
                    (t["tool_hop_ms"] for t in done if t["tool_hop_ms"] is not None),
                    default=None,
                ),
                **{c: first.get(c) for c in LATENCY_COLUMNS},
                **{c: _isum(t[c] for t in done) for c in TOKEN_COLUMNS},
                "audio_ms": sum(audio) if audio else None,
                "turn_ms": end - start if start is not None and end is not None else None,
                "started_ms": start,
                "ended_ms": end,
                **turn.measure(recs),
                **turn.measure_in(TurnRecords(recs, previous, recording)),
            }
        )
        previous = recs
    return rows
