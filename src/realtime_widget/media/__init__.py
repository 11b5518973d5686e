"""Audio conditions for scripted speech: noise at a signal-to-noise ratio, a phone line, gain.

A :class:`Condition` transforms a spoken turn's audio before it reaches the call, the same on
every repeat (seeded). Pass one to ``session.say(..., condition=...)``, or several to
``run_script(..., conditions={...})`` as a second axis beside the variants.

Needs the ``conditions`` extra (numpy, scipy, soxr): ``pip install "realtime-widget[conditions]"``.
Importing this package does not import them; applying a condition does.
"""

from __future__ import annotations

from .._public import publish as _publish
from ._conditions import NOISE_NAMES, Condition

__all__ = ["NOISE_NAMES", "Condition"]

_publish(__name__, globals(), __all__)
