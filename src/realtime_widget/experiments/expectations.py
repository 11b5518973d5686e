"""Assertions over one turn's rows (``runs.expect(turn=2)``), as well over a saved set as over a
live one: each failure is a plain ``AssertionError`` that lists the failing runs' evidence."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .storage import LATENCY_COLUMNS
from .summary import quantile

if TYPE_CHECKING:
    from .runs import Runs

Row = Mapping[str, Any]
# the columns within_ms() checks: a latency, or another duration of the turn
DURATION_COLUMNS = (*LATENCY_COLUMNS, "turn_ms", "audio_ms", "tool_ms", "tool_hop_ms")


class Expectation:
    """Checks over the rows of one turn (``runs.expect(turn=2)``): each raises
    ``AssertionError`` with the evidence of the rows that failed, and returns itself to chain."""

    def __init__(
        self, runs: Runs, turn: int, variant: str | None = None, repeat: int | None = None
    ) -> None:
        self.runs = runs  # the set the rows come from (a check may need more than the rows)
        rows = runs.rows
        self.where = f"turn={turn}" + (f", variant={variant!r}" if variant is not None else "")
        self.where += f", repeat={repeat}" if repeat is not None else ""
        mine = [r for r in rows if r["turn"] == turn]
        if variant is not None:
            mine = [r for r in mine if r["variant"] == variant]
        if repeat is not None:
            mine = [r for r in mine if r["repeat"] == repeat]
        if not mine:
            turns = sorted({r["turn"] for r in rows})
            raise AssertionError(
                f"expect({self.where}): no such turn in these runs "
                f"(turns {turns}, variants {runs.variant_names})"
            )
        self.rows = mine

    def check(self, what: str, ok: Callable[[Row], Any]) -> Expectation:
        """Fail with ``what`` and the evidence of every row for which ``ok(row)`` is false."""
        bad = [r for r in self.rows if not ok(r)]
        if bad:
            lines = [f"expect({self.where}).{what}: {len(bad)} of {len(self.rows)} run(s) failed"]
            lines += [self.evidence(r) for r in bad]
            raise AssertionError("\n".join(lines))
        return self

    @staticmethod
    def evidence(r: Row) -> str:
        """One failing row in a line: where it ran, its status, latency, tools, seed, text."""
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

        def ok(r: Row) -> bool:
            said = str(r.get("text") or "")
            return words in said if case else words.lower() in said.lower()

        return self.check(f"contains({words!r})", ok)

    def within_ms(
        self, ms: float, *, column: str = "to_first_output_ms", quantile: float | None = None
    ) -> Expectation:
        """Each run's ``column`` latency is at most ``ms`` (a missing one fails); with
        ``quantile`` (e.g. 0.95), that quantile over the runs is."""
        if column not in DURATION_COLUMNS:
            raise ValueError(f"column must be a latency column such as {LATENCY_COLUMNS}")

        def value(r: Row) -> float | None:
            v = r.get(column)
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

        if quantile is not None:
            q = _quantile([v for r in self.rows if (v := value(r)) is not None], quantile)
            if math.isnan(q) or q > ms:
                slowest = sorted(self.rows, key=lambda r: -(value(r) or math.inf))[:5]
                lines = [
                    f"expect({self.where}).within_ms({ms:g}, column={column!r}, "
                    f"quantile={quantile:g}): the quantile is {q:.0f} ms"
                ]
                raise AssertionError("\n".join(lines + [self.evidence(r) for r in slowest]))
            return self
        return self.check(
            f"within_ms({ms:g}, column={column!r})",
            lambda r: (v := value(r)) is not None and v <= ms,
        )

    def called(self, name: str) -> Expectation:
        """The turn called the tool ``name``."""
        return self.check(f"called({name!r})", lambda r: name in list(r.get("tools") or []))

    def completed(self) -> Expectation:
        """Every response of the turn completed, and the turn had no error."""
        return self.check("completed()", lambda r: r.get("status") == "completed")

    def __repr__(self) -> str:
        return f"<Expectation {self.where}: {len(self.rows)} row(s)>"


_quantile = quantile  # within_ms() has a parameter of that name
