"""w.controls(): two-way links, debouncing, and the service's answer shown under the panel."""

from __future__ import annotations

import time
from typing import Any

import pytest
from traitlets import TraitError

from realtime_widget import RealtimeWidget
from realtime_widget._controls import ControlPanel, control_for
from realtime_widget._session import SessionTraits
from realtime_widget._session_guard import SessionGuard
from tests.conftest import pretend_live
from tests.helpers import seam
from tests.helpers.fake_port import FakePort

# Long enough that no timer fires during a test: settle() flushes the debouncer instead,
# so the tests do not depend on the machine's speed.
DEBOUNCE = 30.0


@pytest.fixture
def rig():
    w = RealtimeWidget(api_key="k", base_url="http://127.0.0.1:8")
    sent: list[dict] = []
    seam.set_post(w, sent.append)
    pretend_live(w)
    panel = w.controls(debounce=DEBOUNCE)
    yield w, panel, sent
    w.close()


def updates(sent: list[dict]) -> list[dict]:
    return [e["session"] for m in sent for e in m["events"] if e["type"] == "session.update"]


def settle(panel) -> None:
    assert panel._debouncer.pending or not panel._pending
    panel._debouncer.flush()


def test_panel_starts_from_the_traits(rig) -> None:
    _, panel, sent = rig
    assert panel.voice.value == "Clive" and panel.speed.value == 1.0
    assert panel.modalities.value == "audio + text" and panel.turn_type.value == "semantic_vad"
    assert panel.eagerness.value == "medium" and panel.max_output_tokens.value == "4096"
    assert panel._server_vad_box.layout.display == "none"
    assert sent == []


def test_trait_changes_show_in_the_panel_at_once(rig) -> None:
    w, panel, sent = rig
    w.voice = "Sarah"
    w.turn_detection = {"type": "server_vad", "silence_duration_ms": 900}
    assert panel.voice.value == "Sarah"
    assert panel.turn_type.value == "server_vad" and panel.silence_duration_ms.value == 900
    assert panel._server_vad_box.layout.display is None
    settle(panel)
    # the panel following the traits sends nothing of its own
    assert len(updates(sent)) == 2


def test_a_burst_of_edits_is_one_update(rig) -> None:
    w, panel, sent = rig
    for v in (1.05, 1.1, 1.15, 1.2):
        panel.speed.value = v
    panel.voice.value = "Dennis"
    assert updates(sent) == []  # nothing until it settles
    settle(panel)
    assert updates(sent) == [
        {"type": "realtime", "audio": {"output": {"voice": "Dennis", "speed": 1.2}}}
    ]
    assert w.speed == 1.2 and w.voice == "Dennis"
    assert "waiting for the service" in panel.answer.value


def test_turn_detection_edits(rig) -> None:
    w, panel, sent = rig
    panel.eagerness.value = "high"
    settle(panel)
    assert updates(sent)[-1]["audio"]["input"]["turn_detection"]["eagerness"] == "high"
    panel.turn_type.value = None
    settle(panel)
    assert updates(sent)[-1] == {"type": "realtime", "audio": {"input": {"turn_detection": None}}}
    assert w.turn_detection is None


def test_other_fields(rig) -> None:
    _, panel, sent = rig
    panel.modalities.value = "text"
    panel.max_output_tokens.value = "inf"
    panel.transcription_model.value = ""
    panel.instructions.value = "Be terse."
    settle(panel)
    (u,) = updates(sent)
    assert u["output_modalities"] == ["text"] and u["max_output_tokens"] == "inf"
    assert u["audio"]["input"]["transcription"] is None and u["instructions"] == "Be terse."


def test_an_invalid_edit_is_refused_visibly_and_changes_nothing(rig) -> None:
    w, panel, sent = rig
    panel.max_output_tokens.value = "lots"
    panel.voice.value = "Hades"
    settle(panel)
    assert updates(sent) == []
    assert w.voice == "Clive" and panel.voice.value == "Clive"
    assert "max_output_tokens" in panel.answer.value and "not applied" in panel.answer.value


def test_the_services_answer_shows(rig) -> None:
    w, panel, _ = rig
    seam.from_page(w, {"kind": "events", "call": 1, "records": [
        {"seq": 0, "dir": "server", "t_ms": 1.0, "event": {"type": "session.updated", "session": {"model": "m", "audio": {"output": {"voice": "Sarah", "speed": 1.1}}}}},
    ]}, [])  # fmt: skip
    assert "session.updated" in panel.answer.value and "Sarah" in panel.answer.value
    seam.from_page(w, {"kind": "events", "call": 1, "records": [
        {"seq": 1, "dir": "server", "t_ms": 2.0, "event": {"type": "error", "error": {"type": "invalid_request_error", "message": "Unknown voice", "param": "session.audio.output.voice"}}},
    ]}, [])  # fmt: skip
    assert (
        "refused: Unknown voice" in panel.answer.value
        and "session.audio.output.voice" in panel.answer.value
    )


def test_update_session_is_all_or_nothing(rig) -> None:
    w, _, sent = rig
    with pytest.raises(TraitError, match="speed"):
        w.update_session(voice="Sarah", speed=7)
    assert w.voice == "Clive" and updates(sent) == []
    with pytest.raises(TypeError, match="colour"):
        w.update_session(colour="red")


def test_debouncer_fires_once_after_a_burst_without_an_event_loop() -> None:
    import threading

    from realtime_widget._controls import Debouncer

    fired: list[float] = []
    done = threading.Event()
    d = Debouncer(1.0, lambda: (fired.append(1), done.set()))
    for _ in range(5):
        d()
    assert d.pending and fired == []
    assert done.wait(5)
    assert fired == [1] and not d.pending
    time.sleep(1.2)  # past every cancelled timer's deadline: still once
    assert fired == [1]
    d()
    d.flush()  # flushed: the timer it replaced must not fire as well
    time.sleep(1.2)
    assert fired == [1, 1]


async def test_debouncer_uses_the_running_event_loop() -> None:
    import asyncio

    from realtime_widget._controls import Debouncer

    loop = asyncio.get_running_loop()
    fired: list[str] = []
    d = Debouncer(0.01, lambda: fired.append(threading_name()))
    d()
    d()
    await asyncio.sleep(0.1)
    assert fired == ["MainThread"]  # on the loop's thread, once
    assert d._loop is loop


def threading_name() -> str:
    import threading

    return threading.current_thread().name


class PanelHost(SessionTraits):
    """The widget surface the panel uses, without a widget: traits, callbacks, one status."""

    def __init__(self) -> None:
        super().__init__()
        self.status = "connected"
        self.callbacks: dict[str, list[Any]] = {}

    def on(self, event_type: str, fn: Any) -> None:
        self.callbacks.setdefault(event_type, []).append(fn)

    def off(self, event_type: str, fn: Any) -> None:
        self.callbacks[event_type].remove(fn)

    def update_session(self, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self, name, value)

    def server(self, event: dict[str, Any]) -> None:
        for fn in list(self.callbacks.get(event["type"], [])):
            fn(event)


def voice_refused() -> dict[str, Any]:
    return {"type": "error", "error": {"type": "invalid_request_error", "code": "invalid_value",
            "message": "Unknown voice", "param": "session.audio.output.voice"}}  # fmt: skip


def test_a_rejected_update_shows_under_the_refused_field() -> None:
    host, port = PanelHost(), FakePort()
    guard = SessionGuard(port, lambda _words: None)  # type: ignore[arg-type]
    panel = ControlPanel(host, debounce=DEBOUNCE, guard=guard)  # type: ignore[arg-type]
    assert all(n.layout.display == "none" for n in panel.notes.values())
    port.hear(
        "client", {"type": "session.update", "session": {"audio": {"output": {"voice": "Zed"}}}}
    )
    port.hear("server", voice_refused())
    host.server(voice_refused())
    note = panel.notes["voice"]
    assert note.layout.display is None
    assert "Unknown voice" in note.value and "Zed" in note.value
    # it sits right under the voice control, and no other field shows a note
    children = list(panel.children)
    assert children[children.index(panel.voice) + 1] is note
    assert [n for n, w in panel.notes.items() if w.layout.display is None] == ["voice"]
    # a new value for the field clears it
    panel.voice.value = "Sarah"
    assert note.layout.display == "none" and note.value == ""
    panel.close()
    assert guard._watchers == []


def test_a_refused_first_update_says_it_was_resent() -> None:
    host, port = PanelHost(), FakePort()
    guard = SessionGuard(port, lambda _words: None)  # type: ignore[arg-type]
    panel = ControlPanel(host, debounce=DEBOUNCE, guard=guard)  # type: ignore[arg-type]
    port.hear("client", {"type": "session.update", "session": host.session_config()})
    port.hear("server", {"type": "error", "error": {"type": "invalid_request_error",
              "message": "bad eagerness", "param": "session.audio.input.turn_detection.eagerness"}})  # fmt: skip
    note = panel.notes["eagerness"]
    assert "bad eagerness" in note.value and "sent again without it" in note.value
    assert list(panel._semantic_box.children) == [panel.eagerness, note]
    host.turn_detection = {"type": "semantic_vad", "eagerness": "low"}
    assert note.layout.display == "none"
    panel.close()


def test_without_a_guard_the_errors_param_places_the_note() -> None:
    host = PanelHost()
    panel = ControlPanel(host, debounce=DEBOUNCE)  # type: ignore[arg-type]
    host.server(voice_refused())
    assert "Unknown voice" in panel.notes["voice"].value
    assert "refused: Unknown voice" in panel.answer.value
    assert control_for("session.audio.input.transcription.model") == "transcription_model"
    assert control_for("session.tools[0].name") is None
    panel.close()
