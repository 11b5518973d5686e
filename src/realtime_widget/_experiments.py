"""Experiments: one script of turns, played across session variants and repeats, as data.

``w.run_script(script, variants={...}, repeat=3)`` plays every turn of a :class:`Script` in
each (variant, repeat) run and returns :class:`Runs`: one row per turn (``runs.turns``), per
variant statistics (``summary()``), a figure (``plot()``), the turn's recordings side by side
(``listen()``), a Parquet set (``to_parquet()`` / ``Runs.read_parquet()``) and assertions
(``expect()``) that work as well over a saved set as over a live one.

How a run goes (one ``_Runner`` task on the kernel's event loop):
- the variant's fields, on top of the session as it was when ``run_script`` started, go out as
  one ``session.update`` (``w.update_session``) and the run waits for ``session.updated``; a
  field named in ``fresh_call`` (or ``isolation="call"``) makes the run start a new call
  instead, with the fields in its first ``session.update``;
- with ``isolation="conversation"`` (the default) the items of the conversation so far are
  deleted first, so every run starts from the same empty conversation;
- each turn is sent with ``ask()`` and ends when every response it caused is done (a tool's
  output answered, too) and the agent's audio has stopped playing; a turn that fails or times
  out is a row with its error, and the run goes on;
- when the run ends its slice of the event log is copied out and folded into rows by the same
  code as ``turns()`` (``_turns.collect_turns``).

The task waits on handles with ``settled()`` (no host probe), so it also moves forward between
cells on hosts that deliver the page's messages only then: ``runs = w.run_script(...)`` in one
cell, ``runs.turns`` in a later one. ``await runs`` (or ``await w.run_script(...)``) waits for it
in the same cell where the host allows. Turns and repeats count from 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import html
import json
import math
import os
import threading
import time
import weakref
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ._awaiting import MidCellDeliveryError, Pending
from ._clips import ESPEAK_VOICE, ESPEAK_WPM, load_source, wav_info
from ._log import EventLog
from ._session import SESSION_TRAITS, SessionTraits
from ._turns import collect_turns, obj, text

if TYPE_CHECKING:
    import pandas as pd

    from ._recording import Recording
    from ._widget import RealtimeWidget

# Session fields whose change needs a new call rather than a session.update. None on the
# emulator (every field applies from the next response; VAD settings at once), and none on
# Inworld as its protocol is documented (partial updates of any field; a new model "applies
# from the next response"). OpenAI's service refuses a voice change once a session has spoken:
# pass ``fresh_call={"voice"}`` there.
FRESH_CALL_FIELDS: frozenset[str] = frozenset()
ISOLATIONS = ("conversation", "call", "none")
LATENCY_COLUMNS = ("to_created_ms", "to_first_delta_ms", "to_first_audio_ms", "to_first_output_ms")
# One row per turn; the Parquet files hold all but ``variant`` (it is the partition).
ROW_COLUMNS = (
    "variant",
    "repeat",
    "turn",
    "run",
    "seed",
    "call_number",
    "kind",
    "prompt",
    "trigger",
    "status",
    "reason",
    "error",
    "text",
    "transcript",
    "heard",
    "response_id",
    "responses",
    "tool_calls",
    "tools",
    "tool_ms",
    "tool_hop_ms",
    *LATENCY_COLUMNS,
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "audio_ms",
    "turn_ms",
    "started_ms",
    "ended_ms",
)
_FLOATS = (
    "tool_ms",
    "tool_hop_ms",
    *LATENCY_COLUMNS,
    "audio_ms",
    "turn_ms",
    "started_ms",
    "ended_ms",
)
_INTS = ("repeat", "turn", "run", "seed", "call_number", "responses", "tool_calls")
_TOKENS = ("input_tokens", "output_tokens", "total_tokens")
_STRINGS = (
    "variant",
    "kind",
    "prompt",
    "trigger",
    "status",
    "reason",
    "error",
    "text",
    "transcript",
    "heard",
    "response_id",
)
_MANIFEST = "_runs.json"
_FORMAT = {"format": "realtime-widget runs", "version": 1}
_TEXT_DELTAS = ("response.output_text.delta", "response.text.delta")
_TEXT_DONE = ("response.output_text.done", "response.text.done")
_SPOKEN_DELTAS = ("response.output_audio_transcript.delta", "response.audio_transcript.delta")
_SPOKEN_DONE = ("response.output_audio_transcript.done", "response.audio_transcript.done")
_ITEM_ADDED = ("conversation.item.added", "conversation.item.created")
_AUDIO_END = ("output_audio_buffer.stopped", "output_audio_buffer.cleared")


# The runs going on per widget (one at a time).
_ACTIVE: weakref.WeakKeyDictionary[Any, Runs] = weakref.WeakKeyDictionary()


def _now_ms() -> float:
    return time.time() * 1000.0


def _pandas(what: str) -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(f'{what} needs pandas: pip install "realtime-widget[pandas]"') from None
    return pd


# -- the script ----------------------------------------------------------------------------------


class Turn:
    """One turn of a :class:`Script`: typed text, or audio played into the call (loaded once,
    so every run plays the same samples)."""

    def __init__(
        self,
        kind: str,
        *,
        text: str | None = None,
        source: Any = None,
        sample_rate: int | None = None,
        voice: str = ESPEAK_VOICE,
        wpm: int = ESPEAK_WPM,
    ) -> None:
        if kind not in ("text", "audio"):
            raise ValueError(f"a turn is 'text' or 'audio'; got {kind!r}")
        if kind == "text" and (not isinstance(text, str) or not text.strip()):
            raise ValueError(f"a text turn needs a non-empty string; got {text!r}")
        self.kind = kind
        self.text = text
        self.audio: bytes | None = None
        self.source = ""
        if kind == "audio":
            data, _mime, name = load_source(
                source, text=text, sample_rate=sample_rate, voice=voice, wpm=wpm
            )
            if not data:
                raise ValueError("an audio turn needs some audio; this one is empty")
            self.audio, self.source = data, name

    @property
    def prompt(self) -> str:
        """What the turn says, as the table shows it."""
        if self.kind == "text":
            return self.text or ""
        return self.source if self.text is None else f"(spoken) {self.text}"

    @property
    def duration_ms(self) -> float | None:
        info = wav_info(self.audio) if self.audio else None
        return round(info[3] * 1000.0 / info[0], 1) if info and info[0] else None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "prompt": self.prompt, "audio_ms": self.duration_ms}

    def __repr__(self) -> str:
        return f"Script.{self.kind}({self.prompt[:60]!r})"


class Script:
    """The turns of a conversation, played in order: plain strings are typed turns,
    ``Script.audio(...)`` plays audio into the call, ``Script.text(...)`` types."""

    def __init__(self, turns: Iterable[str | Turn]) -> None:
        made: list[Turn] = []
        for i, turn in enumerate(turns, 1):
            if isinstance(turn, str):
                turn = Turn("text", text=turn)
            if not isinstance(turn, Turn):
                raise TypeError(
                    f"turn {i}: a script holds strings, Script.text(...) or Script.audio(...); "
                    f"got {type(turn).__name__}"
                )
            made.append(turn)
        if not made:
            raise ValueError("a script needs at least one turn")
        self.turns: tuple[Turn, ...] = tuple(made)

    @staticmethod
    def text(text: str) -> Turn:
        """A typed turn (``conversation.item.create`` + ``response.create``)."""
        return Turn("text", text=text)

    @staticmethod
    def audio(
        source: Any = None,
        *,
        text: str | None = None,
        sample_rate: int | None = None,
        voice: str = ESPEAK_VOICE,
        wpm: int = ESPEAK_WPM,
    ) -> Turn:
        """A spoken turn, as ``say()`` plays it: a path, WAV/other audio bytes,
        ``(numpy array, sample_rate)``, or ``text=`` spoken by espeak-ng (once, here)."""
        return Turn(
            "audio", text=text, source=source, sample_rate=sample_rate, voice=voice, wpm=wpm
        )

    def __len__(self) -> int:
        return len(self.turns)

    def __iter__(self) -> Iterator[Turn]:
        return iter(self.turns)

    def __getitem__(self, i: int) -> Turn:
        return self.turns[i]

    @property
    def fingerprint(self) -> str:
        """A digest of the turns (their kinds, texts and audio bytes)."""
        h = hashlib.sha1(usedforsecurity=False)
        for turn in self.turns:
            h.update(turn.kind.encode())
            h.update((turn.text or "").encode())
            h.update(turn.audio or b"")
            h.update(b"\x00")
        return h.hexdigest()[:12]

    def describe(self) -> list[dict[str, Any]]:
        return [{"turn": i, **t.describe()} for i, t in enumerate(self.turns, 1)]

    def __repr__(self) -> str:
        return f"Script([{', '.join(map(repr, self.turns))}])"


# -- results -------------------------------------------------------------------------------------


@dataclass
class Run:
    """One pass of the script with one variant: its seed, the session it ran with, its turns'
    rows and its slice of the event log."""

    variant: str
    repeat: int
    index: int
    seed: int
    fields: dict[str, Any]
    session: dict[str, Any] = field(default_factory=dict)  # session_config() as sent
    confirmed: dict[str, Any] = field(default_factory=dict)  # what session.updated said
    call_number: int = 0
    fresh_call: bool = False
    status: str = "pending"  # running, completed, failed, cancelled
    error: str | None = None
    started_ms: float | None = None  # kernel clock
    ended_ms: float | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    events: EventLog | None = None
    recording: Recording | None = None
    # seq ranges in the widget's log: the run, and each turn (with the runner's error if any)
    seq: tuple[int, int] = (0, 0)
    spans: list[tuple[int, int, str | None]] = field(default_factory=list)

    def manifest(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "repeat": self.repeat,
            "run": self.index,
            "seed": self.seed,
            "fields": self.fields,
            "session": self.session,
            "confirmed": self.confirmed,
            "call_number": self.call_number,
            "fresh_call": self.fresh_call,
            "status": self.status,
            "error": self.error,
            "started_ms": self.started_ms,
            "ended_ms": self.ended_ms,
        }

    def __repr__(self) -> str:
        done = sum(1 for r in self.rows if r.get("status") == "completed")
        return (
            f"<Run {self.variant!r} repeat {self.repeat}: {self.status}, {done}/{len(self.rows)} "
            f"turns completed>"
        )


def _response_text(records: Sequence[Mapping[str, Any]], rid: str) -> tuple[str, str]:
    """(output text, audio transcript) of one response, from its events."""
    texts: list[str] = []
    spoken: list[str] = []
    text_done: str | None = None
    spoken_done: str | None = None
    for rec in records:
        ev = obj(rec.get("event"))
        if rec.get("direction") != "server" or ev.get("response_id") != rid:
            continue
        etype = ev.get("type")
        if etype in _TEXT_DELTAS:
            texts.append(text(ev.get("delta")) or "")
        elif etype in _SPOKEN_DELTAS:
            spoken.append(text(ev.get("delta")) or "")
        elif etype in _TEXT_DONE:
            text_done = text(ev.get("text"))
        elif etype in _SPOKEN_DONE:
            spoken_done = text(ev.get("transcript"))
    out = text_done if text_done is not None else "".join(texts)
    said = spoken_done if spoken_done is not None else "".join(spoken)
    return out, said


def _tool_names(records: Sequence[Mapping[str, Any]], rids: set[str]) -> list[str]:
    """The functions the turn's responses called, in order (from ``response.done``)."""
    names: list[str] = []
    for rec in records:
        ev = obj(rec.get("event"))
        if rec.get("direction") != "server" or ev.get("type") != "response.done":
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
    spans: Sequence[tuple[int, int, str | None]],
    script: Script,
    run: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """One row per turn of a run, from its records (each with its ``seq`` in the log) and each
    turn's seq span: the turn's responses, what they said, their status, tool calls, the
    latencies of ``turns()`` (of the turn's first response: what the user waited for), the
    agent's audio time and the turn's own duration."""
    by_rid = {t.response_id: t for t in collect_turns(records)}
    rows = []
    for i, (lo, hi, error) in enumerate(spans):
        turn = script[i]
        recs = [r for r in records if lo <= int(r.get("seq", -1)) < hi]
        rids: list[str] = []
        start: float | None = None
        end: float | None = None
        heard: list[str] = []
        for rec in recs:
            ev = obj(rec.get("event"))
            etype, direction = ev.get("type"), rec.get("direction")
            t_ms = float(rec.get("t_ms") or 0.0)
            if direction == "server" and etype == "response.created":
                rid = text(obj(ev.get("response")).get("id"))
                if rid is not None and rid not in rids:
                    rids.append(rid)
            elif direction == "server" and etype in ("response.done", *_AUDIO_END):
                end = t_ms if end is None else max(end, t_ms)
            elif start is None and (
                (direction == "client" and etype == "conversation.item.create")
                or (direction == "local" and etype == "say.started")
            ):
                start = t_ms
            elif etype == "conversation.item.input_audio_transcription.completed":
                heard.append(text(ev.get("transcript")) or "")
        turns = [by_rid[r].row() for r in rids if r in by_rid]
        first = turns[0] if turns else {}
        said = [_response_text(recs, r) for r in rids]
        reply = " ".join(t or s for t, s in said if t or s)
        audio = [
            t["audio_stopped"] - t["audio_started"]
            for t in turns
            if t["audio_started"] is not None and t["audio_stopped"] is not None
        ]
        status = turns[-1]["status"] if turns else None
        if error is not None or status is None:
            status = "cancelled" if error == "interrupted" else "error"
        rows.append(
            {
                **{k: run.get(k) for k in ("variant", "repeat", "run", "seed", "call_number")},
                "turn": i + 1,
                "kind": turn.kind,
                "prompt": turn.prompt,
                "trigger": first.get("trigger"),
                "status": status,
                "reason": turns[-1]["reason"] if turns else None,
                "error": error if error is not None else (None if turns else "no response"),
                "text": reply,
                "transcript": " ".join(s for _, s in said if s),
                "heard": " ".join(h for h in heard if h) or None,
                "response_id": rids[0] if rids else None,
                "responses": len(rids),
                "tool_calls": sum(t["tool_calls"] for t in turns),
                "tools": _tool_names(recs, set(rids)),
                "tool_ms": _sum(t["tool_ms"] for t in turns),
                "tool_hop_ms": max(
                    (t["tool_hop_ms"] for t in turns if t["tool_hop_ms"] is not None),
                    default=None,
                ),
                **{c: first.get(c) for c in LATENCY_COLUMNS},
                **{c: _isum(t[c] for t in turns) for c in _TOKENS},
                "audio_ms": sum(audio) if audio else None,
                "turn_ms": end - start if start is not None and end is not None else None,
                "started_ms": start,
                "ended_ms": end,
            }
        )
    return rows


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    pd = _pandas("Runs.turns")
    df = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
    for col in _FLOATS:
        df[col] = df[col].astype("float64")
    for col in _INTS:
        df[col] = df[col].astype("int64")
    for col in _TOKENS:
        df[col] = df[col].astype("Int64")
    for col in _STRINGS:
        df[col] = df[col].astype("string")
    df["tools"] = df["tools"].map(lambda v: list(v) if v is not None else [])
    return df


def _arrow_schema(with_variant: bool) -> Any:
    import pyarrow as pa

    types: dict[str, Any] = {
        **{c: pa.float64() for c in _FLOATS},
        **{c: pa.int64() for c in (*_INTS, *_TOKENS)},
        **{c: pa.string() for c in _STRINGS},
        "tools": pa.list_(pa.string()),
    }
    cols = [c for c in ROW_COLUMNS if with_variant or c != "variant"]
    return pa.schema([(c, types[c]) for c in cols])


def _pct(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile, linear between closest ranks (numpy's default); NaN when empty."""
    xs = sorted(v for v in values if v is not None and not math.isnan(v))
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class Expectation:
    """Checks over the rows of one turn (``runs.expect(turn=2)``): each raises
    ``AssertionError`` with the evidence of the rows that failed, and returns itself to chain."""

    def __init__(self, runs: Runs, turn: int, variant: str | None, repeat: int | None) -> None:
        self._runs = runs
        self._where = f"turn={turn}" + (f", variant={variant!r}" if variant is not None else "")
        self._where += f", repeat={repeat}" if repeat is not None else ""
        rows = [r for r in runs.rows if r["turn"] == turn]
        if variant is not None:
            rows = [r for r in rows if r["variant"] == variant]
        if repeat is not None:
            rows = [r for r in rows if r["repeat"] == repeat]
        if not rows:
            turns = sorted({r["turn"] for r in runs.rows})
            raise AssertionError(
                f"expect({self._where}): no such turn in these runs "
                f"(turns {turns}, variants {runs.variant_names})"
            )
        self.rows = rows

    def _check(self, what: str, ok: Any) -> Expectation:
        bad = [r for r in self.rows if not ok(r)]
        if bad:
            lines = [f"expect({self._where}).{what}: {len(bad)} of {len(self.rows)} run(s) failed"]
            lines += [self._evidence(r) for r in bad]
            raise AssertionError("\n".join(lines))
        return self

    def _evidence(self, r: Mapping[str, Any]) -> str:
        lat = r.get("to_first_output_ms")
        lat_s = f"{lat:.0f} ms" if isinstance(lat, float) and not math.isnan(lat) else "none"
        parts = [
            f"  variant={r['variant']!r} repeat={r['repeat']} turn={r['turn']}:",
            f"status={r['status']}",
            f"to_first_output={lat_s}",
            f"tools={list(r.get('tools') or [])}",
            f"response={r.get('response_id')}",
            f"seed={r.get('seed')}",
        ]
        if r.get("error"):
            parts.append(f"error={r['error']!r}")
        said = str(r.get("text") or "")
        parts.append(f"text={said[:200]!r}")
        return " ".join(parts)

    def contains(self, words: str, *, case: bool = False) -> Expectation:
        """The reply's text (or transcript) holds ``words`` (case-insensitive by default)."""

        def ok(r: Mapping[str, Any]) -> bool:
            said = str(r.get("text") or "")
            return words in said if case else words.lower() in said.lower()

        return self._check(f"contains({words!r})", ok)

    def within_ms(
        self, ms: float, *, column: str = "to_first_output_ms", quantile: float | None = None
    ) -> Expectation:
        """Each run's ``column`` latency is at most ``ms`` (a missing one fails); with
        ``quantile`` (e.g. 0.95), that quantile over the runs is."""
        if column not in (*LATENCY_COLUMNS, "turn_ms", "audio_ms", "tool_ms", "tool_hop_ms"):
            raise ValueError(f"column must be a latency column such as {LATENCY_COLUMNS}")

        def value(r: Mapping[str, Any]) -> float | None:
            v = r.get(column)
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

        if quantile is not None:
            q = _pct([v for r in self.rows if (v := value(r)) is not None], quantile)
            if math.isnan(q) or q > ms:
                slowest = sorted(self.rows, key=lambda r: -(value(r) or math.inf))[:5]
                lines = [
                    f"expect({self._where}).within_ms({ms:g}, column={column!r}, "
                    f"quantile={quantile:g}): the quantile is {q:.0f} ms"
                ]
                raise AssertionError("\n".join(lines + [self._evidence(r) for r in slowest]))
            return self
        return self._check(
            f"within_ms({ms:g}, column={column!r})",
            lambda r: (v := value(r)) is not None and v <= ms,
        )

    def called(self, name: str) -> Expectation:
        """The turn called the tool ``name``."""
        return self._check(f"called({name!r})", lambda r: name in list(r.get("tools") or []))

    def completed(self) -> Expectation:
        """Every response of the turn completed, and the turn had no error."""
        return self._check("completed()", lambda r: r.get("status") == "completed")

    def __repr__(self) -> str:
        return f"<Expectation {self._where}: {len(self.rows)} row(s)>"


class Runs(Pending):
    """The runs of one ``run_script``: awaitable (``await runs``), and filled in as they finish
    (read them in a later cell). ``runs.turns`` is the table; ``runs.runs`` the runs."""

    _default_timeout: float | None = None
    _what = "the runs"
    _last: Runs | None = None

    def __init__(
        self,
        script: Script,
        variants: Mapping[str, Mapping[str, Any]],
        repeat: int,
        *,
        delivery: Any = None,
    ) -> None:
        super().__init__(delivery)
        self.script = script
        self.variants = {k: dict(v) for k, v in variants.items()}
        self.repeat = repeat
        self.runs: list[Run] = []
        self.cancelled = False
        self.error: str | None = None  # the runner's own failure, if it had one
        self.wall_ms: float | None = None  # the whole grid, kernel clock
        self.progress: Any = None  # the ipywidgets progress box, while one shows
        self._runner: _Runner | None = None

    # -- waiting ----------------------------------------------------------------------------

    async def wait(self, timeout: float | None = None) -> Any:
        try:
            return await super().wait(timeout)
        except MidCellDeliveryError as exc:
            raise MidCellDeliveryError(
                f"{exc}\nThe runs go on between cells: `runs = Runs.last()` (from realtime_widget "
                "import Runs) in a later cell has them."
            ) from None
        except (asyncio.CancelledError, KeyboardInterrupt):
            self.cancel()  # an interrupted cell stops the runs; what finished stays
            raise

    def cancel(self) -> None:
        """Stop after the current turn is cut short; the finished runs stay."""
        if self._runner is not None:
            self._runner.cancel()

    @classmethod
    def last(cls) -> Runs | None:
        """The runs most recently started in this kernel (when ``await`` was interrupted)."""
        return cls._last

    def _result(self) -> Any:
        return self

    # -- tables -----------------------------------------------------------------------------

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [row for run in self.runs for row in run.rows]

    @property
    def variant_names(self) -> list[str]:
        return list(self.variants) or list(dict.fromkeys(r.variant for r in self.runs))

    @property
    def turns(self) -> pd.DataFrame:
        """One row per turn of every finished run (see ``ROW_COLUMNS``)."""
        return _frame(self.rows)

    def summary(self) -> pd.DataFrame:
        """Per variant: runs, turns, completion rate, p50/p95 of each latency, the agent's
        audio seconds (total and per turn) and the turns' own time."""
        pd = _pandas("Runs.summary()")
        out = []
        rows = self.rows
        for name in self.variant_names:
            mine = [r for r in rows if r["variant"] == name]
            entry: dict[str, Any] = {
                "variant": name,
                "runs": len({r["repeat"] for r in mine}),
                "turns": len(mine),
                "completed": sum(1 for r in mine if r["status"] == "completed"),
            }
            entry["completion_rate"] = entry["completed"] / len(mine) if mine else float("nan")
            for col in LATENCY_COLUMNS:
                vals = [r[col] for r in mine if r[col] is not None]
                entry[f"{col}_p50"] = _pct(vals, 0.5)
                entry[f"{col}_p95"] = _pct(vals, 0.95)
            audio = [r["audio_ms"] for r in mine if r["audio_ms"] is not None]
            entry["audio_s"] = sum(audio) / 1000.0 if audio else float("nan")
            entry["audio_s_per_turn"] = entry["audio_s"] / len(audio) if audio else float("nan")
            turn_ms = [r["turn_ms"] for r in mine if r["turn_ms"] is not None]
            entry["turn_s"] = sum(turn_ms) / 1000.0 if turn_ms else float("nan")
            out.append(entry)
        return pd.DataFrame(out).set_index("variant")

    def timing(self) -> dict[str, float | None]:
        """The grid's wall time against the sum of its turns' own durations (seconds)."""
        turn_ms = [r["turn_ms"] for r in self.rows if r["turn_ms"] is not None]
        turns_s = sum(turn_ms) / 1000.0
        wall_s = self.wall_ms / 1000.0 if self.wall_ms is not None else None
        ratio = wall_s / turns_s if wall_s is not None and turns_s else None
        return {"wall_s": wall_s, "turns_s": turns_s, "ratio": ratio}

    # -- pictures and sound -----------------------------------------------------------------

    def plot(self, *, columns: Sequence[str] = LATENCY_COLUMNS) -> Any:
        """The latency distributions per variant, one panel per latency (and the agent's audio
        seconds per turn), in one figure; returns the matplotlib Figure."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError(
                'Runs.plot() needs matplotlib: pip install "realtime-widget[plot]"'
            ) from None
        rows = self.rows
        panels = [c for c in columns if any(r[c] is not None for r in rows)]
        if any(r["audio_ms"] is not None for r in rows):
            panels.append("audio_ms")
        if not panels:
            panels = ["to_first_output_ms"]
        names = self.variant_names
        fig, axes = plt.subplots(
            1, len(panels), figsize=(3.2 * len(panels) + 1, 3.6), squeeze=False,
            layout="constrained",
        )  # fmt: skip
        turns = sorted({r["turn"] for r in rows})
        colours = plt.get_cmap("tab10")
        for ax, col in zip(axes[0], panels, strict=True):
            data = [
                [r[col] for r in rows if r["variant"] == v and r[col] is not None] for v in names
            ]
            ax.boxplot(
                [d or [float("nan")] for d in data], showfliers=False, widths=0.5,
                medianprops={"color": "black"},
            )  # fmt: skip
            for i, name in enumerate(names, 1):  # every turn as a point, coloured by turn
                mine = [r for r in rows if r["variant"] == name and r[col] is not None]
                for j, r in enumerate(mine):
                    dx = ((j * 7919) % 17 / 16.0 - 0.5) * 0.3  # a fixed jitter
                    ax.plot(
                        i + dx, r[col], "o", ms=4, alpha=0.75,
                        color=colours((turns.index(r["turn"])) % 10),
                    )  # fmt: skip
            ax.set_xticks(range(1, len(names) + 1), names, rotation=20, ha="right")
            ax.set_title(col.removesuffix("_ms").replace("_", " ") + " (ms)", fontsize=10)
            ax.grid(axis="y", alpha=0.3)
        handles = [
            plt.Line2D([], [], ls="", marker="o", color=colours(k % 10), label=f"turn {t}")
            for k, t in enumerate(turns)
        ]
        if handles:
            fig.legend(handles=handles, loc="outside right upper", fontsize=8)
        fig.suptitle(f"{len(self.runs)} runs of a {len(self.script)}-turn script", fontsize=11)
        plt.close(fig)  # shown by the cell's result, not twice
        return fig

    def listen(self, turn: int = 1, *, repeat: int = 1, pad_ms: float = 300.0) -> _Players:
        """The recordings of one turn, one player per variant side by side (its ``repeat``):
        what the service heard and what the user heard. Needs ``record=True`` on the widget."""
        cells: list[tuple[str, Any, Recording | None, str | None]] = []
        for name in self.variant_names:
            run = next((r for r in self.runs if r.variant == name and r.repeat == repeat), None)
            row = next((x for x in (run.rows if run else []) if x["turn"] == turn), None)
            if run is None or row is None:
                cells.append((name, None, None, "not run"))
                continue
            rec = run.recording
            if rec is None or not rec.chunks:
                cells.append((name, row, None, "no recording: RealtimeWidget(record=True)"))
                continue
            try:
                clip = self._clip(rec, row, pad_ms)
            except (KeyError, ValueError) as exc:
                cells.append((name, row, None, str(exc)))
                continue
            cells.append((name, row, clip, None))
        return _Players(turn, repeat, cells)

    @staticmethod
    def _clip(rec: Recording, row: Mapping[str, Any], pad_ms: float) -> Recording:
        rid = row.get("response_id")
        if rid is None:
            raise ValueError("the turn had no response")
        clip = rec.clip(str(rid), pad_ms=pad_ms)
        end = row.get("ended_ms")
        if row.get("responses", 1) > 1 and end is not None and clip.t0_ms is not None:
            clip = rec.window(clip.t0_ms, float(end) + pad_ms)  # a tool's answer too
        return clip

    # -- files ------------------------------------------------------------------------------

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write one Parquet file per run, partitioned by variant (``variant=<name>/``, the
        name URL-quoted), with each run's event log (``_logs/``, JSONL) and a manifest
        (``_runs.json``: the script, the variants, each run's seed and session) beside them.
        ``pandas.read_parquet(dir)`` or DuckDB's ``read_parquet('dir/**/*.parquet',
        hive_partitioning=true)`` read the set; ``Runs.read_parquet(dir)`` gets all of it back."""
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError(
                'Runs.to_parquet() needs pyarrow: pip install "realtime-widget[parquet]"'
            ) from None
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        schema = _arrow_schema(with_variant=False)
        manifest: dict[str, Any] = {
            **_FORMAT,
            "script": self.script.describe(),
            "fingerprint": self.script.fingerprint,
            "variants": self.variants,
            "repeat": self.repeat,
            "cancelled": self.cancelled,
            "wall_ms": self.wall_ms,
            "runs": [],
        }
        for run in self.runs:
            part = f"variant={quote(run.variant, safe='')}"
            stem = f"repeat-{run.repeat:03d}"
            (out / part).mkdir(exist_ok=True)
            rows = [{k: v for k, v in r.items() if k != "variant"} for r in run.rows]
            table = pa.Table.from_pylist(rows, schema=schema)
            pq.write_table(table, out / part / f"{stem}.parquet")
            entry = {**run.manifest(), "file": f"{part}/{stem}.parquet", "log": None}
            if run.events is not None:
                log = out / "_logs" / part / f"{stem}.jsonl"
                log.parent.mkdir(parents=True, exist_ok=True)
                run.events.to_jsonl(log)
                entry["log"] = f"_logs/{part}/{stem}.jsonl"
            manifest["runs"].append(entry)
        (out / _MANIFEST).write_text(json.dumps(manifest, indent=1, default=repr))
        return out

    @classmethod
    def read_parquet(cls, path: str | os.PathLike[str]) -> Runs:
        """A set written by ``to_parquet`` (rows, seeds, sessions, event logs), ready for
        ``turns``, ``summary()``, ``plot()`` and ``expect()``."""
        import pyarrow.parquet as pq

        root = Path(path)
        meta_path = root / _MANIFEST
        if not meta_path.is_file():
            raise FileNotFoundError(f"no {_MANIFEST} in {root}: not a set written by to_parquet")
        meta = json.loads(meta_path.read_text())
        turns = [Turn("text", text=t["prompt"] or "?") for t in meta["script"]]
        for turn, described in zip(turns, meta["script"], strict=True):
            turn.kind = described["kind"]  # the audio itself is not kept
        script = Script(turns)
        runs = cls(script, meta.get("variants") or {}, int(meta.get("repeat", 1)))
        runs.cancelled = bool(meta.get("cancelled"))
        runs.wall_ms = meta.get("wall_ms")
        for entry in meta["runs"]:
            run = Run(
                variant=entry["variant"],
                repeat=int(entry["repeat"]),
                index=int(entry["run"]),
                seed=int(entry["seed"]),
                fields=entry.get("fields") or {},
                session=entry.get("session") or {},
                confirmed=entry.get("confirmed") or {},
                call_number=int(entry.get("call_number") or 0),
                fresh_call=bool(entry.get("fresh_call")),
                status=entry.get("status") or "completed",
                error=entry.get("error"),
                started_ms=entry.get("started_ms"),
                ended_ms=entry.get("ended_ms"),
            )
            table = pq.read_table(root / entry["file"], schema=_arrow_schema(with_variant=False))
            run.rows = [{"variant": run.variant, **r} for r in table.to_pylist()]
            if entry.get("log") and (root / entry["log"]).is_file():
                run.events = EventLog.read_jsonl(root / entry["log"])
            runs.runs.append(run)
        runs._finish()
        return runs

    # -- checks -----------------------------------------------------------------------------

    def expect(
        self, turn: int, *, variant: str | None = None, repeat: int | None = None
    ) -> Expectation:
        """Assertions over one turn's rows (every run, or one variant / repeat):
        ``runs.expect(turn=2).contains("vegetarian").within_ms(1200).called("get_menu")``."""
        return Expectation(self, turn, variant, repeat)

    # -- display ----------------------------------------------------------------------------

    def _state(self) -> str:
        if self.cancelled:
            return "stopped"
        if self.error:
            return "failed"
        return "done" if self.done else "running"

    def __repr__(self) -> str:
        rows = self.rows
        done = sum(1 for r in rows if r["status"] == "completed")
        total = len(self.variant_names) * self.repeat
        return (
            f"<Runs {self._state()}: {len(self.runs)}/{total} runs, {done}/{len(rows)} turns "
            f"completed; variants {self.variant_names}>"
        )

    def _repr_html_(self) -> str:
        head = html.escape(repr(self))
        if not self.rows:
            return f"<div>{head}</div>"
        try:
            table = self.summary()[
                ["runs", "turns", "completion_rate", "to_first_output_ms_p50",
                 "to_first_output_ms_p95", "audio_s"]
            ].to_html(float_format=lambda v: f"{v:.3g}")  # fmt: skip
        except ImportError:
            table = ""
        return f"<div><div>{head}</div>{table}</div>"


class _Players:
    """Players side by side, one per variant (``runs.listen()``)."""

    def __init__(
        self, turn: int, repeat: int, cells: list[tuple[str, Any, Recording | None, str | None]]
    ) -> None:
        self.turn, self.repeat, self.cells = turn, repeat, cells

    @property
    def clips(self) -> dict[str, Recording | None]:
        return {name: clip for name, _, clip, _ in self.cells}

    def _repr_html_(self) -> str:
        columns = []
        for name, row, clip, why in self.cells:
            lines = [f"<b>{html.escape(name)}</b>"]
            if row is not None:
                lat = row.get("to_first_output_ms")
                lat_s = f"{lat:.0f} ms" if isinstance(lat, float) and not math.isnan(lat) else "-"
                lines.append(f"<div>{html.escape(str(row.get('text') or ''))[:200]}</div>")
                lines.append(
                    f"<div>{html.escape(str(row.get('status')))} · first output {lat_s}</div>"
                )
            lines.append(
                clip._repr_html_() if clip is not None else f"<i>{html.escape(why or '')}</i>"
            )
            columns.append(
                "<div style='flex:1 1 20em;min-width:18em;border-left:2px solid #ccc;"
                f"padding-left:.6em'>{''.join(lines)}</div>"
            )
        title = f"turn {self.turn}, repeat {self.repeat}"
        return (
            f"<div><div>{html.escape(title)}</div>"
            f"<div style='display:flex;gap:1em;flex-wrap:wrap'>{''.join(columns)}</div></div>"
        )

    def __repr__(self) -> str:
        return f"<players of turn {self.turn}: {', '.join(n for n, *_ in self.cells)}>"


# -- the runner ----------------------------------------------------------------------------------


class _TurnEnd(Pending):
    """One turn, until every response it caused is done (a tool's output answered too) and the
    agent's audio has stopped."""

    _what = "the turn"

    def __init__(self, call: int, tools: bool) -> None:
        super().__init__(None)
        self.call = call
        self.tools = tools  # a tool runner answers function calls with a new response
        self.open: set[str] = set()
        self.seen = 0
        self.followups = 0
        self.audio = False

    def _timeout_words(self, timeout: float) -> str:
        if not self.seen:
            return f"no response within {timeout:g} s"
        if self.open or self.followups:
            return f"the reply did not finish within {timeout:g} s"
        return f"the agent's audio did not stop within {timeout:g} s"

    def check(self) -> None:
        if self.seen and not self.open and not self.followups and not self.audio:
            self._finish()


class _Watch:
    """Hears the widget's records for the runner: the current turn's progress, and the items
    of the conversation (to delete them between runs)."""

    def __init__(self, widget: RealtimeWidget) -> None:
        self._w = widget
        self._lock = threading.Lock()
        self.turn: _TurnEnd | None = None
        self.items: dict[int, dict[str, None]] = {}  # call -> item ids, in order
        for rec in widget.events.of_type(*_ITEM_ADDED, "conversation.item.deleted"):
            self._item(rec["call_number"], rec["type"], rec["event"])

    def _item(self, call: int, etype: str, ev: Mapping[str, Any]) -> None:
        if etype == "conversation.item.deleted":
            self.items.get(call, {}).pop(text(ev.get("item_id")) or "", None)
            return
        item_id = text(obj(ev.get("item")).get("id"))
        if item_id:
            self.items.setdefault(call, {})[item_id] = None

    def begin(self, call: int) -> _TurnEnd:
        end = _TurnEnd(call, self._w._tool_runner is not None)
        with self._lock:
            self.turn = end
        return end

    def on_record(self, direction: str, event: Mapping[str, Any], t_ms: float, call: int) -> None:
        if direction != "server":
            return
        etype = event.get("type")
        if etype in _ITEM_ADDED or etype == "conversation.item.deleted":
            with self._lock:
                self._item(call, str(etype), event)
            return
        with self._lock:
            end = self.turn
            if end is None or end.done or end.call != call:
                return
            if etype == "response.created":
                rid = text(obj(event.get("response")).get("id")) or "?"
                end.open.add(rid)
                end.seen += 1
                end.followups = max(0, end.followups - 1)
            elif etype == "response.done":
                resp = obj(event.get("response"))
                end.open.discard(text(resp.get("id")) or "?")
                output = resp.get("output")
                calls = [
                    i for i in (output if isinstance(output, list) else [])
                    if obj(i).get("type") == "function_call"
                ]  # fmt: skip
                if calls and end.tools and resp.get("status") == "completed":
                    end.followups += 1  # the tool loop answers with one response.create
            elif etype == "output_audio_buffer.started":
                end.audio = True
            elif etype in _AUDIO_END:
                end.audio = False
            else:
                return
        end.check()


class _Progress:
    """A progress bar, the current variant and turn, and a Stop button (ipywidgets)."""

    def __init__(self, total: int, stop: Any) -> None:
        import ipywidgets as W

        self.bar = W.IntProgress(value=0, min=0, max=max(1, total), description="turns")
        self.label = W.HTML(value="starting")
        self.button = W.Button(description="Stop", button_style="warning", icon="stop")
        self.button.on_click(lambda _b: stop())
        self.box = W.HBox([self.bar, self.button, self.label])

    def show(self, done: int, words: str) -> None:
        self.bar.value = done
        self.label.value = html.escape(words)

    def close(self, done: int, words: str) -> None:
        self.bar.value = done
        self.label.value = html.escape(words)
        self.button.disabled = True


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class _Runner:
    def __init__(
        self,
        widget: RealtimeWidget,
        runs: Runs,
        *,
        fresh_call: frozenset[str],
        isolation: str,
        timeout: float,
        seed: int,
    ) -> None:
        self.w = widget
        self.runs = runs
        self.fresh_call = fresh_call
        self.isolation = isolation
        self.timeout = timeout
        self.seed = seed
        names = {n for fields in runs.variants.values() for n in fields}
        # every run starts from the session as it was, plus its variant's fields
        self.baseline = {n: copy.deepcopy(getattr(widget, n)) for n in SESSION_TRAITS if n in names}
        self.order = [(v, r) for r in range(1, runs.repeat + 1) for v in runs.variants]
        self.watch = _Watch(widget)
        self.task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.progress: _Progress | None = None
        self.turns_done = 0

    def cancel(self) -> None:
        task, loop = self.task, self.loop
        if task is None or loop is None or task.done():
            return
        self.runs.cancelled = True
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(task.cancel)

    def start(self, loop: asyncio.AbstractEventLoop, progress: bool) -> None:
        if progress and _in_kernel():
            try:
                self.progress = _Progress(len(self.order) * len(self.runs.script), self.cancel)
            except ImportError:
                self.progress = None
            if self.progress is not None:
                from IPython.display import display

                self.runs.progress = self.progress.box
                display(self.progress.box)
        self.loop = loop
        self.w._record_listeners.append(self.watch.on_record)
        self.task = loop.create_task(self.main())

    def _say(self, words: str) -> None:
        if self.progress is not None:
            self.progress.show(self.turns_done, words)

    async def main(self) -> None:
        runs, w = self.runs, self.w
        t0 = time.perf_counter()
        try:
            for index, (variant, repeat) in enumerate(self.order, 1):
                fields = runs.variants[variant]
                seed = zlib.crc32(f"{self.seed}/{variant}/{repeat}".encode()) & 0x7FFFFFFF
                run = Run(variant, repeat, index, seed, copy.deepcopy(fields))
                runs.runs.append(run)
                await self.run_one(run)
        except asyncio.CancelledError:
            runs.cancelled = True
        except Exception as exc:  # the runner's own bug or a call that cannot start
            runs.error = f"{type(exc).__name__}: {exc}"
        finally:
            runs.wall_ms = (time.perf_counter() - t0) * 1000.0
            with contextlib.suppress(ValueError):
                w._record_listeners.remove(self.watch.on_record)
            if self.baseline and w._live:
                with contextlib.suppress(Exception):
                    w.update_session(**self.baseline)  # leave the session as it was
            if self.progress is not None:
                self.progress.close(self.turns_done, repr(runs))
            runs._finish()

    async def run_one(self, run: Run) -> None:
        w, script = self.w, self.runs.script
        run.status = "running"
        run.started_ms = _now_ms()
        seq0 = len(w.events)
        cancelled = False
        try:
            try:
                await self.prepare(run)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                run.error = f"the variant could not be applied: {type(exc).__name__}: {exc}"
            for i, turn in enumerate(script):
                self._say(
                    f"{run.variant} · repeat {run.repeat}/{self.runs.repeat} · turn {i + 1}/"
                    f"{len(script)}: {turn.prompt[:60]}"
                )
                if run.error is not None:
                    run.spans.append((len(w.events), len(w.events), run.error))
                    continue
                try:
                    await self.play(run, turn)
                finally:
                    self.turns_done += 1
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            run.ended_ms = _now_ms()
            run.status = (
                "cancelled" if cancelled else "failed" if run.error is not None else "completed"
            )
            self.close_run(run, seq0)

    async def prepare(self, run: Run) -> None:
        w = self.w
        fields = {**self.baseline, **run.fields}
        changed = {n for n, v in fields.items() if getattr(w, n) != v}
        fresh = self.isolation == "call" or not w._live or bool(changed & self.fresh_call)
        if fresh:
            if w._live:
                w.disconnect()
            w.update_session(**fields)  # no call: it goes in the new call's first update
            w.connect()
            run.fresh_call = True
            await w._waits.ready(self.timeout).settled()
        else:
            waits = []
            if changed:
                waits.append(w._waits.wait_for("session.updated", timeout=self.timeout))
            before = {n: copy.deepcopy(getattr(w, n)) for n in fields}
            w.update_session(**fields)
            if not any(getattr(w, n) != before[n] for n in fields) and waits:
                w._waits._forget(waits.pop())  # nothing differed after validation: no update
            if self.isolation == "conversation":
                ids = list(self.watch.items.get(w.call_number, {}))
                if ids:
                    last = ids[-1]
                    # the last deletion confirmed (or an error: an item the service forgot)
                    waits.append(
                        w._waits.wait_for(
                            "*",
                            timeout=self.timeout,
                            where=lambda ev: (
                                ev.get("type") == "error"
                                or (
                                    ev.get("type") == "conversation.item.deleted"
                                    and ev.get("item_id") == last
                                )
                            ),
                        )
                    )
                    w._signalling.send_events(
                        [{"type": "conversation.item.delete", "item_id": i} for i in ids]
                    )
            for waiter in waits:
                await waiter.settled()
        run.call_number = w.call_number
        run.session = w.session_config()
        run.confirmed = copy.deepcopy(dict(w.server_session))

    async def play(self, run: Run, turn: Turn) -> None:
        w = self.w
        lo = len(w.events)
        error: str | None = None
        end = self.watch.begin(w.call_number)
        try:
            if turn.kind == "text":
                reply = w._waits.ask(
                    turn.text, timeout=self.timeout, metadata={"rtw_seed": str(run.seed)}
                )
            else:
                reply = w.ask(audio=turn.audio, timeout=self.timeout)
            await reply.settled()
            await end.settled(self.timeout)
        except asyncio.CancelledError:
            error = "interrupted"
            with contextlib.suppress(Exception):
                w.cancel_response()
            raise
        except Exception as exc:  # this turn's failure is its row; the run goes on
            error = f"{type(exc).__name__}: {exc}"
            if w._live:
                with contextlib.suppress(Exception):
                    w.cancel_response()
        finally:
            with self.watch._lock:
                self.watch.turn = None
            run.spans.append((lo, len(w.events), error))

    def close_run(self, run: Run, seq0: int) -> None:
        w = self.w
        seq1 = len(w.events)
        run.seq = (seq0, seq1)
        calls = {run.call_number} if run.call_number else set()
        records = [w.events.record(i) for i in range(seq0, seq1)]
        records = [r for r in records if not calls or r["call_number"] in calls]
        log = EventLog()
        log.extend(
            (r["direction"], r["event"], r["t_ms"], r["t_kernel_ms"], r["call_number"])
            for r in records
        )
        run.events = log
        run.recording = w.recordings.get(run.call_number)
        meta = {
            "variant": run.variant,
            "repeat": run.repeat,
            "run": run.index,
            "seed": run.seed,
            "call_number": run.call_number,
        }
        script = self.runs.script
        spans = list(run.spans)
        while len(spans) < len(script):  # turns never reached (interrupted)
            spans.append((seq1, seq1, "interrupted"))
        if run.status == "cancelled":
            n = len(run.spans)
            # keep what finished; the turns after the interruption were not played
            run.rows = turn_rows(records, spans, script, meta)[: max(n, 0)]
        else:
            run.rows = turn_rows(records, spans, script, meta)


def run_script(
    widget: RealtimeWidget,
    script: Script | Iterable[str | Turn],
    variants: Mapping[str, Mapping[str, Any]] | None = None,
    repeat: int = 1,
    *,
    fresh_call: Iterable[str] | bool = FRESH_CALL_FIELDS,
    isolation: str = "conversation",
    timeout: float = 60.0,
    seed: int = 0,
    progress: bool = True,
) -> Runs:
    """Start the runs on the kernel's event loop; returns their handle at once."""
    if not isinstance(script, Script):
        script = Script(script)
    variants = {"session": {}} if variants is None else variants
    if not isinstance(variants, Mapping) or not variants:
        raise TypeError(
            'variants must be a dict of name -> session fields, e.g. {"Clive": {"voice": '
            '"Clive"}, "fast": {"speed": 1.3}}'
        )
    checked: dict[str, dict[str, Any]] = {}
    for name, fields in variants.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"a variant's name is a non-empty string; got {name!r}")
        if not isinstance(fields, Mapping):
            raise TypeError(f"variant {name!r}: fields must be a dict; got {fields!r}")
        unknown = sorted(set(fields) - set(SESSION_TRAITS))
        if unknown:
            raise TypeError(
                f"variant {name!r}: unknown session field(s) {unknown}; known: "
                f"{', '.join(SESSION_TRAITS)}"
            )
        scratch = SessionTraits(**{n: getattr(widget, n) for n in SESSION_TRAITS})
        for key, value in fields.items():  # invalid values fail here, before anything runs
            setattr(scratch, key, value)
        checked[name] = {k: copy.deepcopy(getattr(scratch, k)) for k in fields}
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat must be a whole number >= 1; got {repeat!r}")
    if isolation not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {ISOLATIONS}; got {isolation!r}")
    fresh: frozenset[str] = frozenset()
    if fresh_call is True:
        isolation = "call"
    else:
        fresh = frozenset(fresh_call or ())
        unknown = sorted(fresh - set(SESSION_TRAITS))
        if unknown:
            raise TypeError(f"fresh_call names unknown session field(s) {unknown}")
    active = _ACTIVE.get(widget)
    if active is not None and not active.done:
        raise RuntimeError("a run_script is still going on this widget: await it or .cancel() it")
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "run_script runs on the kernel's event loop: call it in a notebook cell, or from "
            "async code (await w.run_script(...))"
        ) from None
    runs = Runs(script, checked, repeat, delivery=widget._delivery)
    runner = _Runner(
        widget, runs, fresh_call=fresh, isolation=isolation, timeout=timeout, seed=seed
    )
    runs._runner = runner
    _ACTIVE[widget] = runs
    Runs._last = runs
    runner.start(loop, progress)
    return runs


__all__ = [
    "FRESH_CALL_FIELDS",
    "Expectation",
    "Run",
    "Runs",
    "Script",
    "Turn",
    "run_script",
    "turn_rows",
]
