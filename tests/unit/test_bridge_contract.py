"""Both halves of the kernel <-> browser protocol name the same kinds, directions and defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from realtime_widget import _bridge as B

BRIDGE_TS = (Path(__file__).resolve().parents[2] / "js" / "bridge.ts").read_text()


def ts_string_consts() -> dict[str, str]:
    return dict(re.findall(r'export const ([A-Z_]+) = "([^"]+)";', BRIDGE_TS))


def ts_array(name: str) -> list[str]:
    m = re.search(rf"export const {name} = \[([^\]]*)\]", BRIDGE_TS)
    assert m, f"{name} not found in js/bridge.ts"
    consts = ts_string_consts()
    return [
        consts.get(tok.strip(), tok.strip().strip('"'))
        for tok in m.group(1).split(",")
        if tok.strip()
    ]


def test_message_kinds_match() -> None:
    ts = ts_string_consts()
    for name in (
        "CONNECT",
        "ANSWER",
        "SIGNAL_ERROR",
        "SEND",
        "DISCONNECT",
        "OFFER",
        "EVENTS",
        "STATE",
        "REQUEST",
    ):
        assert ts[name] == getattr(B, name), name
    assert set(ts_array("TO_BROWSER")) == B.TO_BROWSER
    assert set(ts_array("TO_KERNEL")) == B.TO_KERNEL


def test_directions_statuses_and_defaults_match() -> None:
    assert tuple(ts_array("DIRECTIONS")) == B.DIRECTIONS
    assert tuple(ts_array("STATUSES")) == B.STATUSES
    m = re.search(r"export const DEFAULT_GATHER_TIMEOUT_MS = (\d+);", BRIDGE_TS)
    assert m and int(m.group(1)) == B.DEFAULT_GATHER_TIMEOUT_MS


def ts_fields() -> dict[str, set[str]]:
    """Field names of every message shape in bridge.ts, keyed by kind (variants merged)."""
    consts = ts_string_consts()
    out: dict[str, set[str]] = {}
    for body in re.findall(r"\{([^{}]*\bkind: typeof [A-Z_]+;[^{}]*)\}", BRIDGE_TS):
        kind = consts[re.search(r"kind: typeof ([A-Z_]+);", body).group(1)]
        names = set(re.findall(r"(\w+)\??:", body)) - {"kind"}
        out.setdefault(kind, set()).update(names)
    return out


def test_every_message_has_the_same_fields_on_both_sides() -> None:
    assert ts_fields() == {kind: set(fields) for kind, fields in B.FIELDS.items()}


def test_python_builds_messages_through_the_table() -> None:
    assert B.message(B.ANSWER, call=1, page="p", sdp="v=0") == {
        "kind": "answer",
        "call": 1,
        "page": "p",
        "sdp": "v=0",
    }
    with pytest.raises(ValueError, match="'answer' takes"):
        B.message(B.ANSWER, call=1, page="p", spd="v=0")
    with pytest.raises(ValueError):
        B.message(B.OFFER, call=1, page="p", sdp="v=0")  # a browser -> kernel kind
