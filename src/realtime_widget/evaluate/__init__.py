"""Model-based evaluation: judges, simulated callers and word error rates.

Judges score turns and runs, simulated callers hold the user's side of a call, and word error rates
measure what a recognizer heard. A :class:`Judge` scores a grid's turns or runs with a chat model on
a rubric (``runs.judge(judge)``); a :class:`Caller` is a turn source for ``run_script`` whose lines
a chat model writes from a persona and a goal (its runs' script is a :class:`CallerScript`). Both
talk to any OpenAI-compatible endpoint (:class:`ModelEndpoint`; Inworld's by default).
:func:`word_error_rate` compares what was said with what was heard.

Needs the ``evaluate`` extra (the ``openai`` client) for judges and callers:
``pip install "realtime-widget[evaluate]"``. The word error rate needs nothing.
"""

from __future__ import annotations

from .._public import publish as _publish
from ._caller import Caller, CallerScript
from ._judge import Judge
from ._models import ModelEndpoint, ModelError
from ._wer import WordErrors, normalized_words, word_error_rate, word_errors

__all__ = [
    "Caller",
    "CallerScript",
    "Judge",
    "ModelEndpoint",
    "ModelError",
    "WordErrors",
    "normalized_words",
    "word_error_rate",
    "word_errors",
]

_publish(__name__, globals(), __all__)
