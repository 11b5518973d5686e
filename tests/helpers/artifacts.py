"""What the tests keep for people to look at, under ``test-artifacts/``: screenshots, and the
executed copies of the shipped notebooks that the docs site renders (``scripts/docs``).

An executed copy carries, in its metadata, which test ran it and how, and the screenshot of its
widget when the test took one: a static page cannot run the widget's front end (its call needs
a kernel), so the site shows the picture in the widget's place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
EXECUTED = ARTIFACTS / "notebooks"
METADATA_KEY = "realtime_widget_docs"


def keep_executed_notebook(
    nb: Any, name: str, *, executed_by: str, how: str, screenshot: str | None = None
) -> Path:
    """Save ``nb`` (a notebook node, or the path of a saved notebook) as the executed copy of
    ``notebooks/<name>``, noting ``executed_by`` (the test file) and ``how`` it ran, and the
    file name of its widget's screenshot under ``test-artifacts/``."""
    if not isinstance(nb, nbformat.NotebookNode):
        nb = nbformat.read(nb, as_version=4)
    nb.metadata[METADATA_KEY] = {
        "executed_by": executed_by,
        "how": how,
        **({"screenshot": screenshot} if screenshot else {}),
    }
    EXECUTED.mkdir(parents=True, exist_ok=True)
    path = EXECUTED / name
    nbformat.write(nb, path)
    return path
