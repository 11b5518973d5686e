"""The kernel <-> browser message protocol, Python half (``js/bridge.ts`` is the other).

Both halves load ``protocol.json``: the message kinds and their fields, the request actions,
statuses, directions, the traits Python owns, the limits and the ``local`` event types are
described there once. This module builds Python's messages through that table (``message``)
and checks every message from a page before anything acts on it (``parse``): a page is code
the kernel does not control, so a malformed or hostile message is refused with words, never
allowed to break the log or the call.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

PROTOCOL: Final[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "protocol.json").read_text(encoding="utf-8")
)

# Python -> browser
CONNECT: Final = "connect"
ANSWER: Final = "answer"
SIGNAL_ERROR: Final = "signal_error"
SEND: Final = "send"
SHOWN: Final = "shown"  # client events the kernel sent on the sideband, for the view
DISCONNECT: Final = "disconnect"
PLAY: Final = "play"
STOP_CLIP: Final = "stop_clip"
PROBE: Final = "probe"
ICE: Final = "ice"  # ICE servers fetched ahead of a click (TURN credentials: messages only)
# browser -> Python
OFFER: Final = "offer"
EVENTS: Final = "events"
STATE: Final = "state"
REQUEST: Final = "request"
RECORDING: Final = "recording"
PROBE_REPLY: Final = "probe_reply"

FIELDS: Final[dict[str, frozenset[str]]] = {
    kind: frozenset(fields)
    for side in ("to_browser", "to_kernel")
    for kind, fields in PROTOCOL[side].items()
}
TO_BROWSER: Final = frozenset(PROTOCOL["to_browser"])
TO_KERNEL: Final = frozenset(PROTOCOL["to_kernel"])
DIRECTIONS: Final[tuple[str, ...]] = tuple(PROTOCOL["directions"])
STATUSES: Final[tuple[str, ...]] = tuple(PROTOCOL["statuses"])
REQUEST_ACTIONS: Final[tuple[str, ...]] = tuple(PROTOCOL["request_actions"])
PYTHON_OWNED_TRAITS: Final = frozenset(PROTOCOL["python_owned_traits"])
LOCAL_EVENTS: Final = frozenset(PROTOCOL["local_events"])
LIMITS: Final[dict[str, int]] = PROTOCOL["limits"]
# How long the browser waits for ICE gathering before sending the offer anyway: an
# unreachable STUN server would stall "complete" for many seconds.
DEFAULT_GATHER_TIMEOUT_MS: Final[int] = PROTOCOL["gather_timeout_ms"]


def message(kind: str, **fields: Any) -> dict[str, Any]:
    """A Python -> browser message, with exactly the fields its kind has."""
    if kind not in TO_BROWSER or set(fields) != FIELDS[kind]:
        raise ValueError(f"{kind!r} takes {sorted(FIELDS.get(kind, ()))}; got {sorted(fields)}")
    return {"kind": kind, **fields}


def page_message(kind: str, **fields: Any) -> dict[str, Any]:
    """A page -> Python message, with exactly the fields its kind has.

    A call the kernel holds answers with these as a page would.
    """
    if kind not in TO_KERNEL or set(fields) != FIELDS[kind]:
        raise ValueError(f"{kind!r} takes {sorted(FIELDS.get(kind, ()))}; got {sorted(fields)}")
    return {"kind": kind, **fields}


@dataclass
class Record:
    """One event record from a page, checked.

    ``t_ms`` is None when the page's time was unusable (the kernel's receive time stands in),
    ``seq`` None when its number was.
    """

    dir: str
    event: dict[str, Any]
    t_ms: float | None
    seq: int | None


@dataclass
class Parsed:
    """A page's message after ``parse``.

    ``msg`` None when refused whole; ``problems`` says in words what was refused or clamped (each
    becomes a ``message.refused`` log record).
    """

    kind: str
    page: str
    msg: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)


def _int_in(value: Any, lo: int, hi: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if lo <= value <= hi else None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _records(raw: Any, problems: list[str]) -> list[Record]:
    if not isinstance(raw, list):
        problems.append(f"'records' must be a list; got {type(raw).__name__}")
        return []
    out: list[Record] = []
    dropped = bad_time = bad_seq = 0
    t_lo, t_hi = LIMITS["t_ms_min"], LIMITS["t_ms_max"]
    for rec in raw[: LIMITS["max_batch"]]:
        if not isinstance(rec, dict) or rec.get("dir") not in DIRECTIONS:
            dropped += 1
            continue
        event = rec.get("event")
        if not isinstance(event, dict):
            event = {"type": "local.invalid", "value": _short(event, 200)}
        t = rec.get("t_ms")
        t_ms: float | None = None
        if isinstance(t, int | float) and not isinstance(t, bool):
            t_ms = float(t) if math.isfinite(t) and t_lo <= t <= t_hi else None
        if t_ms is None:
            bad_time += 1
        seq = _int_in(rec.get("seq"), 0, LIMITS["max_seq"])
        if seq is None and "seq" in rec:
            bad_seq += 1
        out.append(Record(rec["dir"], event, t_ms, seq))
    if len(raw) > LIMITS["max_batch"]:
        problems.append(
            f"{len(raw) - LIMITS['max_batch']} records beyond the batch limit of "
            f"{LIMITS['max_batch']} were dropped"
        )
    if dropped:
        problems.append(f"{dropped} record(s) without a 'dir' of {list(DIRECTIONS)} were dropped")
    if bad_time:
        problems.append(
            f"{bad_time} record(s) had a 't_ms' that is not an epoch time in ms; the kernel's "
            "receive time stands in"
        )
    if bad_seq:
        problems.append(
            f"{bad_seq} record(s) had a 'seq' that is not an integer in 0..{LIMITS['max_seq']}; "
            "their numbering was ignored"
        )
    return out


def payload(buffers: Any, b64: Any) -> bytes | None:
    """A message's binary payload.

    Its first buffer, else its base64 ``b64`` field (hosts that drop buffers); None when it has
    neither.
    """
    if buffers:
        first = buffers[0]
        try:
            return bytes(first)
        except (TypeError, ValueError):
            return None
    if isinstance(b64, str) and b64:
        import base64
        import binascii

        try:
            return base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


def _finite(value: Any, lo: float, hi: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and lo <= value <= hi else None


def parse(content: Any, buffers: Any = ()) -> Parsed:
    """Check one browser -> kernel message.

    Unknown kinds, and messages whose required fields are missing or of the wrong shape, are refused
    whole; an ``events`` batch keeps every good record and says what it dropped or clamped. Binary
    payloads (``recording``, ``probe_reply``) come from ``buffers`` or the base64 ``b64`` field, as
    ``msg["data"]``.
    """
    if not isinstance(content, dict):
        return Parsed("?", "", None, [f"a message must be a JSON object; got {_short(content)}"])
    kind = content.get("kind")
    page_raw = content.get("page", "")
    page = page_raw if isinstance(page_raw, str) else ""
    if len(page) > LIMITS["max_page_chars"]:
        page = page[: LIMITS["max_page_chars"]]
    if not isinstance(kind, str) or kind not in TO_KERNEL:
        return Parsed(
            str(kind)[:40], page, None, [f"unknown kind {_short(kind)}; known: {sorted(TO_KERNEL)}"]
        )
    problems: list[str] = []
    if not isinstance(page_raw, str):
        problems.append(f"'page' must be a string; got {type(page_raw).__name__}")
    if kind == REQUEST:
        action = content.get("action")
        if action not in REQUEST_ACTIONS:
            return Parsed(
                kind,
                page,
                None,
                [f"unknown action {_short(action)}; known: {list(REQUEST_ACTIONS)}"],
            )
        msg: dict[str, Any] = {"kind": kind, "page": page, "action": action}
        if action in ("approve", "reject"):
            call_id = content.get("call_id")
            if not isinstance(call_id, str) or not 0 < len(call_id) <= LIMITS["max_call_id_chars"]:
                return Parsed(kind, page, None, [f"{action}: 'call_id' must be a short string"])
            msg["call_id"] = call_id
            reason = content.get("reason")
            msg["reason"] = reason[:2000] if isinstance(reason, str) else ""
        if action == "send_text":
            text = content.get("text")
            if not isinstance(text, str) or len(text) > LIMITS["max_text_chars"]:
                return Parsed(
                    kind,
                    page,
                    None,
                    [f"'text' must be a string of at most {LIMITS['max_text_chars']} characters"],
                )
            msg["text"] = text
        return Parsed(kind, page, msg, problems)
    if kind == PROBE_REPLY:
        probe_id = content.get("probe_id")
        if not isinstance(probe_id, str) or len(probe_id) > 100:
            return Parsed(kind, page, None, ["'probe_id' must be a short string"])
        return Parsed(
            kind,
            page,
            {
                "kind": kind,
                "page": page,
                "probe_id": probe_id,
                "buffers": _int_in(content.get("buffers"), 0, 100) or 0,
                "bytes": _int_in(content.get("bytes"), 0, LIMITS["max_chunk_bytes"]) or 0,
                # how many buffers reached the kernel (the echo may also ride in 'b64')
                "received_buffers": len(buffers) if isinstance(buffers, list | tuple) else 0,
                "data": payload(buffers, content.get("b64")),
            },
            problems,
        )
    call = _int_in(content.get("call"), 0, LIMITS["max_call"])
    if call is None:
        got = _short(content.get("call"))
        return Parsed(
            kind, page, None, [f"'call' must be an integer in 0..{LIMITS['max_call']}; got {got}"]
        )
    msg = {"kind": kind, "page": page, "call": call}
    if kind == EVENTS:
        msg["records"] = _records(content.get("records"), problems)
    elif kind == OFFER:
        # An offer without a usable SDP still names its call, which then fails with words.
        sdp = content.get("sdp")
        if not isinstance(sdp, str) or not sdp or len(sdp) > LIMITS["max_sdp_chars"]:
            problems.append(f"'sdp' must be a non-empty string; got {_short(sdp)}")
            sdp = None
        msg["sdp"] = sdp
    elif kind == RECORDING:
        seq = _int_in(content.get("seq"), 0, LIMITS["max_seq"])
        t0 = _finite(content.get("t0_ms"), LIMITS["t_ms_min"], LIMITS["t_ms_max"])
        rate = _int_in(content.get("sample_rate"), 8000, 192000)
        frames = _int_in(content.get("frames"), 0, 192000 * 60)
        data = payload(buffers, content.get("b64"))
        if None in (seq, t0, rate, frames) or data is None or len(data) != (frames or 0) * 4:
            return Parsed(
                kind,
                page,
                None,
                [
                    "a recording chunk needs integer 'seq', 'sample_rate' (8000..192000) and "
                    "'frames', an epoch 't0_ms', and frames * 4 bytes of stereo int16 PCM"
                ],
            )
        msg.update(seq=seq, t0_ms=t0, sample_rate=rate, frames=frames, data=data)
    elif kind == STATE:
        state = content.get("state")
        if state not in STATUSES:
            return Parsed(
                kind, page, None, [f"unknown state {_short(state)}; known: {list(STATUSES)}"]
            )
        detail = content.get("detail")
        msg["state"] = state
        msg["detail"] = detail[: LIMITS["max_text_chars"]] if isinstance(detail, str) else ""
    return Parsed(kind, page, msg, problems)
