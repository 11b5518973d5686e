"""The handle types a user gets back, for type hints and ``isinstance``.

``from realtime_widget.types import Reply, Runs, Recording``.

None of these is built by hand: the widget returns them (``w.ask()`` a :class:`Reply`,
``w.say()`` a :class:`Clip`, ``w.wait_for()`` an :class:`EventWaiter`, ``w.ready()`` a
:class:`Ready`, ``w.model_endpoint()`` a :class:`ModelEndpoint`, ``w.recording`` a
:class:`Recording`, ``w.controls()`` a :class:`ControlPanel`, ``w.tool_functions``
:class:`Tool` values, ``w.events`` the
:class:`EventLog`, ``w.run_script()`` :class:`Runs` of :class:`Run`, and ``runs.expect()`` an
:class:`Expectation`; a ``Caller`` played by ``run_script`` is its runs' ``script``, a
:class:`CallerScript`; ``RealtimeSession.connect()`` a :class:`Connecting`, awaited for the
connected session). Every other awaitable handle is a :class:`Pending`.
"""

from __future__ import annotations

from ._clips import Clip
from ._controls import ControlPanel
from ._delivery import MidCellDeliveryError
from ._headless import Connecting
from ._log import EventLog
from ._pending import Pending
from ._public import publish as _publish
from ._recording import Recording
from ._tools import Tool
from ._waits import EventWaiter, Ready, Reply
from .evaluate import CallerScript, ModelEndpoint
from .experiments import Expectation, Run, Runs, Script

__all__ = [
    "CallerScript",
    "Clip",
    "Connecting",
    "ControlPanel",
    "EventLog",
    "EventWaiter",
    "Expectation",
    "MidCellDeliveryError",
    "ModelEndpoint",
    "Pending",
    "Ready",
    "Recording",
    "Reply",
    "Run",
    "Runs",
    "Script",
    "Tool",
]

_publish(__name__, globals(), __all__)
