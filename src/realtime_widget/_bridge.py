"""The kernel <-> browser message protocol (Python half; ``js/bridge.ts`` is the other).

Every custom message is a JSON object with a ``kind`` and a ``page``: several pages (tabs, a
shared notebook) can show one widget, and only one may hold its call. Python addresses a call's
messages to the page holding it, or to "" (any page) before one has offered; each page sends
its own id. The tests check that both halves name the same kinds and fields
(``tests/unit/test_bridge_contract.py``).

Python -> browser
    ``connect``     ``call`` (int, increases per connect), ``ice_servers`` (RTCIceServer list,
                    may hold TURN credentials: this message is the only place they travel),
                    ``session_update`` (the full initial ``session.update`` event), ``queued``
                    (client events to send right after it, in order), ``mic`` (bool),
                    ``gather_timeout_ms`` (int).
    ``answer``      ``call``, ``sdp``.
    ``signal_error`` ``call``, ``message`` (safe to show: never a key or credential).
    ``send``        ``call``, ``events``: client events for the data channel, in order; the
                    browser queues them until the channel opens.
    ``disconnect``  ``call``.

Browser -> Python
    ``offer``       ``call``, ``sdp`` (after ICE gathering completes or its deadline passes).
    ``events``      ``call``, ``page`` (the front end's id), ``records``:
                    ``[{seq, dir, t_ms, event}]`` with ``dir`` one of ``client``/``server``/
                    ``local``, ``seq`` that front end's record counter and ``t_ms`` the
                    browser's epoch-ms clock. One message per batch.
    ``state``       ``call``, ``state`` (``connecting``/``connected``/``disconnected``/``failed``),
                    ``detail`` (words for a person, or ``""``).
    ``request``     ``action``: a button in a view asks Python to act (``connect``,
                    ``disconnect``, ``send_text`` with ``text``), so views and Python share one
                    code path.
"""

from __future__ import annotations

from typing import Any, Final

# Python -> browser
CONNECT: Final = "connect"
ANSWER: Final = "answer"
SIGNAL_ERROR: Final = "signal_error"
SEND: Final = "send"
DISCONNECT: Final = "disconnect"

# browser -> Python
OFFER: Final = "offer"
EVENTS: Final = "events"
STATE: Final = "state"
REQUEST: Final = "request"

TO_BROWSER: Final = frozenset({CONNECT, ANSWER, SIGNAL_ERROR, SEND, DISCONNECT})
TO_KERNEL: Final = frozenset({OFFER, EVENTS, STATE, REQUEST})

DIRECTIONS: Final = ("client", "server", "local")
STATUSES: Final = ("disconnected", "connecting", "connected", "failed")

# How long the browser waits for ICE gathering to complete before sending the offer anyway.
# Loopback and host candidates arrive in ~100 ms; an unreachable STUN server would stall
# "complete" for many seconds, so the offer goes with what has been gathered by then.
DEFAULT_GATHER_TIMEOUT_MS: Final = 800

# The fields of each message kind; ``message()`` builds Python's messages through this table
# and the contract test checks it against the interfaces in js/bridge.ts.
FIELDS: Final[dict[str, frozenset[str]]] = {
    CONNECT: frozenset(
        {"call", "page", "ice_servers", "session_update", "queued", "mic", "gather_timeout_ms"}
    ),
    ANSWER: frozenset({"call", "page", "sdp"}),
    SIGNAL_ERROR: frozenset({"call", "page", "message"}),
    SEND: frozenset({"call", "page", "events"}),
    DISCONNECT: frozenset({"call", "page"}),
    OFFER: frozenset({"call", "page", "sdp"}),
    EVENTS: frozenset({"call", "page", "records"}),
    STATE: frozenset({"call", "page", "state", "detail"}),
    REQUEST: frozenset({"page", "action", "text"}),
}


def message(kind: str, **fields: Any) -> dict[str, Any]:
    """A Python -> browser message, with exactly the fields its kind has."""
    if kind not in TO_BROWSER or set(fields) != FIELDS[kind]:
        raise ValueError(f"{kind!r} takes {sorted(FIELDS.get(kind, ()))}; got {sorted(fields)}")
    return {"kind": kind, **fields}
