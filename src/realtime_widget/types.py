"""The handle types a user gets back, for type hints and ``isinstance``:
``from realtime_widget.types import Reply, Runs, Recording``.

None of these is built by hand: the widget returns them (``w.ask()`` a :class:`Reply`,
``w.say()`` a :class:`Clip`, ``w.wait_for()`` an :class:`EventWaiter`, ``w.ready()`` a
:class:`Ready`, ``w.recording`` a :class:`Recording`, ``w.controls()`` a
:class:`ControlPanel`, ``w.tool_functions`` :class:`Tool` values, ``w.events`` the
:class:`EventLog`, ``w.run_script()`` :class:`Runs` of :class:`Run`, and ``runs.expect()`` an
:class:`Expectation`). Every awaitable handle is a :class:`Pending`.
"""

from __future__ import annotations

from ._clips import Clip
from ._controls import ControlPanel
from ._delivery import MidCellDeliveryError
from ._log import EventLog
from ._pending import Pending
from ._recording import Recording
from ._tools import Tool
from ._waits import EventWaiter, Ready, Reply
from .experiments import Expectation, Run, Runs, Script

__all__ = [
    "Clip",
    "ControlPanel",
    "EventLog",
    "EventWaiter",
    "Expectation",
    "MidCellDeliveryError",
    "Pending",
    "Ready",
    "Recording",
    "Reply",
    "Run",
    "Runs",
    "Script",
    "Tool",
]
