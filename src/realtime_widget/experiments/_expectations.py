"""Assertions over one turn's rows (``runs.expect(turn=2)``), over a saved set or a live one.

Each failure is a plain ``AssertionError`` that lists the failing runs' evidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._storage import LATENCY_COLUMNS
from ._summary import quantile

if TYPE_CHECKING:
    from ..evaluate._judge import Judge
    from ._runs import Runs

Row = Mapping[str, Any]
# the columns within_ms() checks: a latency, or another duration of the turn
DURATION_COLUMNS = (*LATENCY_COLUMNS, "turn_ms", "audio_ms", "tool_ms", "tool_hop_ms")


class Expectation:
    """Checks over the rows of one turn, made by ``runs.expect(turn=2)``.

    Each check raises a plain ``AssertionError`` with the evidence of the rows that failed
    (variant, repeat, condition in a grid with conditions, status, latency, tools, response
    id, seed and text), and returns the expectation, so checks chain. It works the same over a
    set read back with ``Runs.read_parquet``, so a saved grid can be a pytest test.

    Args:
        runs: The set the rows come from.
        turn: The turn, from 1.
        variant: Only this variant's rows; ``None`` for all.
        repeat: Only this repeat's rows; ``None`` for all.
        condition: Only the rows under this condition; ``None`` for all.

    Raises:
        AssertionError: When no row matches (no such turn, variant, repeat or condition).

    Example:
        >>> def test_vegetarian_answer():
        ...     runs = Runs.read_parquet("runs/")
        ...     runs.expect(turn=2).completed().contains("vegetarian").within_ms(1200)
    """

    def __init__(
        self,
        runs: Runs,
        turn: int,
        variant: str | None = None,
        repeat: int | None = None,
        condition: str | None = None,
    ) -> None:
        self.runs = runs  # the set the rows come from (a check may need more than the rows)
        rows = runs.rows
        self.where = f"turn={turn}" + (f", variant={variant!r}" if variant is not None else "")
        self.where += f", repeat={repeat}" if repeat is not None else ""
        self.where += f", condition={condition!r}" if condition is not None else ""
        mine = [r for r in rows if r["turn"] == turn]
        if variant is not None:
            mine = [r for r in mine if r["variant"] == variant]
        if repeat is not None:
            mine = [r for r in mine if r["repeat"] == repeat]
        if condition is not None:
            mine = [r for r in mine if r.get("condition") == condition]
        if not mine:
            turns = sorted({r["turn"] for r in rows})
            raise AssertionError(
                f"expect({self.where}): no such turn in these runs "
                f"(turns {turns}, variants {runs.variant_names})"
            )
        self.rows = mine

    def check(self, what: str, ok: Callable[[Row], Any]) -> Expectation:
        """Fail with ``what`` and the evidence of every row for which ``ok(row)`` is false.

        The other checks are made of this one; use it for a check of your own.

        Args:
            what: The check's name, as the failure shows it.
            ok: A test of one row (a dict with the ``turns()`` columns).

        Returns:
            The expectation, to chain on.

        Raises:
            AssertionError: When ``ok`` is false for some row, listing them.

        Example:
            >>> runs.expect(turn=1).check("short", lambda r: len(r["text"] or "") < 300)
        """
        bad = [r for r in self.rows if not ok(r)]
        if bad:
            lines = [f"expect({self.where}).{what}: {len(bad)} of {len(self.rows)} run(s) failed"]
            lines += [self.evidence(r) for r in bad]
            raise AssertionError("\n".join(lines))
        return self

    @staticmethod
    def run_of(r: Row) -> str:
        """Where a row ran, as a failure's line starts.

        Args:
            r: A row of ``turns()``.

        Returns:
            ``  variant='A' repeat=1 turn=2``, with ``condition='cafe'`` before the turn in a
            grid with conditions.

        Example:
            >>> Expectation.run_of({"variant": "A", "repeat": 1, "turn": 2})
            "  variant='A' repeat=1 turn=2"
        """
        where = f"  variant={r['variant']!r} repeat={r['repeat']}"
        if r.get("condition") is not None:
            where += f" condition={r['condition']!r}"
        return f"{where} turn={r['turn']}"

    @staticmethod
    def evidence(r: Row) -> str:
        """One failing row in a line: where it ran, its status, latency, tools, seed, text.

        Args:
            r: A row of ``turns()``.

        Returns:
            The line, as a failure lists it.

        Example:
            >>> print(Expectation.evidence(runs.rows[0]))
        """
        lat = r.get("to_first_output_ms")
        lat_s = f"{lat:.0f} ms" if isinstance(lat, float) and not math.isnan(lat) else "none"
        parts = [
            f"{Expectation.run_of(r)}:",
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
        """The reply's text (or transcript) holds ``words`` in every run.

        Args:
            words: The text to find, as one string.
            case: Whether case matters (by default it does not).

        Returns:
            The expectation, to chain on.

        Raises:
            AssertionError: When some run's reply does not hold the words.

        Example:
            >>> runs.expect(turn=2).contains("vegetarian")
        """

        def ok(r: Row) -> bool:
            said = str(r.get("text") or "")
            return words in said if case else words.lower() in said.lower()

        return self.check(f"contains({words!r})", ok)

    def within_ms(
        self, ms: float, *, column: str = "to_first_output_ms", quantile: float | None = None
    ) -> Expectation:
        """Each run's ``column`` latency is at most ``ms``, or that quantile over the runs is.

        Without ``quantile`` a run with no value in the column fails; with it, the quantile
        of the values there are is checked, and the failure lists the five slowest runs.

        Args:
            ms: The bound, in ms.
            column: A latency column (``LATENCY_COLUMNS``), or ``turn_ms``, ``audio_ms``,
                ``tool_ms`` or ``tool_hop_ms``.
            quantile: Check this quantile over the runs (``0.95``, say) rather than each run.

        Returns:
            The expectation, to chain on.

        Raises:
            ValueError: When ``column`` is not a latency or duration column.
            AssertionError: When a run (or the quantile) is over ``ms`` or has no value.

        Example:
            >>> runs.expect(turn=1).within_ms(1200)
            >>> runs.expect(turn=1).within_ms(1500, column="to_first_audio_ms", quantile=0.95)
        """
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
        """The turn called the tool ``name`` in every run.

        Args:
            name: The tool's name.

        Returns:
            The expectation, to chain on.

        Raises:
            AssertionError: When some run's turn did not call it.

        Example:
            >>> runs.expect(turn=2).called("get_menu")
        """
        return self.check(f"called({name!r})", lambda r: name in list(r.get("tools") or []))

    def completed(self) -> Expectation:
        """Every response of the turn completed, and the turn had no error, in every run.

        Returns:
            The expectation, to chain on.

        Raises:
            AssertionError: When some run's turn did not complete.

        Example:
            >>> runs.expect(turn=1).completed()
        """
        return self.check("completed()", lambda r: r.get("status") == "completed")

    def judged(self, judge: Judge | str, *, at_least: float | None = None) -> Expectation:
        """The judge scored this turn at least ``at_least`` in every run.

        A ``per="run"`` judge's score of each whole run counts. Judge first:
        ``await runs.judge(judge)``. A judgement with an error fails, with the error; the
        failure lists each failing run's score, reason and the agent's words.

        Args:
            judge: A ``Judge``, or a judge's name.
            at_least: The lowest passing score; by default the judge's ``pass_at`` (for a
                name, its rows' ``passed`` decides).

        Returns:
            The expectation, to chain on.

        Raises:
            TypeError: When ``judge`` is neither a ``Judge`` nor a name.
            AssertionError: When this turn has no judgement by that judge, or some run scored
                below the bound.

        Example:
            >>> await runs.judge(judge)
            >>> runs.expect(turn=2).judged(judge, at_least=4)
        """
        name = judge if isinstance(judge, str) else getattr(judge, "name", None)
        if not isinstance(name, str):
            raise TypeError(f"judged() takes a Judge or a judge's name, not {judge!r}")
        if at_least is None and not isinstance(judge, str):
            at_least = judge.pass_at
        what = f"judged({name!r}" + (f", at_least={at_least:g})" if at_least is not None else ")")
        table = self.runs.judged
        mine = [] if table is None else [
            r for r in table[table["judge"] == name].to_dict("records")
        ]  # fmt: skip
        turn = self.rows[0]["turn"]
        runs = {r["run"] for r in self.rows}
        by_run = {}
        for r in mine:
            if r["run"] in runs and (_na(r.get("turn")) or r["turn"] == turn):
                by_run[r["run"]] = r
        if not by_run:
            raise AssertionError(
                f"expect({self.where}).{what}: no judgement by {name!r} of this turn: await "
                "runs.judge(judge) first"
            )

        def ok(row: Row) -> bool:
            got = by_run.get(row["run"])
            if got is None or _na(got.get("score")):
                return False
            if at_least is None:
                return bool(got.get("passed"))
            return bool(got["score"] >= at_least)

        bad = [r for r in self.rows if not ok(r)]
        if bad:
            lines = [f"expect({self.where}).{what}: {len(bad)} of {len(self.rows)} run(s) failed"]
            for r in bad:
                got = by_run.get(r["run"], {})
                score = "none" if _na(got.get("score")) else got["score"]
                line = f"{self.run_of(r)}: "
                line += f"score={score} reason={_text(got.get('reason'))!r}"
                if not _na(got.get("error")):
                    line += f" error={got['error']!r}"
                elif not got:
                    line += " (this run was not judged)"
                lines.append(line + f" text={str(r.get('text') or '')[:120]!r}")
            raise AssertionError("\n".join(lines))
        return self

    def __repr__(self) -> str:
        return f"<Expectation {self.where}: {len(self.rows)} row(s)>"


_quantile = quantile  # within_ms() has a parameter of that name


def _na(value: Any) -> bool:
    """None, NaN or pandas' NA (an empty cell of the judged table)."""
    try:
        return bool(value is None or value != value)
    except (TypeError, ValueError):  # pandas.NA refuses bool()
        return True


def _text(value: Any) -> str:
    return "" if _na(value) else str(value)
