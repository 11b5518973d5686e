"""EventLog: every event of a session, both directions, as compact columns.

Events are kept as their compact UTF-8 JSON in one growing buffer (plus an offset each), with
the per-record scalars in typed arrays, so the log's memory stays close to the events' own
size. ``to_pandas`` decodes the whole buffer with one ``json.loads`` call and derives the id,
text and error columns in a single pass.
"""

from __future__ import annotations

import json
import math
import os
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ._bridge import DIRECTIONS
from ._extras import missing

if TYPE_CHECKING:
    import pandas as pd

    from ._recording import Recording

_DIR_CODE = {d: i for i, d in enumerate(DIRECTIONS)}
# Which path a record came by, where the call had two (the page's data channel and the kernel's
# sideband): "" for a record with one possible path, else page / sideband / both (one record
# for an event both paths delivered, matched by its event_id).
VIA = ("", "page", "sideband", "both")
_VIA_CODE = {v: i for i, v in enumerate(VIA)}
# A row: (direction, event, t_ms, t_kernel_ms, call_number[, via, t_sideband_ms]).
Row = tuple[Any, ...]
_MAX_MS = 9.2e12  # pandas datetime64[ns] ends in 2262 (9.22e12 ms): later times would break frames
ID_FIELDS = ("event_id", "response_id", "item_id", "call_id")
# Where the text an event carries lives, most specific first.
_TEXT_KEYS = ("delta", "transcript", "text", "arguments")
COLUMNS = (
    "seq",
    "call_number",
    "direction",
    "type",
    "time",
    "kernel_time",
    "t_ms",
    "t_kernel_ms",
    "t_sideband_ms",
    "via",
    *ID_FIELDS,
    "text",
    "error_code",
    "error_message",
    "event",
)


def _finite(value: Any) -> float:
    """A time that a frame can hold: anything else (NaN, 1e300, not a number) becomes NaN."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v if -_MAX_MS <= v <= _MAX_MS else math.nan


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _ids(event: Mapping[str, Any]) -> tuple[str | None, str | None, str | None, str | None]:
    """The event's ``event_id``, ``response_id``, ``item_id`` and ``call_id``.

    Top level first, then inside the object the event is about (``response.created`` has its id
    in ``response``, item events in ``item``).
    """
    response, item = event.get("response"), event.get("item")
    response = response if isinstance(response, Mapping) else {}
    item = item if isinstance(item, Mapping) else {}
    return (
        _str(event.get("event_id")),
        _str(event.get("response_id")) or _str(response.get("id")),
        _str(event.get("item_id")) or _str(item.get("id")),
        _str(event.get("call_id")) or _str(item.get("call_id")),
    )


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


@dataclass
class _Columns:
    call: list[int]
    direction: list[str]
    type: list[str]
    t: list[float]
    tk: list[float]
    tsb: list[float]
    via: list[str | None]
    json: list[str]
    buf: bytes
    events: list[dict[str, Any]] = field(default_factory=list)
    derived: dict[str, list[str | None]] = field(default_factory=dict)


class EventLog:
    """The ordered record of a session: client, server and local (browser-measured) events.

    A widget or session keeps one as ``w.events``; ``EventLog.read_jsonl`` loads a saved one.
    Each record is ``{seq, call_number, direction, type, t_ms, t_kernel_ms, event}``:
    ``call_number`` counts the widget's calls (1, 2, ...; not a function call's ``call_id``),
    ``t_ms`` is the browser's epoch-ms clock when the event was sent or received,
    ``t_kernel_ms`` the kernel's when the batch holding it arrived. A call with a sideband adds
    ``via`` (page / sideband / both: which path delivered it) and ``t_sideband_ms`` (the
    kernel's clock when the sideband delivered or sent it); a record has those keys only when
    they are set. An event only the sideband saw has the kernel's clock in ``t_ms`` too.

    The log is a sequence: ``len(log)``, ``log[i]`` (negative indices count from the end) and
    ``for rec in log`` give the records as dicts. Events are kept as compact JSON, so its memory
    stays close to the events' own size, and it may be read from a cell while a call appends.

    Args:
        path: A JSONL file to append every record to as it is kept (flushed per batch, so a
            kernel crash loses nothing that reached the kernel); ``None`` keeps the log in
            memory only.
        scrub: A function every event's JSON text passes through before it is kept or written
            (the widget's secret scrubber), so no export, file or frame can hold a secret.

    Example:
        >>> log = w.events                    # a widget's or session's log
        >>> len(log), log[-1]["type"]
        >>> df = log.to_pandas()              # one row per event
        >>> log.turns()[["response_id", "to_first_output_ms"]]
        >>> log.to_jsonl("session.jsonl")
        >>> EventLog.read_jsonl("session.jsonl")
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        scrub: Callable[[str], str] | None = None,
    ) -> None:
        self._call = array("i")
        self._dir = array("b")
        self._t = array("d")
        self._tk = array("d")
        self._tsb = array("d")
        self._via = array("b")
        self._type: list[str] = []
        # event i is self._buf[self._off[i] : self._off[i + 1] - 1]; each is followed by ","
        self._buf = bytearray()
        self._off = array("q", [0])
        self._types: dict[str, str] = {}  # interned type strings
        self.path = Path(path) if path is not None else None
        self._file: IO[str] | None = None
        # Appends may come from a worker thread while a cell reads: every multi-column
        # update and every snapshot happens under this lock, so columns never disagree.
        self._lock = threading.RLock()
        # Every event's JSON passes through this before it is kept or written (the widget's
        # secret scrubber), so no export, file or frame can hold a secret.
        self._scrub = scrub
        # The calls' recordings that belong with this log (by call number), so that
        # plot_timeline() can draw them: the widget's recordings, or read_recordings(log=).
        self.recordings: Mapping[int, Recording] = {}
        # Who hears each record as it is kept (tracing): (direction, event, t_ms, call_number)
        self._listeners: list[Callable[[str, Mapping[str, Any], float, int], None]] = []

    # -- writing -----------------------------------------------------------------------------

    def _append(
        self,
        direction: str,
        event: Mapping[str, Any],
        *,
        t_ms: float,
        t_kernel_ms: float,
        call_number: int = 0,
        via: str = "",
        t_sideband_ms: float | None = None,
    ) -> int:
        """Add one record; returns its ``seq``."""
        return self._extend(
            [(direction, event, t_ms, t_kernel_ms, call_number, via, t_sideband_ms)]
        )

    def _extend(self, rows: Iterable[Row]) -> int:
        """Add records in order; returns the ``seq`` of the first.

        Each row is ``(direction, event, t_ms, t_kernel_ms, call_number)``, optionally followed
        by ``via`` and ``t_sideband_ms``; with a ``path`` they are appended to the file and
        flushed. The rows get consecutive numbers.
        """
        with self._lock:
            first = len(self)
            self._add_rows(rows)
            return first

    def _amend(
        self,
        seq: int,
        *,
        t_ms: float | None = None,
        t_sideband_ms: float | None = None,
        via: str | None = None,
    ) -> None:
        """Complete a record with what a second path said about the same event.

        That is the page's clock (``t_ms``), the sideband's receive time, which paths delivered
        it. With a ``path`` the file gets an amendment line, which ``read_jsonl`` applies.
        """
        if via is not None and via not in _VIA_CODE:
            raise ValueError(f"via must be one of {VIA}; got {via!r}")
        with self._lock:
            if not 0 <= seq < len(self):
                raise IndexError(f"no record {seq} in a log of {len(self)}")
            change: dict[str, Any] = {"amend": seq}
            if t_ms is not None:
                self._t[seq] = _finite(t_ms)
                change["t_ms"] = self._t[seq]
            if t_sideband_ms is not None:
                self._tsb[seq] = _finite(t_sideband_ms)
                change["t_sideband_ms"] = self._tsb[seq]
            if via is not None:
                self._via[seq] = _VIA_CODE[via]
                change["via"] = via
            if self.path is not None and len(change) > 1:
                self._write([json.dumps(change, separators=(",", ":")) + "\n"])

    def _add_rows(self, rows: Iterable[Row]) -> None:
        lines: list[str] = []
        for row in rows:
            direction, event, t_ms, t_kernel_ms, call = row[:5]
            via = row[5] if len(row) > 5 else ""
            t_sb = row[6] if len(row) > 6 and row[6] is not None else math.nan
            if via not in _VIA_CODE:
                raise ValueError(f"via must be one of {VIA}; got {via!r}")
            if direction not in _DIR_CODE:
                raise ValueError(f"direction must be one of {DIRECTIONS}; got {direction!r}")
            if not isinstance(event, Mapping):
                event = {"type": "local.invalid", "value": repr(event)}
            raw_type = event.get("type")
            etype = raw_type if isinstance(raw_type, str) else "<untyped>"
            etype = self._types.setdefault(etype, etype)
            text = json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=repr)
            if self._scrub is not None:
                text = self._scrub(text)
            t_ms, t_kernel_ms, t_sb = _finite(t_ms), _finite(t_kernel_ms), _finite(t_sb)
            seq = len(self)
            self._call.append(int(call))
            self._dir.append(_DIR_CODE[direction])
            self._t.append(float(t_ms))
            self._tk.append(float(t_kernel_ms))
            self._tsb.append(float(t_sb))
            self._via.append(_VIA_CODE[via])
            self._type.append(etype)
            self._buf += text.encode()
            self._buf += b","
            self._off.append(len(self._buf))
            for listener in self._listeners:  # in seq order: called under the log's lock
                listener(direction, event, t_ms, int(call))
            if self.path is not None:
                lines.append(
                    self._line(seq, direction, etype, t_ms, t_kernel_ms, call, text, via, t_sb)
                )
        if lines:
            self._write(lines)

    @staticmethod
    def _line(
        seq: int,
        direction: str,
        etype: str,
        t_ms: float,
        t_k: float,
        call: int,
        event_json: str,
        via: str = "",
        t_sb: float = math.nan,
    ) -> str:
        fields: dict[str, Any] = {
            "seq": seq,
            "call_number": call,
            "direction": direction,
            "type": etype,
            "t_ms": t_ms,
            "t_kernel_ms": t_k,
        }
        if not math.isnan(t_sb):
            fields["t_sideband_ms"] = t_sb
        if via:
            fields["via"] = via
        head = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
        return head[:-1] + ',"event":' + event_json + "}\n"

    def _write(self, lines: list[str]) -> None:
        assert self.path is not None
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        self._file.write("".join(lines))
        # Flushed per batch: a kernel crash loses nothing that reached the kernel.
        self._file.flush()

    def listen(
        self, listener: Callable[[str, Mapping[str, Any], float, int], None]
    ) -> Callable[[], None]:
        """Hear every record from now on, as it is kept.

        The listener is called as ``listener(direction, event, t_ms, call_number)``, in ``seq``
        order, under the log's lock (so it should be quick and must not wait on the log). It
        gets the event as given, before the scrubber: a listener that keeps text scrubs it.
        Tracing uses this to turn a live session into spans.

        Args:
            listener: Called once for each record kept from now on.

        Returns:
            A function of no arguments that stops listening (calling it twice is harmless).

        Example:
            >>> seen = []
            >>> stop = w.events.listen(lambda d, ev, t_ms, call: seen.append(ev["type"]))
            >>> # ... talk ...
            >>> stop()
        """
        with self._lock:
            self._listeners.append(listener)

        def stop() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return stop

    def close(self) -> None:
        """Close the log's file, if it has one; the records stay readable in memory.

        A later record reopens the file and appends to it. The widget and the session close
        their log when they close.

        Example:
            >>> log = EventLog("session.jsonl")
            >>> log.close()
        """
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- reading -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._off) - 1

    def _event_json(self, i: int) -> str:
        return self._buf[self._off[i] : self._off[i + 1] - 1].decode()

    def _columns(self, *, with_json: bool = False) -> _Columns:
        """A consistent copy of every column, taken under the lock.

        Events are decoded with one json.loads call over the whole buffer, the derived columns
        in one pass over them.
        """
        with self._lock:
            n = len(self)
            snap = _Columns(
                call=list(self._call),
                direction=[DIRECTIONS[c] for c in self._dir],
                type=list(self._type),
                t=list(self._t),
                tk=list(self._tk),
                tsb=list(self._tsb),
                via=[VIA[v] or None for v in self._via],
                json=[self._event_json(i) for i in range(n)] if with_json else [],
                buf=bytes(self._buf),
            )
        snap.events = json.loads(b"[" + snap.buf[:-1] + b"]") if n else []
        snap.derived = self._derived(snap.events)
        return snap

    def _derived(self, events: list[dict[str, Any]]) -> dict[str, list[str | None]]:
        """The id, text and error columns, from the decoded events in one pass."""
        cols: dict[str, list[str | None]] = {
            k: [] for k in (*ID_FIELDS, "text", "error_code", "error_message")
        }
        ids = [cols[k] for k in ID_FIELDS]
        text, code, msg = cols["text"], cols["error_code"], cols["error_message"]
        for ev in events:
            for col, value in zip(ids, _ids(ev), strict=True):
                col.append(value)
            text.append(_text(ev))
            c, m = _error(ev) if ("error" in ev or "errorType" in ev) else (None, None)
            code.append(c)
            msg.append(m)
        return cols

    def __repr__(self) -> str:
        counts = {d: 0 for d in DIRECTIONS}
        with self._lock:
            n = len(self)
            for code in self._dir:
                counts[DIRECTIONS[code]] += 1
        parts = ", ".join(f"{v} {k}" for k, v in counts.items())
        return f"<EventLog: {n} events ({parts})>"

    def record(self, i: int) -> dict[str, Any]:
        """One record as a dict, by its position (``seq``); negative counts from the end.

        The dict has ``seq``, ``call_number``, ``direction``, ``type``, ``t_ms``,
        ``t_kernel_ms`` and ``event`` (a fresh copy of the event), plus ``t_sideband_ms`` and
        ``via`` when they are set. ``log[i]`` is the same, with a clear error when ``i`` is out
        of range.

        Args:
            i: The record's position: 0 is the first, -1 the last.

        Returns:
            The record.

        Example:
            >>> last = w.events.record(-1)
            >>> last["type"], last["t_ms"], last["event"]
        """
        with self._lock:
            return self._record(i)

    def _record(self, i: int) -> dict[str, Any]:
        if i < 0:
            i += len(self)
        rec: dict[str, Any] = {
            "seq": i,
            "call_number": self._call[i],
            "direction": DIRECTIONS[self._dir[i]],
            "type": self._type[i],
            "t_ms": self._t[i],
            "t_kernel_ms": self._tk[i],
        }
        if not math.isnan(self._tsb[i]):
            rec["t_sideband_ms"] = self._tsb[i]
        if self._via[i]:
            rec["via"] = VIA[self._via[i]]
        rec["event"] = json.loads(self._event_json(i))
        return rec

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"event index {i} out of range for a log of {len(self)}")
        return self.record(i)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self.record(i)

    def of_type(self, *types: str, direction: str | None = None) -> list[dict[str, Any]]:
        """Records whose type is one of ``types`` (and of ``direction`` if given), in order.

        Args:
            *types: Event types to keep, such as ``"response.done"`` or ``"audio.audible"``.
            direction: ``"client"``, ``"server"`` or ``"local"`` to keep only that direction;
                ``None`` keeps all.

        Returns:
            The matching records, as ``log[i]`` gives them, in ``seq`` order.

        Example:
            >>> done = w.events.of_type("response.done", direction="server")
            >>> [r["event"]["response"]["status"] for r in done]
            ['completed', 'completed']
        """
        want = set(types)
        code = _DIR_CODE[direction] if direction is not None else None
        with self._lock:
            return [
                self._record(i)
                for i, et in enumerate(self._type)
                if et in want and (code is None or self._dir[i] == code)
            ]

    @property
    def call_numbers(self) -> list[int]:
        """The call numbers that have records in the log, ascending (``[1, 2]`` after two calls)."""
        with self._lock:
            return sorted(set(self._call))

    # -- export ------------------------------------------------------------------------------

    def to_jsonl(self, path: str | os.PathLike[str]) -> Path:
        """Write every record as one JSON line; ``EventLog.read_jsonl`` reads it back exactly.

        The file is overwritten. Each line holds the record's fields and its ``event``, as
        ``RealtimeWidget(log_path=...)`` writes them while a call runs.

        Args:
            path: The file to write.

        Returns:
            The path written.

        Example:
            >>> w.events.to_jsonl("session.jsonl")
            PosixPath('session.jsonl')
        """
        out = Path(path)
        with self._lock, open(out, "w", encoding="utf-8") as fh:
            for i in range(len(self)):
                fh.write(
                    self._line(
                        i,
                        DIRECTIONS[self._dir[i]],
                        self._type[i],
                        self._t[i],
                        self._tk[i],
                        self._call[i],
                        self._event_json(i),
                        VIA[self._via[i]],
                        self._tsb[i],
                    )
                )
        return out

    @classmethod
    def read_jsonl(cls, path: str | os.PathLike[str]) -> EventLog:
        """Load a log written by ``to_jsonl`` or by ``RealtimeWidget(log_path=...)``.

        A last line cut off by a crash is skipped; any other bad line raises with its number.
        Amendment lines (a second path's word on an earlier record) are applied.

        Args:
            path: The JSONL file.

        Returns:
            A new in-memory log with the file's records, numbered as they were.

        Raises:
            ValueError: When a line other than a cut-off last one is not valid JSON.

        Example:
            >>> log = EventLog.read_jsonl("session.jsonl")
            >>> log.turns()
        """
        log = cls()
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
        rows: list[Row] = []
        amends: list[dict[str, Any]] = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                if n == len(lines) and not line.endswith("\n"):
                    break  # a write cut short by a crash
                raise ValueError(f"{path}: line {n} is not valid JSON") from None
            if "amend" in rec:  # a second path's word on an earlier record (EventLog.amend)
                amends.append(rec)
                continue
            rows.append(
                (
                    rec["direction"],
                    rec["event"],
                    rec["t_ms"],
                    rec["t_kernel_ms"],
                    rec.get("call_number", rec.get("call", 0)),  # "call" before 0.2
                    rec.get("via", ""),
                    rec.get("t_sideband_ms"),
                )
            )
        log._extend(rows)
        for rec in amends:
            seq = rec["amend"]
            if isinstance(seq, int) and 0 <= seq < len(log):
                log._amend(
                    seq,
                    t_ms=rec.get("t_ms"),
                    t_sideband_ms=rec.get("t_sideband_ms"),
                    via=rec.get("via"),
                )
        return log

    def to_pandas(self) -> pd.DataFrame:
        """One row per event, with typed columns; ``event`` holds the dict.

        The columns, the same for any log: ``seq``, ``call_number``, ``direction`` and
        ``type`` (categorical), ``time`` and ``kernel_time`` (UTC datetimes), ``t_ms``,
        ``t_kernel_ms``, ``t_sideband_ms``, ``via`` (``page`` / ``sideband`` / ``both``),
        ``event_id``, ``response_id``, ``item_id``, ``call_id``, ``text`` (the delta,
        transcript or text the event carries), ``error_code``, ``error_message`` and ``event``.
        A time a frame cannot hold is NaN (NaT).

        Returns:
            A pandas DataFrame.

        Raises:
            ImportError: When pandas is not installed.

        Example:
            >>> df = w.events.to_pandas()
            >>> df[df.direction == "server"].type.value_counts()
        """
        try:
            import pandas  # noqa: F401 - checked here, used in _frame
        except ImportError:
            raise missing("pandas", "pandas", "EventLog.to_pandas()") from None
        return self._frame(self._columns())

    def _frame(self, c: _Columns) -> pd.DataFrame:
        import pandas as pd

        t = pd.Series(c.t, dtype="float64")
        tk = pd.Series(c.tk, dtype="float64")
        data: dict[str, Any] = {
            "seq": pd.Series(range(len(c.t)), dtype="int64"),
            "call_number": pd.Series(c.call, dtype="int32"),
            "direction": pd.Categorical(c.direction, categories=list(DIRECTIONS)),
            "type": pd.Series(c.type, dtype="category"),
            "time": pd.to_datetime(t, unit="ms", utc=True),
            "kernel_time": pd.to_datetime(tk, unit="ms", utc=True),
            "t_ms": t,
            "t_kernel_ms": tk,
            "t_sideband_ms": pd.Series(c.tsb, dtype="float64"),
            "via": pd.Categorical(c.via, categories=list(VIA[1:])),
        }
        for key, values in c.derived.items():
            data[key] = pd.Series(values, dtype="string")
        data["event"] = pd.Series(c.events, dtype="object")
        return pd.DataFrame(data, columns=list(COLUMNS))

    def to_polars(self) -> Any:
        """The same table as ``to_pandas()``, as a polars DataFrame (``event`` as JSON text).

        ``direction`` is an Enum, ``type`` Categorical, the times microsecond UTC datetimes (an
        unknown time is null).

        Returns:
            A polars DataFrame.

        Raises:
            ImportError: When polars is not installed.

        Example:
            >>> import polars as pl
            >>> w.events.to_polars().filter(pl.col("type") == "response.done")
        """
        try:
            import polars as pl
        except ImportError:
            raise missing("polars", "polars", "EventLog.to_polars()") from None
        c = self._columns(with_json=True)
        utc_us = pl.Datetime("us", "UTC")
        return pl.DataFrame(
            {
                "seq": pl.Series(range(len(c.t)), dtype=pl.Int64),
                "call_number": pl.Series(c.call, dtype=pl.Int32),
                "direction": pl.Series(c.direction, dtype=pl.Enum(list(DIRECTIONS))),
                "type": pl.Series(c.type, dtype=pl.Categorical),
                # an unknown time (NaN) is a null, as NaT is in pandas
                "time": (pl.Series(c.t).fill_nan(None) * 1000).cast(pl.Int64).cast(utc_us),
                "kernel_time": (pl.Series(c.tk).fill_nan(None) * 1000).cast(pl.Int64).cast(utc_us),
                "t_ms": pl.Series(c.t, dtype=pl.Float64),
                "t_kernel_ms": pl.Series(c.tk, dtype=pl.Float64),
                "t_sideband_ms": pl.Series(c.tsb, dtype=pl.Float64),
                "via": pl.Series(c.via, dtype=pl.String),
                **{k: pl.Series(v, dtype=pl.String) for k, v in c.derived.items()},
                "event": pl.Series(c.json, dtype=pl.String),
            }
        )

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write the ``to_pandas()`` table to Parquet, with ``event`` stored as JSON text.

        Args:
            path: The file to write (overwritten).

        Returns:
            The path written.

        Raises:
            ImportError: When pyarrow (the ``parquet`` extra) is not installed.

        Example:
            >>> w.events.to_parquet("session.parquet")
            >>> pd.read_parquet("session.parquet")
        """
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise missing("parquet", "pyarrow", "EventLog.to_parquet()") from None
        import pandas as pd

        c = self._columns(with_json=True)
        df = self._frame(c)
        df["event"] = pd.Series(c.json, index=df.index, dtype="string")
        out = Path(path)
        df.to_parquet(out, index=False)
        return out

    def turns(self) -> pd.DataFrame:
        """One row per response, with the latencies the user felt.

        Each row has the response's ``call_number``, ``response_id`` and ``trigger`` (speech,
        text or tool output); the moments of each step as UTC datetimes (``speech_started``,
        ``speech_stopped``, ``turn_start``, ``created``, ``first_delta``, ``audio_started``,
        ``first_audible``, ``audio_stopped``, ``done``); ``status`` and ``reason``; token usage
        (``input_tokens``, ``output_tokens``, ``total_tokens``); the latencies from the end of
        the user's turn in ms (``to_created_ms``, ``to_first_delta_ms``, ``to_first_audio_ms``,
        where audio is the browser's first audible sample when measured, and
        ``to_first_output_ms``: first heard, else first read); and ``tool_calls``, ``tool_ms``,
        ``tool_hop_ms`` for the tools it called. A malformed event never breaks it: a field of
        the wrong shape counts as absent.

        Returns:
            A pandas DataFrame, one row per response in order.

        Raises:
            ImportError: When pandas is not installed.

        Example:
            >>> t = w.events.turns()
            >>> t[["trigger", "status", "to_first_output_ms"]].describe()
        """
        try:
            import pandas as pd
        except ImportError:
            raise missing("pandas", "pandas", "EventLog.turns()") from None
        from ._turns import TIME_COLUMNS, TURN_COLUMNS, collect_turns

        df = pd.DataFrame([t.row() for t in collect_turns(self)], columns=list(TURN_COLUMNS))
        for col in TIME_COLUMNS:
            df[col] = pd.to_datetime(df[col].astype("float64"), unit="ms", utc=True)
        for col in (
            "to_created_ms",
            "to_first_delta_ms",
            "to_first_audio_ms",
            "to_first_output_ms",
        ):
            df[col] = df[col].astype("float64")
        for col in ("tool_ms", "tool_hop_ms"):
            df[col] = df[col].astype("float64")
        df["tool_calls"] = df["tool_calls"].astype("int64")
        for col in ("input_tokens", "output_tokens", "total_tokens"):
            df[col] = df[col].astype("Int64")
        for col in ("response_id", "trigger", "status", "reason"):
            df[col] = df[col].astype("string")
        df["call_number"] = df["call_number"].astype("int32")
        return df

    def latency_summary(self) -> dict[str, Any]:
        """The latency figure the widget shows live, computed by the same code.

        It summarizes each measured turn's ``to_first_output_ms`` (first heard, else first
        read): the latest one, the median of the last 200, and how many the median covers.

        Returns:
            ``{"last_ms": ..., "median_ms": ..., "count": ...}``; both times are ``None`` and
            the count 0 while no turn is measured.

        Example:
            >>> w.events.latency_summary()
            {'last_ms': 612.0, 'median_ms': 655.5, 'count': 4}
        """
        from ._turns import latency_summary

        return latency_summary(self)

    def to_otel(self, tracer_provider: Any = None, *, capture_content: bool | None = None) -> int:
        """Export this log as OpenTelemetry spans, with the records' own times.

        The spans are a call, its user turns, responses, tools and runs, on the GenAI semantic
        conventions (see docs/tracing.md). Works on a live log or one read from a file. Needs
        the ``otel`` extra.

        Args:
            tracer_provider: The OpenTelemetry ``TracerProvider`` to export to; ``None`` uses the
                global one.
            capture_content: Whether spans carry message text and transcripts. ``None`` follows
                the GenAI content switch,
                ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``; off by default.

        Returns:
            How many spans were made.

        Example:
            >>> from opentelemetry.sdk.trace import TracerProvider
            >>> provider = TracerProvider()  # with your exporter's span processor
            >>> EventLog.read_jsonl("session.jsonl").to_otel(provider)
            14
        """
        from ._otel import export_log

        return export_log(self, tracer_provider, capture_content=capture_content)

    def plot_timeline(self, *, label_last: int = 5, ax: Any = None) -> Any:
        """Draw the session as lanes against time, with the turns' latencies below.

        Lanes show user speech, assistant audio, responses (by status) and errors, against
        seconds since the first record; the latencies of the last ``label_last`` turns are
        labelled. When the log has recordings (a widget's with ``record=True``, or
        ``read_recordings(..., log=log)``), their two tracks are drawn above the lanes. Needs
        matplotlib (the ``plot`` extra).

        Args:
            label_last: How many of the latest turns get their latency written on the figure.
            ax: A matplotlib Axes to draw the lanes into; ``None`` makes a new figure (with the
                latency panel and the recordings).

        Returns:
            The matplotlib Figure.

        Example:
            >>> fig = w.events.plot_timeline(label_last=3)
            >>> fig.savefig("timeline.png")
        """
        from ._plot import plot_timeline

        return plot_timeline(self, label_last=label_last, ax=ax)
