"""notebooks/tuning_search.ipynb in JupyterLab: the search runs headless in the page's kernel,
then its best settings go to a live widget in the page, whose call the service confirms with
them (the search's own assertions run unattended in tests/headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ARTIFACTS, Lab, Notebook

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "notebooks" / "tuning_search.ipynb"


def test_the_best_settings_go_live_in_a_widget(shared_lab: Lab, page: Any, folder: str) -> None:
    name = shared_lab.add(BOOK, folder)
    nb = Notebook.open(page, shared_lab, name)
    cleanup = nb.run_book(BOOK, timeout=240)
    page.locator("[data-testid=rtw-status]").first.wait_for(timeout=30_000)  # the widget shows
    # the widget took the winner's fields (the search's best, as update_session takes them)
    assert nb.kernel_json(
        "bool(tuning.best_fields) and all(getattr(w, k) == v for k, v in tuning.best_fields.items())"
    )
    page.locator("[data-testid=rtw-connect]").first.click()  # a person connects the winner
    nb.poll("w.status == 'connected' and len(w.events.of_type('session.updated')) >= 1", 30)
    # what the page's call opened with is what the search found, as the service confirmed it
    confirmed = nb.kernel_json(
        "{'voice': w.server_session['audio']['output']['voice'],"
        " 'speed': w.server_session['audio']['output']['speed'],"
        " 'eagerness': (w.server_session['audio']['input']['turn_detection'] or {}).get('eagerness')}"
    )
    wanted = nb.kernel_json(
        "{'voice': w.voice, 'speed': w.speed, 'eagerness': (w.turn_detection or {}).get('eagerness')}"
    )
    assert confirmed == wanted, (confirmed, wanted)
    assert nb.kernel_json("len(tuning.trials())") >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".rtw-root").first.screenshot(path=str(ARTIFACTS / "tuning_search.png"))
    nb.kernel_eval("w.close()")
    nb.run_cell(cleanup)
    nb.keep_executed(
        shared_lab, name, test="tests/e2e/test_tuning_search_in_lab.py",
        screenshot="tuning_search.png",
    )  # fmt: skip
