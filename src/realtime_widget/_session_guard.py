"""The session guard: every ``session.update`` the widget sends is checked against the answer.

The service rejects a whole ``session.update`` when one field is invalid (an ``error`` naming
the field in ``param``), and some fields are fixed once the session opens (a live edit of one
is ignored, and ``session.updated`` still reports the old value). Neither says anything on
its own, so the guard remembers each update the widget sends (it hears the page's ``client``
records) and, for each answer:

- an ``error`` answering an update: names the update and the refused field in the widget's
  error, logs a ``session.rejected`` record, and for the call's first update (a refused first
  update leaves the call on the service's defaults: another voice, no instructions) sends the
  rest again once without the refused field, and says so (``resent: true``);
- a ``session.updated``: compares what was sent with what the service reports and logs a
  ``session.drift`` record naming every field it did not take as sent.

Answers come in the order the updates went, so an answer belongs to the oldest update still
waiting, unless the error names the client event (``event_id``) or a field only a later
update carried.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._port import CallPort

# The guard's own resend carries an id of this shape, so its answer is matched exactly.
RESEND_ID_PREFIX = "rtw_session_resend_"
# Longer text values are cut in the records (instructions can run to pages).
MAX_VALUE_CHARS = 500
# Unanswered updates remembered per call (a service that never answers must not grow this).
MAX_PENDING = 64
# The service may round floats (speed 1.1 comes back as 1.100000023841858).
FLOAT_TOLERANCE = 1e-4

Path = tuple[str | int, ...]
Watcher = Callable[[dict[str, Any]], None]

_MISSING: Any = object()


@dataclass
class _Update:
    event_id: str | None
    session: dict[str, Any]
    first: bool
    resend: bool


def param_path(param: Any) -> Path | None:
    """``"session.tools[0].name"`` -> ``("tools", 0, "name")`` (None when not a field path)."""
    if not isinstance(param, str) or not param.strip():
        return None
    parts: list[str | int] = []
    for piece in param.strip().split("."):
        m = re.fullmatch(r"([^\[\]]*)((?:\[\d+\])*)", piece)
        if m is None:
            return None
        if m.group(1):
            parts.append(m.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    if parts and parts[0] == "session":
        parts = parts[1:]
    return tuple(parts) or None


def dotted(path: Path) -> str:
    """``("tools", 0, "name")`` -> ``"session.tools[0].name"``."""
    out = "session"
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _get(node: Any, path: Path) -> Any:
    for key in path:
        if isinstance(key, int):
            if not isinstance(node, list) or not 0 <= key < len(node):
                return _MISSING
            node = node[key]
        else:
            if not isinstance(node, Mapping) or key not in node:
                return _MISSING
            node = node[key]
    return node


def without(session: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """A copy of ``session`` without the field at ``path``; parents left empty go too.

    Inside a list the whole element goes (a tool without its refused name would be refused again).
    """
    cut = next((i for i, p in enumerate(path) if isinstance(p, int)), None)
    if cut is not None:
        path = path[: cut + 1]
    out = copy.deepcopy(dict(session))
    chain: list[tuple[Any, str | int]] = []
    node: Any = out
    for key in path:
        chain.append((node, key))
        node = _get(node, (key,))
        if node is _MISSING:
            return out
    for parent, key in reversed(chain):
        del parent[key]
        if parent or parent is out:
            break
    return out


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[: MAX_VALUE_CHARS - 1] + "…"
    return value


def _same(sent: Any, reported: Any) -> bool:
    if isinstance(sent, bool) or isinstance(reported, bool):
        return sent is reported
    if isinstance(sent, int | float) and isinstance(reported, int | float):
        return math.isclose(sent, reported, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)
    return bool(sent == reported)


def compare(sent: Any, reported: Any, path: Path = ()) -> tuple[list[dict[str, Any]], list[str]]:
    """Fields of ``sent`` the report holds otherwise, and fields it does not hold at all.

    Only what was sent is checked: a report may carry more (defaults, ids, extra keys in a
    tool) without that counting as drift.
    """
    differ: list[dict[str, Any]] = []
    unreported: list[str] = []
    if isinstance(sent, Mapping):
        if not isinstance(reported, Mapping):
            differ.append({"field": dotted(path), "sent": sent, "reported": _short(reported)})
            return differ, unreported
        for key, value in sent.items():
            if not path and key == "type":
                continue
            if key not in reported:
                unreported.append(dotted((*path, key)))
                continue
            d, u = compare(value, reported[key], (*path, key))
            differ += d
            unreported += u
    elif isinstance(sent, list) and isinstance(reported, list) and len(sent) == len(reported):
        for i, (a, b) in enumerate(zip(sent, reported, strict=True)):
            d, u = compare(a, b, (*path, i))
            differ += d
            unreported += u
    elif not _same(sent, reported):
        differ.append({"field": dotted(path), "sent": _short(sent), "reported": _short(reported)})
    return differ, unreported


class SessionGuard:
    """Checks each ``session.update`` of the current call against the service's answer.

    ``set_error(words)`` puts a refusal in the widget's ``error``. ``watch(fn)`` lets a view
    (the controls panel) hear each ``session.rejected`` / ``session.drift`` record as it is
    logged.
    """

    def __init__(self, port: CallPort, set_error: Callable[[str], None]) -> None:
        self._port = port
        self._set_error = set_error
        self._watchers: list[Watcher] = []
        self._call: int | None = None
        self._pending: list[_Update] = []
        self._seen_first = False
        self._resent = False
        self._resends = 0
        self._unsubscribe: Callable[[], None] | None = port.subscribe(self._on_record)

    def watch(self, fn: Watcher) -> Callable[[], None]:
        """Hear every ``session.rejected`` and ``session.drift`` record; returns the unwatch."""
        self._watchers.append(fn)

        def unwatch() -> None:
            if fn in self._watchers:
                self._watchers.remove(fn)

        return unwatch

    def close(self) -> None:
        """Stop listening to the call."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._watchers.clear()

    @property
    def pending(self) -> int:
        """Updates sent on this call that have no answer yet."""
        return len(self._pending)

    # -- records -------------------------------------------------------------------------

    def _on_record(self, direction: str, event: Mapping[str, Any], _t_ms: float, call: int) -> None:
        if call != self._call:  # a new call: its first update is the one that matters again
            self._call = call
            self._pending.clear()
            self._seen_first = self._resent = False
        etype = event.get("type")
        if direction == "client" and etype == "session.update":
            self._sent(event)
        elif direction == "server" and etype == "error":
            self._error(event)
        elif direction == "server" and etype == "session.updated":
            self._updated(event)

    def _sent(self, event: Mapping[str, Any]) -> None:
        session = event.get("session")
        if not isinstance(session, Mapping):
            return
        eid = event.get("event_id")
        eid = eid if isinstance(eid, str) and eid else None
        self._pending.append(
            _Update(
                event_id=eid,
                session=copy.deepcopy(dict(session)),
                first=not self._seen_first,
                resend=bool(eid and eid.startswith(RESEND_ID_PREFIX)),
            )
        )
        self._seen_first = True
        del self._pending[:-MAX_PENDING]

    def _answered(self, err: Mapping[str, Any]) -> _Update | None:
        """The update an error answers, or None when it is about something else."""
        eid = err.get("event_id")
        if isinstance(eid, str) and eid:
            for u in self._pending:
                if u.event_id == eid:
                    return u
            return None  # it names another client event
        param = err.get("param")
        path = param_path(param)
        if not self._pending:
            return None
        if path is None:  # no field named: only words that speak of the session tie it
            return self._pending[0] if "session" in str(err.get("message", "")).lower() else None
        carrying = [u for u in self._pending if _get(u.session, path) is not _MISSING]
        if carrying:
            return carrying[0]
        return self._pending[0] if str(param).startswith("session") else None

    def _error(self, event: Mapping[str, Any]) -> None:
        err = event.get("error")
        if not isinstance(err, Mapping):
            return
        update = self._answered(err)
        if update is None:
            return
        self._pending.remove(update)
        param = err.get("param") if isinstance(err.get("param"), str) else None
        path = param_path(param)
        message = str(err.get("message") or err.get("code") or "no reason given")
        value = _get(update.session, path) if path else _MISSING
        which = (
            "the call's first session.update"
            if update.first
            else "the resent session.update"
            if update.resend
            else "a session.update"
        )
        if update.event_id and not update.resend:
            which += f" ({update.event_id})"
        field = param or "an unnamed field"
        words = f"The service refused {which}: {field}: {message}"
        if value is not _MISSING:
            words += f" (sent {_short(value)!r})"
        record: dict[str, Any] = {
            "type": "session.rejected",
            "event_id": update.event_id,
            "param": param,
            "message": message,
            "value": None if value is _MISSING else _short(value),
            "first": update.first,
            "resent": False,
        }
        rest = without(update.session, path) if path and value is not _MISSING else None
        resend = (
            update.first
            and not self._resent
            and rest is not None
            and any(k != "type" for k in rest)
        )
        if resend:
            words += (
                ". None of that update was applied, so the rest of it was sent again without "
                f"{field}; the call uses the service's default for that field"
            )
            record["resent"] = True
        elif update.first:
            words += ". None of that update was applied: the call runs on the service's defaults"
        else:
            words += ". None of that update was applied"
        self._port.log_local(record)
        if resend and rest is not None:
            self._resent = True
            self._resends += 1
            self._port.send_events(
                [
                    {
                        "type": "session.update",
                        "event_id": f"{RESEND_ID_PREFIX}{self._resends}",
                        "session": rest,
                    }
                ]
            )
        self._set_error(words)
        self._tell(record)

    def _updated(self, event: Mapping[str, Any]) -> None:
        if not self._pending:
            return
        update = self._pending.pop(0)
        reported = event.get("session")
        if not isinstance(reported, Mapping):
            return
        differ, unreported = compare(update.session, reported)
        if not differ and not unreported:
            return
        record = {
            "type": "session.drift",
            "event_id": update.event_id,
            "first": update.first,
            "fields": differ,
            "unreported": unreported,
        }
        self._port.log_local(record)
        self._tell(record)

    def _tell(self, record: dict[str, Any]) -> None:
        for fn in list(self._watchers):
            fn(dict(record))
