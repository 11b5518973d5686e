"""Public classes show the public module they are imported from.

That is ``realtime_widget.RealtimeWidget``, not ``realtime_widget._widget.RealtimeWidget``, in
reprs, help() and tracebacks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any


def publish(module: str, namespace: Mapping[str, Any], names: Iterable[str]) -> None:
    """Set ``__module__`` to ``module`` on the private-module classes and functions in ``names``.

    A package's own public names win over a re-export's: the top-level package publishes last.
    """
    for name in names:
        obj = namespace.get(name)
        where = getattr(obj, "__module__", None)
        if (
            isinstance(where, str)
            and where.startswith("realtime_widget")
            and (module == "realtime_widget" or "._" in where)
        ):
            with contextlib.suppress(AttributeError, TypeError):  # a union alias, say
                obj.__module__ = module
