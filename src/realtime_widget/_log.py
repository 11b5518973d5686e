"""EventLog: every event of a session, both directions, as compact columns.

Events are kept as their compact JSON text plus a few typed columns extracted once on arrival
(ids, text, error fields), so memory stays close to the events' own size and ``to_pandas`` is
a handful of column copies and one bulk JSON decode instead of 100k dict walks.
"""

from __future__ import annotations

import json
import os
from array import array
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ._bridge import DIRECTIONS

if TYPE_CHECKING:
    import pandas as pd

_DIR_CODE = {d: i for i, d in enumerate(DIRECTIONS)}
ID_FIELDS = ("event_id", "response_id", "item_id", "call_id")
# Where the text an event carries lives, most specific first.
_TEXT_KEYS = ("delta", "transcript", "text", "arguments")
COLUMNS = (
    "seq",
    "call",
    "direction",
    "type",
    "time",
    "kernel_time",
    "t_ms",
    "t_kernel_ms",
    *ID_FIELDS,
    "text",
    "error_code",
    "error_message",
    "event",
)


def _missing(extra: str, what: str) -> ImportError:
    return ImportError(
        f"{what} needs the optional dependency '{extra}': "
        f'pip install "realtime-widget[{extra}]"  (or: pip install {extra})'
    )


def _nested_id(event: Mapping[str, Any], key: str) -> str | None:
    value = event.get(key)
    if isinstance(value, str):
        return value
    # response.created/done carry the id inside "response"; item events inside "item".
    holder = {"response_id": "response", "item_id": "item", "call_id": "item"}.get(key)
    if holder:
        inner = event.get(holder)
        if isinstance(inner, Mapping):
            inner_key = "id" if key != "call_id" else "call_id"
            found = inner.get(inner_key)
            if isinstance(found, str):
                return found
    return None


def _text(event: Mapping[str, Any]) -> str | None:
    for key in _TEXT_KEYS:
        value = event.get(key)
        if isinstance(value, str):
            return value
    item = event.get("item")
    if isinstance(item, Mapping):
        for part in item.get("content") or ():
            if isinstance(part, Mapping):
                for key in ("text", "transcript"):
                    if isinstance(part.get(key), str):
                        return str(part[key])
    return None


def _error(event: Mapping[str, Any]) -> tuple[str | None, str | None]:
    err = event.get("error")
    if isinstance(err, Mapping):
        code = err.get("code") or err.get("type")
        msg = err.get("message")
        return (str(code) if code is not None else None, str(msg) if msg is not None else None)
    if isinstance(err, str):
        return None, err
    if "errorType" in event:  # Inworld's non-standard error shape
        return str(event["errorType"]), str(event.get("message") or event.get("errorMessage") or "")
    return None, None


class EventLog:
    """The ordered record of a session: client, server and local (browser-measured) events.

    Each record is ``{seq, call, direction, type, t_ms, t_kernel_ms, event}``: ``t_ms`` is the
    browser's epoch-ms clock when the event was sent or received, ``t_kernel_ms`` the kernel's
    when the batch holding it arrived.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._call = array("i")
        self._dir = array("b")
        self._t = array("d")
        self._tk = array("d")
        self._type: list[str] = []
        self._json: list[str] = []
        self._ids: dict[str, list[str | None]] = {k: [] for k in ID_FIELDS}
        self._text: list[str | None] = []
        self._err_code: list[str | None] = []
        self._err_msg: list[str | None] = []
        self._types: dict[str, str] = {}  # interned type strings
        self.path = Path(path) if path is not None else None
        self._file: IO[str] | None = None

    # -- writing -----------------------------------------------------------------------------

    def append(
        self,
        direction: str,
        event: Mapping[str, Any],
        *,
        t_ms: float,
        t_kernel_ms: float,
        call: int = 0,
    ) -> None:
        self.extend([(direction, event, t_ms, t_kernel_ms, call)])

    def extend(self, rows: Iterable[tuple[str, Mapping[str, Any], float, float, int]]) -> None:
        """Add records in order; with a ``path`` they are appended to the file and flushed."""
        lines: list[str] = []
        for direction, event, t_ms, t_kernel_ms, call in rows:
            if direction not in _DIR_CODE:
                raise ValueError(f"direction must be one of {DIRECTIONS}; got {direction!r}")
            if not isinstance(event, Mapping):
                event = {"type": "local.invalid", "value": repr(event)}
            raw_type = event.get("type")
            etype = raw_type if isinstance(raw_type, str) else "<untyped>"
            etype = self._types.setdefault(etype, etype)
            text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
            seq = len(self._json)
            self._call.append(int(call))
            self._dir.append(_DIR_CODE[direction])
            self._t.append(float(t_ms))
            self._tk.append(float(t_kernel_ms))
            self._type.append(etype)
            self._json.append(text)
            for key in ID_FIELDS:
                self._ids[key].append(_nested_id(event, key))
            self._text.append(_text(event))
            code, msg = _error(event)
            self._err_code.append(code)
            self._err_msg.append(msg)
            if self.path is not None:
                lines.append(self._line(seq, direction, etype, t_ms, t_kernel_ms, call, text))
        if lines:
            self._write(lines)

    @staticmethod
    def _line(
        seq: int, direction: str, etype: str, t_ms: float, t_k: float, call: int, event_json: str
    ) -> str:
        head = json.dumps(
            {
                "seq": seq,
                "call": call,
                "direction": direction,
                "type": etype,
                "t_ms": t_ms,
                "t_kernel_ms": t_k,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return head[:-1] + ',"event":' + event_json + "}\n"

    def _write(self, lines: list[str]) -> None:
        assert self.path is not None
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        self._file.write("".join(lines))
        # Flushed per batch: a kernel crash loses nothing that reached the kernel.
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- reading -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._json)

    def __repr__(self) -> str:
        n = len(self)
        counts = {d: 0 for d in DIRECTIONS}
        for code in self._dir:
            counts[DIRECTIONS[code]] += 1
        parts = ", ".join(f"{v} {k}" for k, v in counts.items())
        return f"<EventLog: {n} events ({parts})>"

    def record(self, i: int) -> dict[str, Any]:
        if i < 0:
            i += len(self)
        return {
            "seq": i,
            "call": self._call[i],
            "direction": DIRECTIONS[self._dir[i]],
            "type": self._type[i],
            "t_ms": self._t[i],
            "t_kernel_ms": self._tk[i],
            "event": json.loads(self._json[i]),
        }

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"event index {i} out of range for a log of {len(self)}")
        return self.record(i)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self.record(i)

    def of_type(self, *types: str, direction: str | None = None) -> list[dict[str, Any]]:
        """Records whose type is one of ``types`` (and of ``direction`` if given), in order."""
        want = set(types)
        code = _DIR_CODE[direction] if direction is not None else None
        return [
            self.record(i)
            for i, et in enumerate(self._type)
            if et in want and (code is None or self._dir[i] == code)
        ]

    @property
    def calls(self) -> list[int]:
        return sorted(set(self._call))

    # -- export ------------------------------------------------------------------------------

    def to_jsonl(self, path: str | os.PathLike[str]) -> Path:
        """Write every record as one JSON line; ``EventLog.read_jsonl`` reads it back exactly."""
        out = Path(path)
        with open(out, "w", encoding="utf-8") as fh:
            for i in range(len(self)):
                fh.write(
                    self._line(
                        i,
                        DIRECTIONS[self._dir[i]],
                        self._type[i],
                        self._t[i],
                        self._tk[i],
                        self._call[i],
                        self._json[i],
                    )
                )
        return out

    @classmethod
    def read_jsonl(cls, path: str | os.PathLike[str]) -> EventLog:
        """Load a log written by ``to_jsonl`` or by ``RealtimeWidget(log_path=...)``.

        A last line cut off by a crash is skipped; any other bad line raises with its number.
        """
        log = cls()
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
        rows = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                if n == len(lines) and not line.endswith("\n"):
                    break  # a write cut short by a crash
                raise ValueError(f"{path}: line {n} is not valid JSON") from None
            rows.append(
                (
                    rec["direction"],
                    rec["event"],
                    rec["t_ms"],
                    rec["t_kernel_ms"],
                    rec.get("call", 0),
                )
            )
        log.extend(rows)
        return log

    def to_pandas(self) -> pd.DataFrame:
        """One row per event with typed columns (see ``COLUMNS``); ``event`` holds the dict."""
        try:
            import pandas as pd
        except ImportError:
            raise _missing("pandas", "EventLog.to_pandas()") from None
        n = len(self)
        events = json.loads("[" + ",".join(self._json) + "]") if n else []
        t = pd.Series(self._t, dtype="float64")
        tk = pd.Series(self._tk, dtype="float64")
        data: dict[str, Any] = {
            "seq": pd.Series(range(n), dtype="int64"),
            "call": pd.Series(self._call, dtype="int32"),
            "direction": pd.Categorical(
                [DIRECTIONS[c] for c in self._dir], categories=list(DIRECTIONS)
            ),
            "type": pd.Series(self._type, dtype="category"),
            "time": pd.to_datetime(t, unit="ms", utc=True),
            "kernel_time": pd.to_datetime(tk, unit="ms", utc=True),
            "t_ms": t,
            "t_kernel_ms": tk,
        }
        for key in ID_FIELDS:
            data[key] = pd.Series(self._ids[key], dtype="string")
        data["text"] = pd.Series(self._text, dtype="string")
        data["error_code"] = pd.Series(self._err_code, dtype="string")
        data["error_message"] = pd.Series(self._err_msg, dtype="string")
        data["event"] = pd.Series(events, dtype="object")
        return pd.DataFrame(data, columns=list(COLUMNS))
