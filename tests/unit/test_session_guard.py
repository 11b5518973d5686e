"""The session guard: refused updates named and resent, drift after session.updated."""

from __future__ import annotations

import json
from typing import Any

import pytest

from realtime_widget._session_guard import (
    RESEND_ID_PREFIX,
    SessionGuard,
    compare,
    param_path,
    without,
)
from tests.helpers.fake_port import FakePort

FIRST = {
    "type": "realtime",
    "instructions": "You are a concierge.",
    "audio": {
        "input": {"transcription": {"model": "bogus/stt", "language": "en"}},
        "output": {"voice": "Sarah", "speed": 1.1},
    },
    "providerData": {"memory": {"enabled": True}},
}


def refused(param: str, message: str = "Invalid value", **extra: Any) -> dict[str, Any]:
    err = {"type": "invalid_request_error", "code": "invalid_value", "message": message}
    return {"type": "error", "error": {**err, "param": param, **extra}}


@pytest.fixture
def rig() -> tuple[FakePort, SessionGuard, list[str]]:
    port = FakePort()
    errors: list[str] = []
    guard = SessionGuard(port, errors.append)  # type: ignore[arg-type]
    return port, guard, errors


def test_a_refused_first_update_is_named_logged_and_resent_without_the_field(rig) -> None:
    port, _guard, errors = rig
    port.hear("client", {"type": "session.update", "session": FIRST})
    port.hear("server", refused("session.audio.input.transcription.model", "Unknown STT model"))
    (rec,) = port.local
    assert rec == {
        "type": "session.rejected",
        "event_id": None,
        "param": "session.audio.input.transcription.model",
        "message": "Unknown STT model",
        "value": "bogus/stt",
        "first": True,
        "resent": True,
    }
    (words,) = errors
    assert "first session.update" in words
    assert "session.audio.input.transcription.model: Unknown STT model" in words
    assert "'bogus/stt'" in words and "sent again without" in words
    (resend,) = port.sent
    assert resend["type"] == "session.update"
    assert resend["event_id"].startswith(RESEND_ID_PREFIX)
    # everything else the user set goes again, the refused field alone is left out
    assert resend["session"]["instructions"] == "You are a concierge."
    assert resend["session"]["audio"]["output"] == {"voice": "Sarah", "speed": 1.1}
    assert resend["session"]["audio"]["input"]["transcription"] == {"language": "en"}
    assert resend["session"]["providerData"] == FIRST["providerData"]
    assert FIRST["audio"]["input"]["transcription"]["model"] == "bogus/stt"  # not mutated


def test_the_resend_goes_once_and_its_own_refusal_is_only_reported(rig) -> None:
    port, guard, errors = rig
    port.hear("client", {"type": "session.update", "session": FIRST})
    port.hear("server", refused("session.audio.input.transcription.model"))
    resend = port.sent[0]
    port.hear("client", resend)  # the page sent it: the guard hears it as a client record
    port.hear(
        "server",
        refused("session.audio.output.voice", "Unknown voice", event_id=resend["event_id"]),
    )
    assert len(port.sent) == 1  # no second resend
    second = port.local[-1]
    assert second["param"] == "session.audio.output.voice" and second["value"] == "Sarah"
    assert second["resent"] is False and second["first"] is False
    assert "resent session.update" in errors[-1] and "Unknown voice" in errors[-1]
    assert guard.pending == 0


def test_a_refused_live_update_is_reported_and_not_resent(rig) -> None:
    port, _guard, errors = rig
    port.hear("client", {"type": "session.update", "session": FIRST})
    port.hear("server", {"type": "session.updated", "session": FIRST})
    port.hear("client", {"type": "session.update", "session": {"audio": {"output": {"speed": 9}}}})
    port.hear("server", refused("session.audio.output.speed", "speed must be <= 1.5"))
    (rec,) = [r for r in port.local if r["type"] == "session.rejected"]
    assert rec["value"] == 9 and rec["first"] is False and rec["resent"] is False
    assert port.sent == []
    assert "a session.update" in errors[0] and "speed must be <= 1.5" in errors[0]


def test_an_error_is_matched_by_event_id_when_the_update_carried_one(rig) -> None:
    port, _guard, errors = rig
    port.hear("client", {"type": "session.update", "event_id": "a", "session": {"model": "m1"}})
    port.hear("client", {"type": "session.update", "event_id": "b", "session": {"model": "m2"}})
    port.hear("server", refused("session.model", event_id="b"))
    assert port.local[-1]["event_id"] == "b" and port.local[-1]["value"] == "m2"
    assert "(b)" in errors[0]
    # an error naming another client event is not about a session update
    port.hear("server", refused("item.id", event_id="zzz"))
    assert len(port.local) == 1


def test_without_an_id_the_error_goes_to_the_oldest_update_carrying_the_field(rig) -> None:
    port, guard, _ = rig
    port.hear("client", {"type": "session.update", "session": {"instructions": "x"}})
    port.hear(
        "client", {"type": "session.update", "session": {"audio": {"output": {"voice": "Q"}}}}
    )
    port.hear("server", refused("session.audio.output.voice"))
    assert port.local[-1]["value"] == "Q" and port.local[-1]["first"] is False
    assert guard.pending == 1  # the first one still waits for its session.updated


def test_errors_about_other_things_are_left_alone(rig) -> None:
    port, guard, errors = rig
    port.hear("client", {"type": "session.update", "session": FIRST})
    port.hear(
        "server",
        {"type": "error", "error": {"type": "invalid_request_error", "code": "response_cancel_not_active", "message": "no active response"}},
    )  # fmt: skip
    assert port.local == [] and errors == [] and guard.pending == 1


def test_drift_names_the_fields_the_service_did_not_take(rig) -> None:
    port, _guard, _ = rig
    port.hear("client", {"type": "session.update", "session": FIRST})
    port.hear("server", {"type": "session.updated", "session": FIRST})
    assert port.local == []  # taken as sent: nothing to say
    live = {"type": "realtime", "providerData": {"memory": {"enabled": False}}, "audio": {"output": {"speed": 1.2}}}  # fmt: skip
    port.hear("client", {"type": "session.update", "session": live})
    reported = json.loads(json.dumps(FIRST))
    reported["audio"]["output"]["speed"] = 1.2000000476837158  # float32 on the way back
    port.hear("server", {"type": "session.updated", "session": reported})
    (drift,) = port.local
    assert drift["type"] == "session.drift" and drift["first"] is False
    assert drift["fields"] == [
        {"field": "session.providerData.memory.enabled", "sent": False, "reported": True}
    ]
    assert drift["unreported"] == []


def test_fields_missing_from_the_report_are_listed_apart(rig) -> None:
    port, _guard, _ = rig
    port.hear("client", {"type": "session.update", "session": FIRST})
    reported = {k: v for k, v in FIRST.items() if k != "providerData"}
    port.hear("server", {"type": "session.updated", "session": reported})
    (drift,) = port.local
    assert drift["fields"] == [] and drift["unreported"] == ["session.providerData"]
    assert drift["first"] is True


def test_a_new_call_starts_over(rig) -> None:
    port, _guard, _ = rig
    port.hear("client", {"type": "session.update", "session": FIRST})
    port.hear("server", refused("session.audio.input.transcription.model"))
    port.call = 2
    port.hear("client", {"type": "session.update", "session": FIRST})
    port.hear("server", refused("session.audio.input.transcription.model"))
    assert [r["resent"] for r in port.local] == [True, True]  # each call's first update
    assert len(port.sent) == 2


def test_watchers_hear_the_records_and_close_unsubscribes(rig) -> None:
    port, guard, _ = rig
    heard: list[dict[str, Any]] = []
    unwatch = guard.watch(heard.append)
    port.hear("client", {"type": "session.update", "session": FIRST})
    port.hear("server", refused("session.audio.output.voice"))
    assert [h["param"] for h in heard] == ["session.audio.output.voice"]
    unwatch()
    guard.close()
    assert port.listeners == []


def test_param_paths_and_removal() -> None:
    assert param_path("session.audio.input.transcription.model") == (
        "audio",
        "input",
        "transcription",
        "model",
    )
    assert param_path("session.tools[1].name") == ("tools", 1, "name")
    assert param_path("") is None and param_path(None) is None
    s = {"type": "realtime", "audio": {"output": {"voice": "x"}}, "tools": [{"name": "a"}, {"name": ""}]}  # fmt: skip
    assert without(s, ("audio", "output", "voice")) == {"type": "realtime", "tools": s["tools"]}
    assert without(s, ("tools", 1, "name"))["tools"] == [{"name": "a"}]
    assert without(s, ("nope",)) == s
    differ, unreported = compare(
        {"tools": [{"name": "a"}]}, {"tools": [{"name": "a", "strict": None}]}
    )
    assert differ == [] and unreported == []
