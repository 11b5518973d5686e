"""The one way a feature says it needs an optional extra.

Every such error reads alike, ``{what} needs {package}: pip install "realtime-widget[{extra}]"``.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def missing(extra: str, package: str, what: str, hint: str = "") -> ImportError:
    """The error for ``what`` when ``package`` (of the ``extra`` extra) is not installed.

    ``hint`` adds another way to get it (a system package, say).
    """
    more = f"; or {hint}" if hint else ""
    return ImportError(
        f'{what} needs {package}: pip install "realtime-widget[{extra}]"  '
        f"(or: pip install {package}{more})"
    )


def require(module: str, extra: str, what: str, package: str | None = None) -> ModuleType:
    """Import ``module``, or raise :func:`missing` naming the extra that installs it.

    ``package`` names the distribution when it is named otherwise than the module.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing(extra, package or module.split(".")[0], what) from None
