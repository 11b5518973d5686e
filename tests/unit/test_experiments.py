"""Experiments: a script played across session variants and repeats, as tables, statistics,
files and assertions. The service is a scripted page (no browser): it answers session updates,
item creates and deletes, and each response.create with a spoken reply whose audio lasts the
reply's length divided by the session's speed, on a clock of its own, so every figure is exact."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from typing import Any

import pytest

from realtime_widget import Runs, Script, _awaiting, _experiments
from realtime_widget._experiments import turn_rows
from realtime_widget._recording import Recording
from tests.conftest import pretend_live
from tests.unit.scripted_page import FakePage
from tests.unit.test_widget import Service, widget_on

FIRST_DELTA_MS = 120.0
CHARS_PER_S = 15.0


class ServicePage(FakePage):
    """A page and the service behind it. ``silent`` texts get no response (a turn that times
    out); ``delay_s`` with ``threaded=True`` answers from a timer thread."""

    def __init__(self, w: Any, *, silent: tuple[str, ...] = (), **kw: Any) -> None:
        super().__init__(w, reply_text="", **kw)
        self.speed = 1.0
        self.items: list[str] = []
        self.user: list[str] = []
        self.silent = silent
        self.ids = itertools.count(1)
        self.served: list[list[dict[str, Any]]] = []

    def serve(self, call: int, events: list[dict[str, Any]]) -> None:
        self.served.append(events)
        out: list[tuple[str, dict[str, Any], float]] = []
        for ev in events:
            out.append(("client", ev, 1.0))
            kind = ev["type"]
            if kind == "session.update":
                speed = ev["session"].get("audio", {}).get("output", {}).get("speed")
                self.speed = speed if speed is not None else self.speed
                session = {"audio": {"output": {"speed": self.speed}}}
                out.append(("server", {"type": "session.updated", "session": session}, 3.0))
            elif kind == "conversation.item.create":
                item = dict(ev["item"], id=f"item_{next(self.ids)}")
                self.items.append(item["id"])
                if item.get("role") == "user":
                    self.user.append(item["content"][0]["text"])
                out.append(("server", {"type": "conversation.item.added", "item": item}, 2.0))
            elif kind == "conversation.item.delete":
                self.items.remove(ev["item_id"])
                out.append(
                    ("server", {"type": "conversation.item.deleted", "item_id": ev["item_id"]}, 1.0)
                )
            elif kind == "response.create":
                out += self.respond(ev, events)
        self.timed(call, out)

    def respond(self, ev: dict[str, Any], batch: list[dict[str, Any]]) -> list[Any]:
        last = self.user[-1] if self.user else ""
        if last in self.silent:
            return []
        rid = f"resp_{next(self._responses)}"
        meta = ev.get("response", {}).get("metadata")
        created = {
            "type": "response.created",
            "response": {"id": rid, "metadata": meta, "output_modalities": ["audio"]},
        }
        tool_output = [e for e in batch if e.get("item", {}).get("type") == "function_call_output"]
        tools = [t["name"] for t in self.w.tools]
        if "menu" in last and "get_menu" in tools and not tool_output:
            item = {
                "type": "function_call",
                "name": "get_menu",
                "call_id": "call_1",
                "arguments": "{}",
                "id": f"item_{next(self.ids)}",
            }
            self.items.append(item["id"])
            return [
                ("server", created, 5.0),
                (
                    "server",
                    {"type": "response.output_item.added", "response_id": rid, "item": item},
                    5.0,
                ),
                (
                    "server",
                    {"type": "response.output_item.done", "response_id": rid, "item": item},
                    5.0,
                ),
                (
                    "server",
                    {
                        "type": "response.done",
                        "response": {
                            "id": rid,
                            "status": "completed",
                            "output": [item],
                            "usage": {"total_tokens": 7},
                        },
                    },
                    5.0,
                ),
            ]
        said = "The menu is soup." if tool_output else f"You said: {last}"
        audio_ms = len(said) / CHARS_PER_S * 1000.0 / self.speed
        words = said.split(" ")
        step = audio_ms / len(words)
        item_id = f"item_{next(self.ids)}"
        self.items.append(item_id)
        added = {"type": "conversation.item.added", "item": {"id": item_id, "role": "assistant"}}
        return [
            ("server", created, 10.0),
            ("server", added, 2.0),
            (
                "server",
                {"type": "output_audio_buffer.started", "response_id": rid},
                FIRST_DELTA_MS - 12.0,
            ),
            *[
                (
                    "server",
                    {
                        "type": "response.output_audio_transcript.delta",
                        "response_id": rid,
                        "delta": (" " if i else "") + word,
                    },
                    0.0 if i == 0 else step,
                )
                for i, word in enumerate(words)
            ],
            (
                "server",
                {
                    "type": "response.output_audio_transcript.done",
                    "response_id": rid,
                    "transcript": said,
                },
                1.0,
            ),
            (
                "server",
                {
                    "type": "response.done",
                    "response": {
                        "id": rid,
                        "status": "completed",
                        "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
                    },
                },
                1.0,
            ),
            ("server", {"type": "output_audio_buffer.stopped", "response_id": rid}, step - 2.0),
        ]

    def timed(self, call: int, items: list[tuple[str, dict[str, Any], float]]) -> None:
        recs = []
        for direction, event, dt in items:
            self.clock += dt
            recs.append(
                {"seq": next(self._seq), "dir": direction, "t_ms": self.clock, "event": event}
            )
        self.deliver({"kind": "events", "call": call, "page": "", "records": recs})


@pytest.fixture
def w():
    widget, _ = widget_on(Service())
    yield widget
    widget.close()


def live(w: Any, **kw: Any) -> ServicePage:
    page = ServicePage(w, **kw)
    pretend_live(w)
    return page


SPEEDS = {"normal": {"speed": 1.0}, "fast": {"speed": 1.5}}
SCRIPT = Script(["Hello there!", Script.text("Anything vegetarian?")])


async def test_a_grid_is_one_row_per_turn_with_every_latency_and_the_audio_time(w) -> None:
    live(w)
    runs = await w.run_script(SCRIPT, variants=SPEEDS, repeat=2)
    assert runs is Runs.last() and runs.done and not runs.cancelled
    df = runs.turns
    assert len(df) == 2 * 2 * 2
    assert list(df.columns) == list(_experiments.ROW_COLUMNS)
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
    cols = ["variant", "turn", "text", "status", *_experiments.LATENCY_COLUMNS, "audio_ms"]
    first = (await w.run_script(SCRIPT, variants=SPEEDS)).turns[cols]
    second = (await w.run_script(SCRIPT, variants=SPEEDS)).turns[cols]
    assert first.equals(second)


async def test_a_failing_turn_is_a_row_with_its_error_and_the_run_goes_on(w) -> None:
    live(w, silent=("nobody answers this",))
    script = Script(["nobody answers this", "Hello there!"])
    runs = await w.run_script(script, timeout=0.2)
    df = runs.turns
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
    df = runs.turns
    assert df.status.tolist() == ["completed", "completed"]
    assert df.responses.tolist() == [2, 1]
    assert df.tools[0] == ["get_menu"] and df.tool_calls[0] == 1
    assert df.text[0] == "The menu is soup."
    runs.expect(turn=1).called("get_menu").contains("soup").completed()
    with pytest.raises(AssertionError) as err:
        runs.expect(turn=2).called("get_menu")
    words = str(err.value)
    assert "called('get_menu')" in words and "1 of 1" in words and "You said: Thanks" in words


def test_summary_percentiles_and_completion_from_rows() -> None:
    runs = Runs(Script(["a"]), {"A": {}, "B": {}}, 5)
    lat = {"A": [100.0, 200.0, 300.0, 400.0, 500.0], "B": [50.0, 50.0, 50.0, 50.0, None]}
    for v, values in lat.items():
        for i, ms in enumerate(values, 1):
            run = _experiments.Run(v, i, i, 0, {})
            row = dict.fromkeys(_experiments.ROW_COLUMNS)
            row.update(
                variant=v,
                repeat=i,
                turn=1,
                status="completed" if ms else "error",
                audio_ms=1000.0,
                turn_ms=1500.0,
                tools=[],
                **dict.fromkeys(_experiments.LATENCY_COLUMNS, ms),
            )
            run.rows = [row]
            runs.runs.append(run)
    s = runs.summary()
    assert s.loc["A", "to_first_output_ms_p50"] == 300.0
    assert s.loc["A", "to_first_output_ms_p95"] == pytest.approx(480.0)  # numpy's linear rule
    assert s.loc["B", "to_first_output_ms_p50"] == 50.0
    assert s.loc["A", "completion_rate"] == 1.0 and s.loc["B", "completion_rate"] == 0.8
    assert s.loc["A", "audio_s"] == 5.0 and s.loc["A", "audio_s_per_turn"] == 1.0
    assert s.loc["A", "runs"] == 5 and s.loc["B", "turns"] == 5
    runs.expect(turn=1, variant="A").within_ms(500)
    runs.expect(turn=1).within_ms(480, quantile=0.95)
    with pytest.raises(AssertionError, match="the quantile is 496"):
        runs.expect(turn=1, variant="A").within_ms(400, quantile=0.99)
    with pytest.raises(AssertionError) as err:
        runs.expect(turn=1).within_ms(250)
    assert "4 of 10" in str(err.value)  # 300, 400, 500 and B's missing one
    with pytest.raises(AssertionError, match="no such turn"):
        runs.expect(turn=3)
    fig = runs.plot()
    assert len(fig.axes) == 5  # four latencies and the audio time, one figure


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
    cols = ["variant", "repeat", "turn", "text", "seed", *_experiments.LATENCY_COLUMNS]
    assert saved.turns[cols].equals(runs.turns[cols])
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
    monkeypatch.setattr(_awaiting, "PROBE_TIMEOUT_S", 0.1)
    live(w, threaded=True, delay_s=0.005, answer_probes=False)  # a host that holds messages
    runs = w.run_script(SCRIPT, variants=SPEEDS)
    with pytest.raises(_awaiting.MidCellDeliveryError, match=r"Runs.last\(\)"):
        await runs
    while not runs.done:  # the next cell: the runs went on all the same
        await asyncio.sleep(0.01)
    assert len(runs.turns) == 4 and set(runs.turns.status) == {"completed"}


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
    assert set(runs.turns.status) == {"completed"}


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


def test_turn_rows_from_a_recorded_log_with_a_clip_turn() -> None:
    """Rows from records alone: a clip turn measured from its end, and a turn with no reply."""
    np = pytest.importorskip("numpy")
    t0 = 1_700_000_000_000.0
    evs = [
        ("local", {"type": "say.started", "clip_id": "c1"}, 0),
        ("server", {"type": "input_audio_buffer.speech_started"}, 100),
        ("local", {"type": "say.ended", "clip_id": "c1"}, 1500),
        ("server", {"type": "input_audio_buffer.speech_stopped"}, 1900),
        (
            "server",
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "transcript": "order a pizza",
            },
            2000,
        ),
        (
            "server",
            {"type": "response.created", "response": {"id": "r1", "output_modalities": ["audio"]}},
            2010,
        ),
        ("server", {"type": "output_audio_buffer.started", "response_id": "r1"}, 2100),
        ("local", {"type": "audio.audible", "response_id": "r1"}, 2150),
        (
            "server",
            {
                "type": "response.output_audio_transcript.done",
                "response_id": "r1",
                "transcript": "One pizza.",
            },
            2600,
        ),
        (
            "server",
            {"type": "response.done", "response": {"id": "r1", "status": "completed"}},
            2610,
        ),
        ("server", {"type": "output_audio_buffer.stopped", "response_id": "r1"}, 3100),
        (
            "client",
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "user", "content": []},
            },
            3200,
        ),
        ("client", {"type": "response.create"}, 3201),
    ]
    records = [
        {
            "seq": i,
            "call_number": 1,
            "direction": d,
            "type": e["type"],
            "t_ms": t0 + t,
            "t_kernel_ms": t0 + t,
            "event": e,
        }
        for i, (d, e, t) in enumerate(evs)
    ]
    script = Script([Script.audio((np.zeros(1600, dtype=np.int16), 16000)), "Anyone?"])
    rows = turn_rows(
        records,
        [(0, 11, None), (11, 13, "TimeoutError: no response")],
        script,
        {"variant": "v", "repeat": 1, "run": 1, "seed": 5, "call_number": 1},
    )
    clip, typed = rows
    assert clip["kind"] == "audio" and clip["prompt"] == "array" and clip["trigger"] == "clip"
    assert clip["heard"] == "order a pizza" and clip["text"] == "One pizza."
    assert clip["to_first_output_ms"] == 650.0  # say.ended -> first audible: voice to voice
    assert clip["to_first_audio_ms"] == 650.0 and clip["audio_ms"] == 1000.0
    assert clip["turn_ms"] == 3100.0 and clip["status"] == "completed"
    assert typed["status"] == "error" and typed["error"] == "TimeoutError: no response"
    assert typed["responses"] == 0 and typed["to_first_output_ms"] is None
    assert math.isnan(Runs(script, {"v": {}}, 1).summary().empty or float("nan"))


async def test_listen_puts_each_variants_recording_side_by_side(w) -> None:
    np = pytest.importorskip("numpy")
    live(w)
    runs = await w.run_script(SCRIPT, variants=SPEEDS)
    first, last = runs.turns.started_ms.min(), runs.turns.ended_ms.max()
    frames = int((last - first + 2000) * 16)  # 16 kHz
    rec = Recording.from_pcm(1, 16000, first - 1000, np.full((frames, 2), 1000, np.int16))
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
    monkeypatch.setattr(_experiments, "_in_kernel", lambda: True)
    monkeypatch.setattr("IPython.display.display", shown.append)
    live(w)
    runs = await w.run_script(SCRIPT, variants=SPEEDS)
    bar, button, label = shown[0].children
    assert bar.value == bar.max == 4 and button.disabled
    assert "4/4 turns completed" in label.value
    page = w._post.__self__
    page.threaded, page.delay_s = True, 0.03
    shown.clear()
    runs = w.run_script(SCRIPT, variants=SPEEDS, repeat=5)
    await asyncio.sleep(0.1)
    assert "repeat 1/5" in shown[0].children[2].value or runs.runs[0].repeat == 1
    shown[0].children[1].click()
    await runs
    assert runs.cancelled and len(runs.runs) < 10 and page.served
