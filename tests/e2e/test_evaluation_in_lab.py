"""notebooks/evaluation.ipynb, cell by cell, in a real JupyterLab and Chromium against the
emulator (the shared Jupyter server and browser: see conftest.py).

A spoken caller (its lines from the emulator's stand-in model, its voice from the emulator's
``/v1/audio/speech``) talks to two variants for three turns until its goal is met; a turn judge
and a run judge score the runs; the summary, the failing rows and the recordings show; and every
event the service sent is schema-valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Lab, Notebook
from tests.protocol_checks import check_stream

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "notebooks" / "evaluation.ipynb"
PARAMETERS, WIDGET = 1, 2  # its cells: the papermill parameters, then the widget

RESULT = """
_df = runs.turns()
_local = [r["event"] for r in w.events if r["direction"] == "local"]
result = {
    "turns": _df[["variant", "turn", "kind", "status", "said", "heard", "transcript", "caller_ms",
                  "speech_ms", "to_first_output_ms", "error"]]
        .astype(object).where(_df.notna(), None).to_dict("records"),
    "conversations": runs.conversations()[["variant", "turns", "goal_met", "ended_by", "error"]]
        .astype(object).to_dict("records"),
    "judged": runs.judged[["judge", "per", "run", "turn", "score", "passed", "error", "cached"]]
        .astype(object).where(runs.judged.notna(), None).to_dict("records"),
    "summary": list(runs.summary().columns),
    "back_judged": len(back.judged),
    "speech": [e.get("speech") for e in _local if e["type"] == "caller.turn"],
    "ended": [e["ended_by"] for e in _local if e["type"] == "caller.ended"],
    "players": type(runs.listen(turn=1)).__name__,
    "key_in_rows": emu.api_key in _df.to_json() + runs.judged.to_json() + repr(runs.script),
    "server": [r["event"] for r in w.events if r["direction"] == "server"],
}
"""


def test_the_evaluation_notebook_runs_a_spoken_caller_and_two_judges(
    shared_lab: Lab, page: Any, folder: str
) -> None:
    name = shared_lab.add(BOOK, folder)
    nb = Notebook.open(page, shared_lab, name)
    nb.run_cell(PARAMETERS)  # transport = "page": the widget holds the call
    nb.run_cell(WIDGET)
    page.locator("[data-testid=rtw-status]").first.wait_for(timeout=30_000)
    cleanup = nb.run_book(BOOK, start=2)  # the parameters' and the widget's cells ran already
    nb.kernel_eval(RESULT)
    got = nb.kernel_json("result")
    server = got.pop("server")
    print("evaluation notebook:", got)

    turns = got["turns"]
    # three spoken caller turns per variant, each answered, its voice from the speech endpoint
    assert [(t["variant"], t["turn"]) for t in turns] == [
        (v, n) for v in ("Clive", "Ashley") for n in (1, 2, 3)
    ], turns
    assert all(t["kind"] == "caller" and t["status"] == "completed" for t in turns), turns
    assert all(t["said"] and t["heard"] and t["transcript"] for t in turns), turns
    assert all(t["caller_ms"] is not None and t["speech_ms"] is not None for t in turns), turns
    assert got["speech"] == ["endpoint"] * 6, got["speech"]
    # the stand-in caller works through its goal, then says it is met
    assert [t["said"] for t in turns[:3]] == [
        "Book a table for two.",
        "At 8 pm.",
        "At a vegetarian place.",
    ], turns
    assert got["ended"] == ["goal", "goal"]
    assert [c["ended_by"] for c in got["conversations"]] == ["goal", "goal"]
    assert all(c["goal_met"] and c["turns"] == 3 for c in got["conversations"])
    # judged per turn and per run, every answer read
    judged = got["judged"]
    per_turn = [j for j in judged if j["judge"] == "vegetarian"]
    per_run = [j for j in judged if j["judge"] == "booking"]
    assert len(per_turn) == 6 and {j["per"] for j in per_turn} == {"turn"}, judged
    assert len(per_run) == 2 and all(j["turn"] is None for j in per_run), judged
    assert all(j["error"] is None and j["score"] is not None for j in judged), judged
    assert {"vegetarian_score", "vegetarian_pass_rate", "booking_score"} <= set(got["summary"])
    assert got["back_judged"] == 8 and got["players"] == "Players"
    assert not got["key_in_rows"]
    # every event the service sent is schema-valid
    check_stream(server)
    nb.run_cell(cleanup)
