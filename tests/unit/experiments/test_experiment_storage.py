"""The turns table and its files: one column -> dtype table for the frame and the Parquet set,
a set that reads back whole, and a set written before a column existed."""

from __future__ import annotations

import json

import pytest

from realtime_widget import Runs, experiments
from realtime_widget.experiments import _storage as storage
from tests.helpers.service_page import SCRIPT, live, make_widget


@pytest.fixture
def w():
    widget = make_widget()
    yield widget
    widget.close()


async def test_runs_write_a_parquet_set_that_reads_back_for_checks(w, tmp_path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    live(w)
    names = {"Clive calm": {"speed": 1.0}, "Ashley/fast": {"speed": 1.5}}
    runs = await w.run_script(SCRIPT, variants=names, repeat=2)
    out = runs.to_parquet(tmp_path / "runs")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
    assert files == [
        "variant=Ashley%2Ffast/repeat-001.parquet",
        "variant=Ashley%2Ffast/repeat-002.parquet",
        "variant=Clive%20calm/repeat-001.parquet",
        "variant=Clive%20calm/repeat-002.parquet",
    ]
    # pandas (pyarrow) reads the set, the variant from the partition
    back = pd.read_parquet(out)
    assert len(back) == 8 and set(back.variant.astype(str)) == set(names)
    assert back.to_first_output_ms.notna().all()
    # all of it comes back: rows, seeds, sessions, logs
    saved = Runs.read_parquet(out)
    cols = ["variant", "repeat", "turn", "text", "seed", *experiments.LATENCY_COLUMNS]
    assert saved.turns()[cols].equals(runs.turns()[cols])
    assert [r.seed for r in saved.runs] == [r.seed for r in runs.runs]
    assert saved.runs[1].session == runs.runs[1].session
    assert len(saved.runs[0].events) == len(runs.runs[0].events)
    manifest = json.loads((out / "_runs.json").read_text())
    assert manifest["script"][1]["prompt"] == "Anything vegetarian?"
    # checks over the saved runs, with the evidence
    saved.expect(turn=2).contains("VEGETARIAN").within_ms(200)
    with pytest.raises(AssertionError) as err:
        saved.expect(turn=2, variant="Clive calm").contains("vegan")
    words = str(err.value)
    assert "2 of 2" in words and "variant='Clive calm' repeat=1" in words
    assert "text='You said: Anything vegetarian?'" in words and "seed=" in words


def test_the_frame_and_the_parquet_schema_take_their_types_from_one_table() -> None:
    pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    row = {c: None for c in storage.COLUMNS}
    row.update(variant="v", repeat=1, turn=1, run=1, seed=3, call_number=1, responses=1)
    row.update(tool_calls=0, tools=None, total_tokens=7, to_first_output_ms=120.0)
    df = storage.frame([row])
    assert list(df.columns) == list(storage.COLUMNS) == list(tuple(experiments.COLUMNS))
    pandas_of = {"float64": "float64", "int64": "int64", "Int64": "Int64", "string": "string"}
    pandas_of["boolean"] = "boolean"
    for col, dtype in storage.COLUMNS.items():
        if dtype == "list<string>":
            assert df[col].tolist() == [[]], col  # a missing list is an empty one
        else:
            assert str(df[col].dtype) == pandas_of[dtype], col
    arrow_of = {
        "float64": pa.float64(),
        "int64": pa.int64(),
        "Int64": pa.int64(),
        "boolean": pa.bool_(),
        "string": pa.string(),
        "list<string>": pa.list_(pa.string()),
    }
    schema = storage.arrow_schema()
    assert schema.names == [c for c in storage.COLUMNS if c != "variant"]
    assert all(schema.field(c).type == arrow_of[storage.COLUMNS[c]] for c in schema.names)
    assert storage.arrow_schema(with_partition=True).names == list(storage.COLUMNS)


async def test_a_set_written_before_a_column_existed_reads_back_with_it_empty(
    w, tmp_path, monkeypatch
) -> None:
    pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    live(w)
    runs = await w.run_script(SCRIPT, variants={"A": {}})
    out = runs.to_parquet(tmp_path / "runs")
    # the file as an older writer left it: no "heard" or "tools" columns, and one of a newer
    # writer's that this version does not know
    path = out / "variant=A" / "repeat-001.parquet"
    table = pq.read_table(path).drop_columns(["heard", "tools"])
    table = table.append_column("judged_by", pa.array(["someone", "someone"]))
    pq.write_table(table, path)
    back = Runs.read_parquet(out)
    df = back.turns()
    assert list(df.columns) == list(storage.COLUMNS)
    assert df.heard.isna().all() and df.tools.tolist() == [[], []]
    assert df.text.tolist() == runs.turns().text.tolist()
    assert [r["judged_by"] for r in back.rows] == ["someone", "someone"]  # kept as it came
    # and a column added to the table later reads as empty from this set
    monkeypatch.setitem(storage.COLUMNS, "cut_off", "Int64")
    later = Runs.read_parquet(out).turns()
    assert "cut_off" in later.columns and later.cut_off.isna().all()


def test_a_folder_without_a_manifest_is_refused_by_name(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"_runs\.json"):
        Runs.read_parquet(tmp_path)
    (tmp_path / "_runs.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a realtime-widget runs manifest"):
        Runs.read_parquet(tmp_path)
