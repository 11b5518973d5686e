"""The script and its turn kinds: what a turn is, how a new kind plays itself and adds its own
columns, a source that makes its turns up as the run goes, and one grid per widget at a time."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import pytest

from realtime_widget import Script
from realtime_widget.experiments import Run, SavedTurn, TextTurn, Turn, TurnContext
from realtime_widget.experiments import _storage as storage
from tests.helpers.service_page import SCRIPT, SPEEDS, ServicePage, live, make_widget


@pytest.fixture
def w():
    widget = make_widget()
    yield widget
    widget.close()


def test_the_fingerprint_is_a_digest_of_kinds_texts_and_audio() -> None:
    np = pytest.importorskip("numpy")
    clip = Script.audio((np.zeros(160, dtype=np.int16), 16000))
    script = Script(["Hello", clip])
    h = hashlib.sha1(usedforsecurity=False)
    for kind, said, audio in (("text", "Hello", b""), ("audio", "", clip.audio)):
        h.update(kind.encode() + said.encode() + audio + b"\x00")
    assert script.fingerprint == h.hexdigest()[:12]  # what sets written before carry
    assert Script(["Hello", "Hullo"]).fingerprint != Script(["Hello", "Hello"]).fingerprint
    assert script.describe() == [
        {"turn": 1, "kind": "text", "prompt": "Hello", "audio_ms": None},
        {"turn": 2, "kind": "audio", "prompt": "array", "audio_ms": 10.0},
    ]
    assert repr(script) == "Script([Script.text('Hello'), Script.audio('array')])"


class Knock(Turn):
    """A kind of turn of its own: types a line with the page's clock noted, and measures how
    many server events its turn saw."""

    kind = "knock"

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.played: list[int] = []

    async def play(self, ctx: TurnContext) -> None:
        self.played.append(ctx.run.index)
        ctx.port.log_local({"type": "knock.played", "run": ctx.run.index})
        await ctx.session.ask(self.text, timeout=ctx.timeout).settled()
        await ctx.end.settled(ctx.timeout)

    def measure(self, records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        return {"server_events": sum(1 for r in records if r["direction"] == "server")}


async def test_a_new_kind_plays_itself_and_adds_its_columns(w, monkeypatch) -> None:
    live(w)
    knock = Knock("Knock knock")
    monkeypatch.setitem(storage.COLUMNS, "server_events", "Int64")  # the kind's column
    runs = await w.run_script(Script(["Hello there!", knock]), variants=SPEEDS)
    assert knock.played == [1, 2]
    df = runs.turns()
    assert df.kind.tolist() == ["text", "knock"] * 2
    assert set(df.status) == {"completed"} and df.text[1] == "You said: Knock knock"
    assert df.server_events.isna().tolist() == [True, False] * 2
    assert (df.server_events[1::2] >= 4).all()  # created, added, audio started ... done
    assert [r["event"]["run"] for r in w.events.of_type("knock.played")] == [1, 2]


class Echo:
    """A source whose next turn repeats what the agent last said: made up as the run goes."""

    def __init__(self, first: str, turns: int) -> None:
        self.first, self.n = first, turns

    def __len__(self) -> int:
        return self.n

    @property
    def fingerprint(self) -> str:
        return f"echo:{self.first}"

    def describe(self) -> list[dict[str, Any]]:
        return [{"turn": 1, "kind": "text", "prompt": self.first, "audio_ms": None}]

    async def turns_for(self, run: Run) -> AsyncIterator[Turn]:
        said = self.first
        for _ in range(self.n):
            yield TextTurn(said)
            await asyncio.sleep(0)  # as a model's answer would come
            said = f"echo {len(run.spans)}"


async def test_a_source_that_makes_its_turns_up_as_it_goes(w) -> None:
    page: ServicePage = live(w)
    runs = await w.run_script(Echo("Hi", 3), variants={"one": {}}, repeat=2)
    assert runs.turns().prompt.tolist() == ["Hi", "echo 1", "echo 2"] * 2
    assert set(runs.turns().status) == {"completed"} and len(runs.runs) == 2
    assert page.user == ["Hi", "echo 1", "echo 2"] * 2
    assert "3-turn script" in runs.plot().get_suptitle()


async def test_a_saved_turn_is_a_row_with_its_error_not_a_crash(w) -> None:
    live(w)
    saved = Script([SavedTurn("audio", "(spoken) hello", 900.0), "Hello there!"])
    runs = await w.run_script(saved, timeout=0.2)
    df = runs.turns()
    assert df.status.tolist() == ["error", "completed"]
    assert (
        "saved set" in df.error[0] and "cannot be played" in df.error[0] and df.kind[0] == "audio"
    )
    assert saved.describe()[0] == {
        "turn": 1, "kind": "audio", "prompt": "(spoken) hello", "audio_ms": 900.0
    }  # fmt: skip


async def test_one_grid_at_a_time_per_widget_and_widgets_apart() -> None:
    a, b = make_widget(), make_widget()
    try:
        live(a, threaded=True, delay_s=0.01)
        live(b, threaded=True, delay_s=0.01)
        first = a.run_script(SCRIPT, progress=False)
        with pytest.raises(RuntimeError, match="still going on this session"):
            a.run_script(SCRIPT)
        other = b.run_script(SCRIPT, progress=False)  # another widget runs beside it
        await asyncio.gather(first.wait(), other.wait())
        assert set(first.turns().status) == set(other.turns().status) == {"completed"}
        again = a.run_script(SCRIPT, progress=False)  # once done, the widget runs the next
        await again
        assert len(again.turns()) == 2
    finally:
        a.close()
        b.close()
