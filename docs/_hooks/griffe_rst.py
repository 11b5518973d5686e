"""A griffe extension for the API reference: the reST that docstrings carry, read as Markdown.

Docstrings follow the Google convention but name objects with Sphinx roles
(``:class:`Runs` ``, ``:meth:`Runs.read_parquet` ``) and introduce examples with ``::``. The
pages are Markdown, so a role becomes inline code (its target's last part after a ``~``) and a
trailing ``::`` a colon (the indented block after it is already a code block in Markdown).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const|term):`(~?)([^`]+)`")
LITERAL = re.compile(r"(\S)::[ \t]*$", re.M)


def _role(m: re.Match[str]) -> str:
    target = m.group(2).split(".")[-1] if m.group(1) else m.group(2)
    return f"`{target}`"


def markdown(text: str) -> str:
    return LITERAL.sub(r"\1:", ROLE.sub(_role, text))


class RstToMarkdown(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **_: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
