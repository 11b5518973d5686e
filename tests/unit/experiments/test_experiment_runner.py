"""The runner: a script played across session variants and repeats against a scripted page
(no browser), with every figure exact; cancelling, interrupting, a fresh call per run, progress,
and the recordings of one turn side by side."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from realtime_widget import Runs, Script, _delivery, experiments
from realtime_widget._recording import Recording
from realtime_widget.experiments import _progress as progress
from tests.conftest import pretend_live
from tests.helpers import seam
from tests.helpers.service_page import (
    FIRST_DELTA_MS,
    SCRIPT,
    SPEEDS,
    live,
    make_widget,
)


@pytest.fixture
def w():
    widget = make_widget()
    yield widget
    widget.close()


async def test_a_grid_is_one_row_per_turn_with_every_latency_and_the_audio_time(w) -> None:
    live(w)
    runs = await w.run_script(SCRIPT, variants=SPEEDS, repeat=2)
    assert runs is Runs.last() and runs.done and not runs.cancelled
    df = runs.turns()
    assert len(df) == 2 * 2 * 2
    assert list(df.columns) == list(tuple(experiments.COLUMNS))
    assert set(df.status) == {"completed"}
    # runs interleave the variants, repeat by repeat
    assert [(r.variant, r.repeat) for r in runs.runs] == [
        ("normal", 1),
        ("fast", 1),
        ("normal", 2),
        ("fast", 2),
    ]
    # every latency column of turns(), from the same code: response.create -> first delta
    assert (df.to_first_delta_ms == FIRST_DELTA_MS).all()
    assert (df.to_first_output_ms == FIRST_DELTA_MS).all()
    assert (df.to_first_audio_ms == FIRST_DELTA_MS).all()  # audio started with the first word
    assert (df.to_created_ms == 10.0).all()
    assert df.trigger.tolist() == ["text"] * 8
    assert df.text.tolist()[:2] == ["You said: Hello there!", "You said: Anything vegetarian?"]
    assert (df.total_tokens == 7).all() and (df.responses == 1).all()
    # the agent's audio lasts its length / speed
    by = df.groupby(["variant", "turn"]).audio_ms.mean()
    for turn in (1, 2):
        assert by["normal", turn] / by["fast", turn] == pytest.approx(1.5, rel=0.01)
    assert (df.turn_ms > df.audio_ms).all()
    # each run keeps its seed (stable per variant and repeat), session and log slice
    seeds = {(r.variant, r.repeat): r.seed for r in runs.runs}
    assert len(set(seeds.values())) == 4
    again = await w.run_script(SCRIPT, variants=SPEEDS, repeat=2)
    assert {(r.variant, r.repeat): r.seed for r in again.runs} == seeds
    fast = runs.runs[1]
    assert fast.session["audio"]["output"]["speed"] == 1.5
    assert fast.confirmed == {"audio": {"output": {"speed": 1.5}}}
    assert fast.events is not None and fast.events.turns().shape[0] == 2
    sent = [
        r["event"]["response"]["metadata"]
        for r in fast.events.of_type("response.create", direction="client")
    ]
    assert all(m["rtw_seed"] == str(fast.seed) for m in sent)
    timing = runs.timing()
    assert timing["turns_s"] == pytest.approx(df.turn_ms.sum() / 1000.0)
    assert timing["wall_s"] is not None and timing["ratio"] is not None


async def test_each_run_is_one_session_update_from_an_empty_conversation(w) -> None:
    page = live(w)
    w.send_text("an earlier message")  # the conversation has an item before the runs
    before = w.speed
    runs = await w.run_script(SCRIPT, variants=SPEEDS, repeat=2)
    for run in runs.runs:
        log = run.events
        assert log is not None
        updates = log.of_type("session.update", direction="client")
        # one update where the speed differs from the run before (the first run is the
        # session as it was), none where it does not
        assert len(updates) == int(run.index > 1)
        # the run's first user item is its own: what came before was deleted first
        assert log.of_type("conversation.item.delete", direction="client")
    # every run saw the same conversation: only its own turns
    assert page.user == ["an earlier message", *["Hello there!", "Anything vegetarian?"] * 4]
    # the session is put back as it was
    assert w.speed == before
    assert page.speed == before


async def test_the_same_script_and_variant_give_the_same_texts_and_latencies(w) -> None:
    live(w)
    cols = ["variant", "turn", "text", "status", *experiments.LATENCY_COLUMNS, "audio_ms"]
    first = (await w.run_script(SCRIPT, variants=SPEEDS)).turns()[cols]
    second = (await w.run_script(SCRIPT, variants=SPEEDS)).turns()[cols]
    assert first.equals(second)


async def test_a_failing_turn_is_a_row_with_its_error_and_the_run_goes_on(w) -> None:
    live(w, silent=("nobody answers this",))
    script = Script(["nobody answers this", "Hello there!"])
    runs = await w.run_script(script, timeout=0.2)
    df = runs.turns()
    assert df.status.tolist() == ["error", "completed"]
    assert "no response" in df.error[0] or "did not finish" in df.error[0]
    assert df.text[1] == "You said: Hello there!"
    summary = runs.summary()
    assert summary.loc["session", "completion_rate"] == 0.5
    with pytest.raises(AssertionError) as err:
        runs.expect(turn=1).completed()
    assert "status=error" in str(err.value) and "nobody" not in str(err.value).split("text=")[0]


async def test_a_tool_turn_waits_for_the_answer_to_the_tools_output(w) -> None:
    def get_menu() -> dict:
        """Today's menu."""
        return {"soup": "tomato"}

    w.tool(get_menu)
    live(w, threaded=True, delay_s=0.005)
    runs = await w.run_script(["What is on the menu?", "Thanks"], timeout=5)
    df = runs.turns()
    assert df.status.tolist() == ["completed", "completed"]
    assert df.responses.tolist() == [2, 1]
    assert df.tools[0] == ["get_menu"] and df.tool_calls[0] == 1
    assert df.text[0] == "The menu is soup."
    runs.expect(turn=1).called("get_menu").contains("soup").completed()
    with pytest.raises(AssertionError) as err:
        runs.expect(turn=2).called("get_menu")
    words = str(err.value)
    assert "called('get_menu')" in words and "1 of 1" in words and "You said: Thanks" in words


async def test_cancelling_keeps_what_finished(w) -> None:
    page = live(w, threaded=True, delay_s=0.03)
    runs = w.run_script(SCRIPT, variants=SPEEDS, repeat=3)
    while len(runs.runs) < 2:
        await asyncio.sleep(0.005)
    runs.cancel()
    await runs
    assert runs.cancelled and "stopped" in repr(runs)
    assert runs.runs[0].status == "completed" and len(runs.runs[0].rows) == 2
    assert runs.runs[-1].status == "cancelled"
    assert len(runs.runs) == 2
    cut = runs.runs[-1].rows
    assert len(cut) <= 2 and all(r["status"] in ("cancelled", "completed") for r in cut)
    assert page.served  # nothing is sent after the cancel settles
    n = len(page.served)
    await asyncio.sleep(0.1)
    assert len(page.served) == n


async def test_an_interrupted_await_stops_the_runs(w) -> None:
    live(w, threaded=True, delay_s=0.03)
    runs = w.run_script(SCRIPT, variants=SPEEDS, repeat=3)
    cell = asyncio.ensure_future(runs.wait())
    await asyncio.sleep(0.15)
    cell.cancel()  # what ipykernel does to an awaiting cell on an interrupt
    with pytest.raises(asyncio.CancelledError):
        await cell
    await runs
    assert runs.cancelled and 0 < len(runs.runs) < 6


async def test_without_await_the_handle_fills_in_and_awaiting_says_why_not(w, monkeypatch) -> None:
    monkeypatch.setattr(_delivery, "PROBE_TIMEOUT_S", 0.1)
    live(w, threaded=True, delay_s=0.005, answer_probes=False)  # a host that holds messages
    runs = w.run_script(SCRIPT, variants=SPEEDS)
    with pytest.raises(_delivery.MidCellDeliveryError, match=r"Runs.last\(\)"):
        await runs
    while not runs.done:  # the next cell: the runs went on all the same
        await asyncio.sleep(0.01)
    assert len(runs.turns()) == 4 and set(runs.turns().status) == {"completed"}


async def test_a_field_that_needs_a_new_call_gets_one(w) -> None:
    page = live(w)

    def connect() -> None:  # the page's new call, confirmed by the service
        call = w.call_number + 1
        pretend_live(w, call)
        page.timed(call, [("server", {"type": "session.updated", "session": {}}, 1.0)])

    w.connect = connect  # type: ignore[method-assign]
    variants = {"Clive": {"voice": "Clive"}, "Ashley": {"voice": "Ashley"}}
    runs = await w.run_script(["Hi"], variants=variants, fresh_call={"voice"})
    assert [r.fresh_call for r in runs.runs] == [False, True]
    assert [r.call_number for r in runs.runs] == [1, 2]
    assert runs.runs[1].session["audio"]["output"]["voice"] == "Ashley"
    assert set(runs.turns().status) == {"completed"}


def test_bad_arguments_fail_before_anything_runs(w) -> None:
    live(w)
    with pytest.raises(TypeError, match="unknown session field"):
        w.run_script(["hi"], variants={"x": {"colour": "red"}})
    with pytest.raises(Exception, match="speed"):
        w.run_script(["hi"], variants={"x": {"speed": 9}})
    with pytest.raises(ValueError, match="repeat"):
        w.run_script(["hi"], repeat=0)
    with pytest.raises(ValueError, match="non-empty"):
        Script(["hi", ""])
    with pytest.raises(TypeError, match=r"Script\.audio"):
        Script([3])
    with pytest.raises(RuntimeError, match="event loop"):
        w.run_script(["hi"])  # no loop here: a plain script cannot drive a call


async def test_listen_puts_each_variants_recording_side_by_side(w) -> None:
    np = pytest.importorskip("numpy")
    live(w)
    runs = await w.run_script(SCRIPT, variants=SPEEDS)
    first, last = runs.turns().started_ms.min(), runs.turns().ended_ms.max()
    frames = int((last - first + 2000) * 16)  # 16 kHz
    rec = Recording._from_pcm(1, 16000, first - 1000, np.full((frames, 2), 1000, np.int16))
    rec._log = w.events
    for run in runs.runs:
        run.recording = rec
    players = runs.listen(turn=2)
    assert set(players.clips) == {"normal", "fast"}
    page = players._repr_html_()
    assert page.count("<audio") == 4 and "normal" in page and "fast" in page
    fast = players.clips["fast"]
    assert fast is not None and fast.duration_s < players.clips["normal"].duration_s
    nothing = Runs(SCRIPT, {"v": {}}, 1)
    assert "not run" in nothing.listen()._repr_html_()


async def test_progress_shows_variant_and_turn_and_stops_on_its_button(w, monkeypatch) -> None:
    pytest.importorskip("ipywidgets")
    shown: list[Any] = []
    monkeypatch.setattr(progress, "in_kernel", lambda: True)
    monkeypatch.setattr("IPython.display.display", shown.append)
    live(w)
    runs = await w.run_script(SCRIPT, variants=SPEEDS)
    bar, button, label = shown[0].children
    assert bar.value == bar.max == 4 and button.disabled
    assert "4/4 turns completed" in label.value and "Runs done" in label.value
    page = seam.posting(w).__self__
    page.threaded, page.delay_s = True, 0.03
    shown.clear()
    runs = w.run_script(SCRIPT, variants=SPEEDS, repeat=5)
    await asyncio.sleep(0.1)
    assert "repeat 1/5" in shown[0].children[2].value or runs.runs[0].repeat == 1
    shown[0].children[1].click()
    await runs
    assert runs.cancelled and len(runs.runs) < 10 and page.served
