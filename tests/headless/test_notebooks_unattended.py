"""The shipped notebooks run unattended: papermill executes each with ``transport="websocket"``
(the kernel holds every call over the embedded emulator's WebSocket), with no browser, no
Jupyter server and no INWORLD_API_KEY, and they reach their end with no error shown.

The notebooks run side by side, each in a papermill process of its own (they mostly wait on
real-time audio). What each notebook computed is read in a cell added before its clean-up (as
the browser tests read it from the kernel) and checked as the browser tests check it: rows per
variant and turn, the judged columns, the turn-taking columns, tool calls and their replies,
the recordings.

And the other side: a ``RealtimeWidget`` in a notebook executed with no front end fails its
call within seconds, in words that name ``RealtimeSession``, instead of waiting forever.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest

from tests.helpers.artifacts import keep_executed_notebook
from tests.helpers.headless import KERNEL_NAME, kernel_env
from tests.helpers.protocol_checks import check_stream

# The emulator's sockets are loopback ones; like every test that starts one, these run inside
# the loopback-only namespace (scripts/in-netns).
pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
MARK = "@@rtw-result@@ "
CELL_TIMEOUT_S = 600  # a hung cell fails the test rather than the suite


def marked(nb: Any) -> Any:
    """The value the added reading cell printed on its marked line."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                for line in out["text"].splitlines():
                    if line.startswith(MARK):
                        return json.loads(line[len(MARK) :])
    raise AssertionError("the reading cell printed no result")


def errors_shown(nb: Any) -> list[str]:
    """Every error output, and every stderr stream with a traceback or an error, as the browser
    tests look for them in the page."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {i}: {out['ename']}: {out['evalue']}")
            elif out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = out["text"]
                if "Traceback" in text or "Error" in text:
                    found.append(f"cell {i} (stderr): {text[:2000]}")
    return found


# Notebooks executing side by side. Each spends most of its run waiting on real-time audio (its
# CPU time is about a quarter of its wall time), so together they take little more than the
# longest alone.
AT_ONCE = 3  # four at once gained 13 s and slowed each notebook by 5-10 s
PROCESS_TIMEOUT_S = 900


def with_reading_cell(book: Path, read: str, into: Path) -> Path:
    """``book`` with ``read`` added before its last code cell (its clean-up), written in
    ``into``; ``read`` leaves what it computed in ``result``, which the cell prints, marked."""
    nb = nbformat.read(book, as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), book.name
    last = max(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells.insert(
        last,
        nbformat.v4.new_code_cell(f"{read}\nimport json as _j\nprint({MARK!r} + _j.dumps(result))"),
    )
    source = into / book.name
    nbformat.write(nb, source)
    return source


class Unattended:
    """The shipped notebooks, each executed by papermill's command line (transport="websocket",
    and its own parameters) in a process of its own, ``AT_ONCE`` at a time, in the order given
    (longest first); each test waits for its own and checks it."""

    def __init__(
        self,
        root: Path,
        jupyter_dirs: dict[str, Path],
        kernel_name: str,
        books: dict[str, tuple[str, dict[str, Any]]],
    ) -> None:
        self.pool = ThreadPoolExecutor(AT_ONCE, thread_name_prefix="papermill")
        self.runs = {
            name: self.pool.submit(self._run, NOTEBOOKS / name, root / Path(name).stem,
                                   jupyter_dirs, kernel_name, read, params)
            for name, (read, params) in books.items()
        }  # fmt: skip

    @staticmethod
    def _run(
        book: Path,
        tmp: Path,
        jupyter_dirs: dict[str, Path],
        kernel_name: str,
        read: str,
        params: dict[str, Any],
    ) -> tuple[Path, float, subprocess.CompletedProcess[str]]:
        tmp.mkdir(parents=True)
        source, executed = with_reading_cell(book, read, tmp), tmp / f"executed-{book.name}"
        # no key: the notebook starts its embedded emulator; its own cache of judged answers
        env = {k: v for k, v in os.environ.items() if k != "INWORLD_API_KEY"}
        env.update(kernel_env(jupyter_dirs, tmp / "cache"))
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "papermill", str(source), str(executed),
             "-p", "transport", "websocket",
             *(x for k, v in params.items() for x in ("-p", k, json.dumps(v))),
             "-k", kernel_name, "--cwd", str(tmp),
             "--no-progress-bar", "--execution-timeout", str(CELL_TIMEOUT_S)],
            env=env,
            capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S, check=False,
        )  # fmt: skip
        return executed, time.monotonic() - started, proc

    def result(self, name: str) -> Any:
        """What the notebook's reading cell printed, once the notebook ran to its end with no
        error shown; its executed copy is kept for the docs."""
        executed, took, proc = self.runs[name].result()
        alongside = f"{len(self.runs)} notebooks run, {AT_ONCE} at once"
        print(f"{name}: ran unattended in {took:.0f} s ({alongside})")
        assert executed.exists(), proc.stderr[-4000:]
        out = nbformat.read(executed, as_version=4)
        assert not errors_shown(out), errors_shown(out)
        assert proc.returncode == 0, proc.stderr[-4000:]
        # every cell ran, the clean-up too
        code = [c for c in out.cells if c.cell_type == "code"]
        assert all(c.get("execution_count") for c in code), [c.source[:40] for c in code]
        result = marked(out)
        # the executed notebook as a reader would have it (the docs site renders it): the
        # added reading cell taken out again (papermill's injected parameters cell says how)
        out.cells = [c for c in out.cells if MARK not in c.source]
        keep_executed_notebook(
            out,
            name,
            executed_by="tests/headless/test_notebooks_unattended.py",
            how='papermill with transport="websocket": the kernel held the call, on the '
            "embedded emulator, with no browser",
        )
        return result

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def unattended(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    jupyter_dirs: dict[str, Path],
) -> Iterator[Unattended]:
    """The notebooks whose tests were selected (``test_the_<name>_notebook_runs_unattended``),
    started together on first use."""
    books: dict[str, tuple[str, dict[str, Any]]] = {  # longest first
        "conditions.ipynb": (CONDITIONS_READ, {}),
        "experiments.ipynb": (EXPERIMENTS_READ, {"repeat": 1}),  # its quicker pass: 4 runs
        "evaluation.ipynb": (EVALUATION_READ, {}),
        "tuning_search.ipynb": (TUNING_READ, {}),
        "scripted.ipynb": (SCRIPTED_READ, {}),
        "tools.ipynb": (TOOLS_READ, {}),
    }
    selected = {item.name for item in request.session.items}
    books = {
        name: spec
        for name, spec in books.items()
        if f"test_the_{Path(name).stem}_notebook_runs_unattended" in selected
    }
    runs = Unattended(tmp_path_factory.mktemp("unattended"), jupyter_dirs, KERNEL_NAME, books)
    yield runs
    runs.close()


def server_stream(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The server events as the service sent them: the log keeps an audio delta's size, not
    its audio (``delta_bytes``), so a stand-in payload of that size takes its place."""
    sent = []
    for event in events:
        if "delta_bytes" in event and "delta" not in event:
            event = {k: v for k, v in event.items() if k != "delta_bytes"}
            event["delta"] = ""
        sent.append(event)
    return sent


# -- experiments.ipynb -----------------------------------------------------------------------

EXPERIMENTS_READ = """
_df = runs.turns()
_back = Runs.read_parquet(saved)
result = {
    "type": type(w).__name__,
    "rows": _df[["variant", "repeat", "turn", "kind", "trigger", "status", "text",
                 "to_first_output_ms", "audio_ms"]]
        .astype(object).where(_df.notna(), None).to_dict("records"),
    "summary": runs.summary()["completion_rate"].to_dict(),
    "saved_rows": len(_back.turns()),
    "saved_summary": _back.summary()["completion_rate"].to_dict(),
    "recorded": [r.recording is not None and r.recording.frames > 0 for r in runs.runs],
    "players": type(runs.listen(turn=2)).__name__,
    "server": [r["event"] for r in w.events if r["direction"] == "server"],
}
"""


def test_the_experiments_notebook_runs_unattended(unattended: Unattended) -> None:
    got = unattended.result("experiments.ipynb")
    server = got.pop("server")
    print("experiments, unattended:", {k: v for k, v in got.items() if k != "rows"})
    assert got["type"] == "RealtimeSession"
    rows = got["rows"]
    variants = [f"{v}, {e}" for v in ("Clive", "Ashley") for e in ("low", "high")]
    # four variants, once each (-p repeat 1), three turns each: typed, spoken, typed
    assert [(r["variant"], r["repeat"], r["turn"]) for r in rows] == [
        (v, 1, t) for v in variants for t in (1, 2, 3)
    ], rows
    assert [r["kind"] for r in rows[:3]] == ["text", "audio", "text"], rows[:3]
    assert all(r["status"] == "completed" and r["text"] for r in rows), rows
    assert all(r["to_first_output_ms"] is not None and r["audio_ms"] for r in rows), rows
    assert {r["trigger"] for r in rows if r["kind"] == "audio"} <= {"clip", "speech"}, rows
    assert all("vegetarian" in r["text"].lower() for r in rows if r["turn"] == 3), rows
    assert got["summary"] == {v: 1.0 for v in variants}, got["summary"]
    # the Parquet set reads back as the same runs
    assert got["saved_rows"] == len(rows) and got["saved_summary"] == got["summary"]
    assert got["recorded"] == [True] * 4 and got["players"] == "Players"
    check_stream(server_stream(server))


# -- evaluation.ipynb ------------------------------------------------------------------------

EVALUATION_READ = """
_df = runs.turns()
_local = [r["event"] for r in w.events if r["direction"] == "local"]
result = {
    "type": type(w).__name__,
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
    "recorded": [r.recording is not None and r.recording.frames > 0 for r in runs.runs],
    "key_in_rows": emu.api_key in _df.to_json() + runs.judged.to_json() + repr(runs.script),
    "server": [r["event"] for r in w.events if r["direction"] == "server"],
}
"""


def test_the_evaluation_notebook_runs_unattended(unattended: Unattended) -> None:
    got = unattended.result("evaluation.ipynb")
    server = got.pop("server")
    print("evaluation, unattended:", {k: v for k, v in got.items() if k != "turns"})
    assert got["type"] == "RealtimeSession"
    turns = got["turns"]
    # three spoken caller turns per variant, each answered, its voice from the speech endpoint
    assert [(t["variant"], t["turn"]) for t in turns] == [
        (v, n) for v in ("Clive", "Ashley") for n in (1, 2, 3)
    ], turns
    assert all(t["kind"] == "caller" and t["status"] == "completed" for t in turns), turns
    assert all(t["said"] and t["heard"] and t["transcript"] for t in turns), turns
    assert all(t["caller_ms"] is not None and t["speech_ms"] is not None for t in turns), turns
    assert all(t["to_first_output_ms"] is not None and t["error"] is None for t in turns), turns
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
    assert got["recorded"] == [True, True]  # record=True: both tracks of each run
    assert not got["key_in_rows"]
    check_stream(server_stream(server))


# -- conditions.ipynb ------------------------------------------------------------------------

CONDITIONS_READ = """
df = runs.turns()
cols = ["variant", "condition", "turn", "kind", "status", "error", "responses", "cut_off",
        "end_of_turn_ms", "false_turns", "stop_ms", "heard_ms", "truncated_to_ms", "clip_ms",
        "to_first_output_ms"]
s = runs.summary()
fig = runs.plot("cut_off")
result = {
    "type": type(w).__name__,
    "rows": df[cols].astype(object).where(df[cols].notna(), None).to_dict("records"),
    "summary": {f"{v}/{c}": {k: (None if x != x else x) for k, x in row.items()}
                for (v, c), row in s[["cut_off_rate", "false_turns_per_min", "stop_ms_p50",
                                      "stop_ms_p95", "end_of_turn_ms_p50"]].iterrows()},
    "points": len(fig.axes[0].lines),
    "error": runs.error, "cancelled": runs.cancelled, "record": w.record,
    "recorded": [r.recording is not None and r.recording.frames > 0 for r in runs.runs],
    "barge_s": barge.duration_s,
    "server": [r["event"] for r in w.events if r["direction"] == "server"],
}
"""
NEW_COLUMNS = ("cut_off", "end_of_turn_ms", "false_turns", "stop_ms", "heard_ms",
               "truncated_to_ms")  # fmt: skip


def test_the_conditions_notebook_runs_unattended(unattended: Unattended) -> None:
    got = unattended.result("conditions.ipynb")
    server = got.pop("server")
    print("conditions, unattended:", got)
    assert got["type"] == "RealtimeSession"
    rows = got["rows"]
    assert got["error"] is None and not got["cancelled"], got
    assert len(rows) == 16, rows
    assert [(r["variant"], r["condition"]) for r in rows[::4]] == [
        ("high", "clean"), ("high", "cafe"), ("low", "clean"), ("low", "cafe"),
    ]  # fmt: skip
    by = {(r["variant"], r["condition"], r["kind"]): r for r in rows}
    for (variant, condition, kind), r in by.items():
        where = (variant, condition, kind, r)
        if kind != "noise":
            assert r["end_of_turn_ms"] is not None and r["clip_ms"], where
        if kind == "pauses":
            assert r["status"] == "completed" and r["cut_off"] is not None, where
            if condition == "clean":  # babble can fill the pauses: only silence is certain
                assert r["cut_off"] is (variant == "high"), where  # 250 ms < 900 ms < 1200
        else:
            assert r["cut_off"] is None, where
        if kind == "barge_in":
            assert r["status"] == "completed", where
            # the agent stopped for the caller (the kernel's speaker stops at once; a loaded
            # machine delays the service's cancel, so the bound is loose)
            assert 0 < r["stop_ms"] < 3000, where
            assert r["heard_ms"] > 600 and r["truncated_to_ms"] > 500, where
        else:
            assert r["stop_ms"] is None and r["truncated_to_ms"] is None, where
        if kind == "noise":
            assert r["false_turns"] is not None and r["error"] is None, where
            assert r["clip_ms"] > 1500, where  # Script.noise(2000)
        else:
            assert r["false_turns"] is None, where
        if kind == "audio":  # its reply was cut by the barge-in
            assert r["status"] == "cancelled" and r["to_first_output_ms"], where
    assert by[("high", "clean", "noise")]["false_turns"] == 0  # silence makes no turn
    assert by[("low", "clean", "noise")]["false_turns"] == 0
    for column in NEW_COLUMNS:  # every turn-taking column has values
        assert any(r[column] is not None for r in rows), column
    summary = got["summary"]
    assert set(summary) == {"high/clean", "high/cafe", "low/clean", "low/cafe"}, summary
    assert summary["high/clean"]["cut_off_rate"] == 1.0
    assert summary["low/clean"]["cut_off_rate"] == 0.0
    assert summary["high/clean"]["false_turns_per_min"] == 0.0
    assert all(v["stop_ms_p50"] is not None for v in summary.values()), summary
    assert got["points"] == 4  # one point per variant x condition
    assert got["recorded"] == [True] * 4 and got["record"] is False  # recorded for the runs only
    assert got["barge_s"] > 1  # the last figure: one barge-in's recording, as it was heard
    check_stream(server_stream(server))


# -- tools.ipynb -----------------------------------------------------------------------------

TOOLS_READ = """
def _reply_after(tool):
    outs = [r for r in w.events.of_type("conversation.item.create", direction="client")
            if r["event"]["item"]["type"] == "function_call_output"
            and r["event"]["item"]["call_id"] in [c["call_id"] for c in w.tool_calls
                                                  if c["name"] == tool]]
    for r in w.events.of_type("response.done"):
        out = r["event"]["response"]["output"]
        if outs and out and out[0].get("content") and r["t_ms"] > outs[-1]["t_ms"]:
            part = out[0]["content"][0]
            return part.get("transcript") or part.get("text")
    return None


_rows = turns[turns["tool_calls"] > 0][["tool_ms", "tool_hop_ms"]]
result = {
    "type": type(w).__name__,
    "finished": {r["event"]["name"]: r["event"] for r in w.events.of_type("tool.finished")},
    "replies": {name: _reply_after(name) for name in ("get_weather", "book_table",
                                                       "flaky_forecast")},
    "decisions": [r["event"]["decision"] for r in w.events.of_type("tool.approval")],
    "approved_here": waiting,
    "rows": _rows.astype(object).where(_rows.notna(), None).to_dict("records"),
    "server": [r["event"] for r in w.events if r["direction"] == "server"],
}
"""


def test_the_tools_notebook_runs_unattended(unattended: Unattended) -> None:
    got = unattended.result("tools.ipynb")
    server = got.pop("server")
    print("tools, unattended:", got)
    assert got["type"] == "RealtimeSession"
    finished, replies = got["finished"], got["replies"]
    # a registered tool, named in the user's words: called, run here, its output spoken
    weather = finished["get_weather"]
    assert weather["status"] == "ok" and '"city": "Paris"' in weather["output_preview"]
    assert "temperature is" in replies["get_weather"] and "Paris" in replies["get_weather"]
    # a held call, approved from Python (the notebook's own cell), then run
    assert len(got["approved_here"]) == 1 and got["decisions"] == ["pending", "approved"]
    assert finished["book_table"]["status"] == "ok"
    assert "table is 12" in replies["book_table"]
    # a failing tool: the model reads the error and the conversation goes on
    flaky = finished["flaky_forecast"]
    assert flaky["status"] == "error" and "unreachable" in flaky["error"]
    assert "error is flaky_forecast raised ConnectionError" in replies["flaky_forecast"]
    rows = got["rows"]
    assert len(rows) == 3 and all(r["tool_ms"] is not None for r in rows), rows
    hops = [r["tool_hop_ms"] for r in rows if r["tool_hop_ms"] is not None]
    assert hops and all(-5 < h < 2000 for h in hops), rows  # measured, on one clock
    check_stream(server_stream(server))


# -- scripted.ipynb --------------------------------------------------------------------------

SCRIPTED_READ = """
result = {
    "types": sorted({type(s).__name__ for s in widgets.values()}),
    "replies": {v: {"status": r.status, "text": r.text, "latency": r.latency_ms,
                    "seconds": widgets[v].recording.duration_s} for v, r in replies.items()},
    "latency_rows": len(pd.DataFrame(rows)),
}
"""


def test_the_scripted_notebook_runs_unattended(unattended: Unattended) -> None:
    got = unattended.result("scripted.ipynb")
    print("scripted, unattended:", got)
    assert got["types"] == ["RealtimeSession"]
    replies = got["replies"]
    assert set(replies) == {"Clive", "Ashley"}, replies
    for voice, r in replies.items():
        assert r["status"] == "completed" and r["text"], (voice, r)
        assert r["latency"] and r["seconds"] > 1, (voice, r)
    assert got["latency_rows"] == 2


# -- a widget with no page ---------------------------------------------------------------------

NO_PAGE_SETUP = """
import asyncio
import time
from realtime_widget import Emulator, RealtimeWidget

emu = Emulator().start()
"""
# waiting on the status: the widget's no-page watch fails the call
NO_PAGE_STATUS = """
polled = RealtimeWidget(base_url=emu.base_url, api_key=emu.api_key, mic=False)
polled.connect()
t0 = time.monotonic()
while polled.status == "connecting" and time.monotonic() - t0 < 60:
    await asyncio.sleep(0.1)
print("@@status@@", round(time.monotonic() - t0, 2), polled.status, polled.error)
"""
# awaiting ready(): the cell itself fails
NO_PAGE_READY = """
w = RealtimeWidget(base_url=emu.base_url, api_key=emu.api_key, mic=False)
w
"""
NO_PAGE_AWAIT = """
t0 = time.monotonic()
try:
    w.connect()
    await w.ready(timeout=60)
finally:
    print("@@ready@@", round(time.monotonic() - t0, 2), w.status)
"""


def test_a_widget_no_page_takes_up_fails_in_seconds_naming_realtime_session(
    tmp_path: Path, kernel_name: str
) -> None:
    book = nbformat.v4.new_notebook()
    cells = (NO_PAGE_SETUP, NO_PAGE_STATUS, NO_PAGE_READY, NO_PAGE_AWAIT, "emu.stop()")
    book.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    book.metadata["kernelspec"] = {
        "name": kernel_name,
        "display_name": "tests",
        "language": "python",
    }
    source, executed = tmp_path / "no_page.ipynb", tmp_path / "executed-no_page.ipynb"
    nbformat.write(book, source)
    with pytest.raises(papermill.PapermillExecutionError) as failed:
        papermill.execute_notebook(
            str(source), str(executed), kernel_name=kernel_name, cwd=str(tmp_path),
            progress_bar=False, execution_timeout=120,
        )  # fmt: skip
    print("no page:", failed.value.ename, failed.value.evalue)
    out = nbformat.read(executed, as_version=4)
    # the cell that awaited ready() failed, in words that name the headless way
    assert failed.value.exec_count == 4, failed.value
    assert "RealtimeSession" in failed.value.evalue, failed.value.evalue
    assert "No page took up this call" in failed.value.evalue
    printed = "".join(
        o.get("text", "")
        for c in out.cells
        for o in c.get("outputs", [])
        if o.get("name") == "stdout"
    )
    lines = {ln.split()[0]: ln.split()[1:] for ln in printed.splitlines() if ln.startswith("@@")}
    # well before its 60 s timeout (the probe gives up after 3 s; the watch after 5 s)
    ready_s, ready_status = float(lines["@@ready@@"][0]), lines["@@ready@@"][1]
    assert ready_s < 20 and ready_status == "failed", printed
    status_s, status = float(lines["@@status@@"][0]), lines["@@status@@"][1]
    assert status_s < 20 and status == "failed", printed
    assert "RealtimeSession" in printed.split("@@status@@")[1].split("\n")[0], printed


# -- tuning_search.ipynb ---------------------------------------------------------------------

TUNING_READ = """
table = tuning.trials()
result = {
    "trials": len(table), "complete": int((table["state"] == "complete").sum()),
    "best": tuning.best, "widget_voice": w.voice, "widget_speed": w.speed,
    "runs": len(tuning.runs.runs), "pareto": len(tuning.pareto()),
}
"""


def test_the_tuning_search_notebook_runs_unattended(unattended: Unattended) -> None:
    got = unattended.result("tuning_search.ipynb")
    print("tuning_search, unattended:", got)
    assert got["trials"] == 8 and got["complete"] == 8 and got["runs"] == 8
    assert got["pareto"] >= 1
    best = got["best"]["audio"]["output"]
    # the widget took the winner
    assert got["widget_voice"] == best["voice"] and got["widget_speed"] == best["speed"]
