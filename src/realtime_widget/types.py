"""The handle types a user gets back, for type hints and ``isinstance``.

None of the handles is built by hand: the widget returns them.

- ``w.ask()`` returns a :class:`Reply`, ``w.say()`` a :class:`Clip`, ``w.wait_for()`` an
  :class:`EventWaiter` and ``w.ready()`` a :class:`Ready`.
- ``w.model_endpoint()`` returns a :class:`ModelEndpoint`, ``w.recording`` a :class:`Recording`,
  ``w.controls()`` a :class:`ControlPanel`, ``w.tool_functions`` :class:`Tool` values, and
  ``w.events`` the :class:`EventLog`.
- ``w.run_script()`` returns :class:`Runs` of :class:`Run`, and ``runs.expect()`` an
  :class:`Expectation`; a ``Caller`` played by ``run_script`` is its runs' ``script``, a
  :class:`CallerScript`.
- ``RealtimeSession.connect()`` returns a :class:`Connecting`, awaited for the connected
  session.
- Every other awaitable handle is a :class:`Pending`.

:class:`Script` (the turns a grid plays, which you do build) and :class:`MidCellDeliveryError`
(raised when an awaiting cell cannot hear the page) are here too, for the same type hints.

Example:
    >>> from realtime_widget.types import Reply, Runs
    >>> def first_words(reply: Reply) -> str:
    ...     return reply.text[:40]
    >>> isinstance(w.run_script(["Hi", "Book a table"]), Runs)
    True
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
