"""Experiments: one script of turns, played across session variants and repeats, as data.

``session.run_script(script, variants={...}, repeat=3)`` plays every turn of a
:class:`Script` in each (variant, repeat) run and returns :class:`Runs`: one row per turn
(``runs.turns()``), per-variant statistics (``runs.summary()``), a figure (``runs.plot()``),
the turns' recordings side by side (``runs.listen()``), a Parquet set (``runs.to_parquet()`` /
:meth:`Runs.read_parquet`) and assertions (``runs.expect()``) that work as well over a saved
set as over a live one. ``session.tune(...)`` searches the settings instead of trying a grid
(:class:`Tuning`).

Turn kinds: :class:`TextTurn` (what ``Script`` makes of a plain string), :class:`AudioTurn`
(a clip; both it and the turn-taking kinds are :class:`SpokenTurn` s), :class:`PausesTurn`,
:class:`BargeInTurn` and :class:`NoiseTurn` (turn-taking), and :class:`SavedTurn` (a turn read
back from a saved set). ``Script``'s static factories make them. A custom kind subclasses
:class:`Turn` and plays through its :class:`TurnContext`; anything that makes its turns up as
the run goes (a simulated caller) is a :class:`TurnSource`.

Each run is a :class:`Run`; ``runs.expect(...)`` makes an :class:`Expectation`.
:data:`COLUMNS` lists the turns table's columns and their types, :data:`LATENCY_COLUMNS` the
four felt latencies.

Example:
    >>> from realtime_widget.experiments import Script, Runs
    >>> script = Script(["Hello!", Script.audio("order.wav"), "Anything vegetarian?"])
    >>> runs = await w.run_script(script, variants={"fast": {"speed": 1.3}}, repeat=3)
    >>> runs.summary()
    >>> runs.to_parquet("runs/")
    >>> Runs.read_parquet("runs/").expect(turn=3).contains("vegetarian").within_ms(1200)

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
