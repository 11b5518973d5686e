"""Audio conditions for scripted speech: noise at a signal-to-noise ratio, a phone line, gain.

A :class:`Condition` transforms a spoken turn's audio before it reaches the call, the same on
every repeat (seeded). Pass one to ``session.say(..., condition=...)``, or several to
``run_script(..., conditions={...})`` as a second axis beside the variants.

The built-in noises are :data:`NOISE_NAMES`; a file or an array of samples works too.

Needs the ``conditions`` extra (numpy, scipy, soxr): ``pip install "realtime-widget[conditions]"``.
Importing this package does not import them; applying a condition does.

Example:
    >>> from realtime_widget.media import NOISE_NAMES, Condition
    >>> NOISE_NAMES
    ('white', 'pink', 'brown', 'babble')
    >>> clip = w.say("A table for two, please", condition=Condition(noise="pink", snr_db=5))
"""

from __future__ import annotations

from .._public import publish as _publish
from ._conditions import NOISE_NAMES, Condition

__all__ = ["NOISE_NAMES", "Condition"]

_publish(__name__, globals(), __all__)
