"""Experiments: one script of turns, played across session variants and repeats, as data.

``session.run_script(script, variants={...}, repeat=3)`` plays every turn of a
:class:`Script` in each (variant, repeat) run and returns :class:`Runs`: one row per turn
(``runs.turns()``), per-variant statistics (``runs.summary()``), a figure (``runs.plot()``),
the turns' recordings side by side (``runs.listen()``), a Parquet set (``runs.to_parquet()`` /
:meth:`Runs.read_parquet`) and assertions (``runs.expect()``) that work as well over a saved
set as over a live one. ``session.tune(...)`` searches the settings instead of trying a grid
(:class:`Tuning`).

Turn kinds: :class:`TextTurn`, :class:`SpokenTurn`, :class:`AudioTurn` (what ``Script``
builds from strings and dicts), :class:`PausesTurn`, :class:`BargeInTurn` and
:class:`NoiseTurn` (turn-taking), and :class:`SavedTurn` (a turn read back from a saved set).
A custom kind subclasses :class:`Turn` and plays through its :class:`TurnContext`.

Noise, phone lines and gain are :class:`realtime_widget.media.Condition`; judges and
simulated callers live in :mod:`realtime_widget.evaluate`.
"""

from __future__ import annotations

from .._public import publish as _publish
from ._expectations import Expectation
from ._runs import Run, Runs
from ._script import (
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
from ._storage import COLUMNS, LATENCY_COLUMNS
from ._tune import Tuning
from ._turn_taking import BargeInTurn, NoiseTurn, PausesTurn

__all__ = [
    "COLUMNS",
    "LATENCY_COLUMNS",
    "AudioTurn",
    "BargeInTurn",
    "Expectation",
    "Heard",
    "NoiseTurn",
    "PausesTurn",
    "Run",
    "Runs",
    "SavedTurn",
    "Script",
    "SpokenTurn",
    "TextTurn",
    "Tuning",
    "Turn",
    "TurnContext",
    "TurnRecords",
    "TurnSource",
]

_publish(__name__, globals(), __all__)
