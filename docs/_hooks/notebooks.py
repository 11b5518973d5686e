"""A mkdocs hook: the example notebooks, rendered with the outputs of a real run.

Nothing is executed here. The test command runs every shipped notebook (the headless tier under
papermill, the browser tier cell by cell in JupyterLab) and keeps each executed copy under
``test-artifacts/notebooks/`` with a note of which test ran it and how
(``tests/helpers/artifacts.py``).
Before a build this hook stages, for each notebook in ``notebooks/``, into ``docs/examples/``
(generated, gitignored):

- the executed copy when there is one and its code is the shipped notebook's code (papermill's
  injected parameters aside). The widget's saved state is dropped (rendering it would need the
  widget manager from a CDN, and the widget's call needs a kernel anyway); where the test took a
  screenshot of the widget, the picture takes the widget's place in its cell's output;
- otherwise the notebook as shipped, with a visible note that it is shown unexecuted (no test
  run kept a copy, or the kept copy is older than the notebook).

The executed copy the browser tier keeps wins over the headless tier's (it runs later, and shows
the notebook as a reader runs it, with its default ``transport="page"``).

It also writes ``docs/examples/index.md``: the list, saying for each what is shown.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "notebooks"
EXECUTED = ROOT / "test-artifacts" / "notebooks"
SCREENSHOTS = ROOT / "test-artifacts"
STAGE = ROOT / "docs" / "examples"
META = "realtime_widget_docs"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

# the order of the examples page and the nav (mkdocs.yml lists the same files)
ORDER = [
    "quickstart", "tuning", "tools", "scripted", "experiments", "evaluation", "conditions",
    "tuning_search", "app",
]  # fmt: skip
# the notebooks no test executes, and why (shown as shipped, saying so)
NOT_RUN = {
    "experiments": "the test suite does not run it (its 8-run grid adds minutes; "
    "`tests/e2e/test_experiments_in_lab.py` runs a smaller grid of its own)",
    "app": "it is a Voilà app: `tests/e2e/test_hosts_voila.py` serves it as a page and drives "
    "it there, and Voilà keeps no executed notebook",
}


def _code(nb: dict[str, Any]) -> list[str]:
    """The code of a notebook's cells, as a reader wrote it."""
    return [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in nb["cells"]
        if c["cell_type"] == "code"
        and "injected-parameters" not in c.get("metadata", {}).get("tags", [])
    ]


def _markdown(text: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "id": "rtw-docs-note", "metadata": {}, "source": text}


def _picture(outputs: list[dict[str, Any]], png: bytes, caption: str) -> list[dict[str, Any]]:
    """The cell's outputs with its first widget view replaced by the screenshot."""
    out, done = [], False
    for o in outputs:
        if not done and WIDGET_VIEW in o.get("data", {}):
            o = {
                "output_type": "display_data",
                "metadata": {},
                "data": {"image/png": base64.b64encode(png).decode(), "text/plain": caption},
            }
            done = True
        out.append(o)
    return out


def _strip_widget_views(nb: dict[str, Any]) -> None:
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            o.get("data", {}).pop(WIDGET_VIEW, None)


def stage_one(name: str) -> tuple[dict[str, Any], str]:
    """The notebook to render for ``notebooks/<name>.ipynb``, and a line saying what it is."""
    shipped = json.loads((SHIPPED / f"{name}.ipynb").read_text(encoding="utf-8"))
    kept_path = EXECUTED / f"{name}.ipynb"
    kept = json.loads(kept_path.read_text(encoding="utf-8")) if kept_path.exists() else None
    if kept is not None and _code(kept) == _code(shipped):
        info = kept.get("metadata", {}).get(META, {})
        by, how = info.get("executed_by", "a test"), info.get("how", "")
        note = (
            f"> **Executed by the test suite**: `{by}` ran this notebook {how}; the outputs "
            "below are that run's."
        )
        shot = info.get("screenshot")
        shot_path = SCREENSHOTS / shot if shot else None
        if shot_path is not None and shot_path.exists():
            png = shot_path.read_bytes()
            for cell in kept["cells"]:
                if any(WIDGET_VIEW in o.get("data", {}) for o in cell.get("outputs", [])):
                    caption = "The widget in that run (a screenshot the test took)"
                    cell["outputs"] = _picture(cell["outputs"], png, caption)
                    note += " The widget is shown as the test's screenshot of it."
                    break
        _strip_widget_views(kept)
        kept["cells"].insert(1, _markdown(note))
        return kept, f"executed by `{by}`"
    stale = kept is not None
    if stale:
        why = "the copy a test kept is older than this notebook"
    else:
        why = NOT_RUN.get(name, "no test run has kept an executed copy here (`scripts/test` does)")
    note = f"> **Shown unexecuted**: {why}, so the outputs are missing."
    _strip_widget_views(shipped)
    shipped["cells"].insert(1, _markdown(note))
    return shipped, "**shown unexecuted**" + (" (the executed copy is stale)" if stale else "")


def _write(path: Path, text: str) -> None:
    # unchanged files are left alone, so `mkdocs serve` does not see a change and rebuild
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def stage() -> None:
    STAGE.mkdir(parents=True, exist_ok=True)
    names = [n for n in ORDER if (SHIPPED / f"{n}.ipynb").exists()]
    extra = sorted(p.stem for p in SHIPPED.glob("*.ipynb") if p.stem not in ORDER)
    if extra:  # a new notebook: add it to ORDER and to mkdocs.yml's nav
        raise SystemExit(f"docs: notebooks missing from the examples page: {extra}")
    rows = []
    for name in names:
        nb, what = stage_one(name)
        _write(STAGE / f"{name}.ipynb", json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        title = next(
            ("".join(c["source"]).splitlines()[0].lstrip("# ") for c in nb["cells"]
             if c["cell_type"] == "markdown"), name,
        )  # fmt: skip
        rows.append(f"| [{title}]({name}.ipynb) | `notebooks/{name}.ipynb` | {what} |")
    index = (
        "# Example notebooks\n\n"
        "The notebooks in `notebooks/`, rendered with the outputs of the test suite's own run of "
        "them (nothing runs when the site is built): the headless tier executes them under "
        "papermill with the kernel holding the call, and the browser tier runs them cell by cell "
        "in JupyterLab, where a screenshot shows the widget. Run one yourself with "
        "`scripts/demo` (the quickstart) or open it in JupyterLab. `notebooks/marimo_app.py` "
        "is the marimo version of the one-widget app "
        "(see [the hosts](../getting-started.md#marimo)).\n\n"
        "| notebook | file | shown |\n| --- | --- | --- |\n" + "\n".join(rows) + "\n"
    )
    _write(STAGE / "index.md", index)


def on_config(config: Any, **_: Any) -> Any:
    stage()
    return config
