"""Session validation and protocol errors: bad input gets an ``error`` event, never a dead call."""

from __future__ import annotations

from typing import Any

import pytest

from realtime_widget.emulator import Emulator
from tests.helpers.emu_checks import Connect

pytestmark = pytest.mark.netns


@pytest.mark.parametrize(
    ("update", "code", "param"),
    [
        ({"output_modalities": ["video"]}, "invalid_value", "session.output_modalities[0]"),
        ({"output_modalities": []}, "invalid_value", "session.output_modalities"),
        (
            {
                "audio": {
                    "input": {"turn_detection": {"type": "semantic_vad", "eagerness": "eager"}}
                }
            },
            "invalid_value",
            "session.audio.input.turn_detection.eagerness",
        ),
        ({"audio": {"output": {"speed": 2.0}}}, "invalid_value", "session.audio.output.speed"),
        ({"audio": {"output": {"speed": 0.4}}}, "invalid_value", "session.audio.output.speed"),
        ({"instructions": 5}, "invalid_type", "session.instructions"),
        (
            {"audio": {"input": {"transcription": {"model": 7}}}},
            "invalid_type",
            "session.audio.input.transcription.model",
        ),
        ({"max_output_tokens": "lots"}, "invalid_value", "session.max_output_tokens"),
    ],
)
async def test_invalid_session_update_is_an_error_and_changes_nothing(
    connect: Connect, emulator: Emulator, update: dict[str, Any], code: str, param: str
) -> None:
    client = await connect()
    before = client.events[0]["session"]
    # A valid field next to the bad one must not be applied either.
    sent = client.send({"type": "session.update", "session": {"instructions": "x", **update}})
    error = (await client.wait_for("error"))["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    assert error["event_id"] == sent["event_id"] and error["message"]
    assert not client.of_type("session.updated")
    assert emulator.calls[0]["session"] == before
    client.send({"type": "session.update", "session": {"temperature": 0.7}})
    after = (await client.wait_for("session.updated"))["session"]
    assert after == {**before, "temperature": 0.7}


async def test_switching_turn_detection_kind_starts_from_its_defaults(connect: Connect) -> None:
    client = await connect()
    client.send(
        {
            "type": "session.update",
            "session": {
                "audio": {
                    "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}
                }
            },
        }
    )
    td = (await client.wait_for("session.updated"))["session"]["audio"]["input"]["turn_detection"]
    assert td["type"] == "server_vad" and td["silence_duration_ms"] == 300
    assert "eagerness" not in td and td["threshold"] == 0.5
    seen = len(client.events)
    client.send(
        {"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}}
    )
    off = await client.wait_for("session.updated", after=seen)
    assert off["session"]["audio"]["input"]["turn_detection"] is None


async def test_unknown_and_malformed_events_keep_the_call_up(
    connect: Connect, emulator: Emulator
) -> None:
    client = await connect()
    sent = client.send({"type": "session.frobnicate"})
    error = (await client.wait_for("error"))["error"]
    assert error["code"] == "invalid_value" and error["param"] == "type"
    assert error["event_id"] == sent["event_id"]
    client.send_raw("{not json")
    await client.wait_for("error", where=lambda e: e["error"]["code"] == "invalid_json")
    client.send_raw('["a list"]')
    await client.wait_for("error", where=lambda e: e["error"]["code"] == "invalid_event")
    client.send({"type": "input_audio_buffer.append", "audio": "AAAA"})
    await client.wait_for("error", where=lambda e: "RTP" in e["error"]["message"])
    # Still alive and answering.
    client.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
    done = await client.wait_for("response.done")
    assert done["response"]["status"] == "completed"
    record = emulator.calls[0]
    assert record["state"] == "open" and {"malformed": "{not json"} in record["events_in"]
