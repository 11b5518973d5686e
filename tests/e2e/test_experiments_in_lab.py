"""A script run across two session variants in a real JupyterLab and Chromium, against the
emulator (the shared Jupyter server and browser: see conftest.py).

One awaiting cell connects and runs a 2-turn typed script over two variants that differ only
in ``speed`` (1.0 and 1.5): every turn completes, the agent's audio of each turn is shorter at
1.5 by the speed ratio (within 15%), and the Parquet set the runs write reads back with pandas
(and DuckDB when it is installed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Lab, Notebook, code_notebook

pytestmark = pytest.mark.e2e

SETUP = """
from realtime_widget import Emulator, RealtimeWidget, Script
emu = Emulator().start()
w = RealtimeWidget(base_url=emu.base_url, api_key=emu.api_key, mic=False)
w
"""
RUN = """
w.connect()
await w.ready(timeout=30)
script = Script(["Hello there.", Script.text("What is the weather in Paris?")])
runs = await w.run_script(script, variants={"speed 1.0": {"speed": 1.0},
                                            "speed 1.5": {"speed": 1.5}})
runs.to_parquet("runs")
print(runs)
"""
READ_BACK = """
import pandas as pd
back = pd.read_parquet("runs")
try:
    import duckdb
    n_duck = duckdb.sql(
        "select count(*) from read_parquet('runs/**/*.parquet', hive_partitioning=true)"
    ).fetchone()[0]
except ImportError:
    n_duck = None
df = runs.turns()
result = {
    "rows": df[["variant", "turn", "status", "audio_ms", "to_first_output_ms", "text",
                "error"]].astype(object).where(df.notna(), None).to_dict("records"),
    "back": len(back), "back_variants": sorted(back.variant.astype(str).unique()),
    "back_audio": sorted(back.audio_ms.round(1).tolist()),
    "duckdb": n_duck, "timing": runs.timing(), "cancelled": runs.cancelled,
    "sessions": [r.confirmed.get("audio", {}).get("output", {}).get("speed") for r in runs.runs],
}
"""


def test_two_speeds_differ_by_their_ratio_in_audio_time(
    shared_lab: Lab, page: Any, folder: str, tmp_path: Path
) -> None:
    book = code_notebook(tmp_path / "experiments_e2e.ipynb", SETUP, RUN)
    name = shared_lab.add(book, folder)
    nb = Notebook.open(page, shared_lab, name, widget_cell=0)
    nb.run_cell(1, timeout=180)  # returns once the cell's awaits are done
    nb.kernel_eval(READ_BACK)
    got = nb.kernel_json("result")
    print("experiments:", got)
    rows = got["rows"]
    assert len(rows) == 4 and not got["cancelled"], got
    assert all(r["status"] == "completed" and r["text"] for r in rows), rows
    assert got["sessions"] == [1.0, 1.5], got  # each variant confirmed by session.updated
    for turn in (1, 2):
        slow = next(
            r["audio_ms"] for r in rows if r["variant"] == "speed 1.0" and r["turn"] == turn
        )
        fast = next(
            r["audio_ms"] for r in rows if r["variant"] == "speed 1.5" and r["turn"] == turn
        )
        assert slow and fast, rows
        assert slow / fast == pytest.approx(1.5, rel=0.15), (turn, slow, fast)
    # the Parquet set, one file per run partitioned by variant, reads back
    assert got["back"] == 4 and got["back_variants"] == ["speed 1.0", "speed 1.5"], got
    assert got["back_audio"] == sorted(round(r["audio_ms"], 1) for r in rows), got
    assert got["duckdb"] in (None, 4), got
    files = sorted(p.name for p in (shared_lab.root / folder / "runs").rglob("*.parquet"))
    assert files == ["repeat-001.parquet", "repeat-001.parquet"], files
    nb.kernel_eval("w.close(); emu.stop()")
