"""Experiments: one script of turns, played across session variants and repeats, as data.

``w.run_script(script, variants={...}, repeat=3)`` plays every turn of a :class:`Script` in
each (variant, repeat) run and returns :class:`Runs`: one row per turn (``runs.turns()``), per
variant statistics (``summary()``), a figure (``plot()``), the turn's recordings side by side
(``listen()``), a Parquet set (``to_parquet()`` / ``Runs.read_parquet()``) and assertions
(``expect()``) that work as well over a saved set as over a live one. Turns and repeats count
from 1. ``conditions={"clean": None, "cafe": Condition(noise="babble", snr_db=10)}`` adds a
second axis: every variant runs under each condition, its spoken turns' audio transformed.

The modules, one concept each: ``script`` (the script and its turn kinds), ``turn_taking``
(pauses, barge-in and noise-alone turns), ``conditions`` (noise, phone line, gain), ``runs``
(each run and the set's handle), ``rows`` (a run's records folded into rows), ``storage`` (the
column -> dtype table, the frame and the Parquet set), ``summary``, ``expectations``, ``plot``,
``players`` (listening), ``runner`` (the task that plays the runs), ``progress`` and
``feature`` (``Experiments``, what the widget builds).
"""

from __future__ import annotations

from .conditions import Condition
from .expectations import Expectation
from .feature import FRESH_CALL_FIELDS, ISOLATIONS, Experiments
from .rows import turn_rows
from .runs import Run, Runs
from .script import (
    AudioTurn,
    Heard,
    SavedTurn,
    Script,
    SpokenTurn,
    TextTurn,
    Turn,
    TurnContext,
    TurnRecords,
    TurnSource,
)
from .storage import COLUMNS, LATENCY_COLUMNS
from .turn_taking import BargeInTurn, NoiseTurn, PausesTurn

# The turns table's columns, in order.
ROW_COLUMNS = tuple(COLUMNS)

__all__ = [
    "COLUMNS",
    "FRESH_CALL_FIELDS",
    "ISOLATIONS",
    "LATENCY_COLUMNS",
    "ROW_COLUMNS",
    "AudioTurn",
    "BargeInTurn",
    "Condition",
    "Expectation",
    "Experiments",
    "Heard",
    "NoiseTurn",
    "PausesTurn",
    "Run",
    "Runs",
    "SavedTurn",
    "Script",
    "SpokenTurn",
    "TextTurn",
    "Turn",
    "TurnContext",
    "TurnRecords",
    "TurnSource",
    "turn_rows",
]
