"""Part A over real WebRTC: session, text items, responses in both modalities, cancel."""

from __future__ import annotations

import asyncio

import pytest

from realtime_widget.emulator import Emulator
from tests.helpers.emu_checks import Connect, user_text

pytestmark = pytest.mark.netns


async def test_session_created_on_open(connect: Connect) -> None:
    client = await connect()
    session = client.events[0]["session"]
    assert client.events[0]["type"] == "session.created"
    assert session["type"] == "realtime" and session["output_modalities"] == ["audio"]


async def test_text_turn_gets_text_response(connect: Connect) -> None:
    client = await connect()
    client.send({"type": "session.update", "session": {"output_modalities": ["text"]}})
    await client.wait_for("session.updated")
    client.send(user_text("Hello there"))
    added = await client.wait_for("conversation.item.added")
    await client.wait_for("conversation.item.done")
    client.send({"type": "response.create"})
    done = await client.wait_for("response.done")
    response = done["response"]
    assert response["status"] == "completed"
    text = response["output"][0]["content"][0]["text"]
    assert text.startswith("You said: Hello there.")
    deltas = client.of_type("response.output_text.delta")
    assert len(deltas) > 1 and "".join(d["delta"] for d in deltas) == text
    assert response["usage"]["output_tokens"] > 0 and response["usage"]["input_tokens"] > 0
    assert added["item"]["role"] == "user"
    assert not client.of_type("output_audio_buffer.started")


async def test_rate_limits_updated_after_each_response(connect: Connect) -> None:
    client = await connect()
    client.send({"type": "session.update", "session": {"output_modalities": ["text"]}})
    totals = []
    for i in range(2):
        seen = len(client.events)
        client.send(user_text(f"message {i}"))
        client.send({"type": "response.create"})
        done = await client.wait_for("response.done", after=seen)
        totals.append(done["response"]["usage"]["total_tokens"])
        await client.wait_for("rate_limits.updated", after=seen)
    types = client.types()
    updates = client.of_type("rate_limits.updated")
    assert len(updates) == 2
    for update in updates:  # each comes right after its response.done
        assert types[client.events.index(update) - 1] == "response.done"
        assert [limit["name"] for limit in update["rate_limits"]] == ["requests", "tokens"]
    first, second = ({lim["name"]: lim for lim in u["rate_limits"]} for u in updates)
    assert first["requests"]["remaining"] == first["requests"]["limit"] - 1
    assert first["tokens"]["remaining"] <= first["tokens"]["limit"] - totals[0]
    assert second["requests"]["remaining"] <= first["requests"]["remaining"]
    assert second["tokens"]["remaining"] < first["tokens"]["remaining"]
    assert 0 < first["tokens"]["reset_seconds"] < 1


async def test_session_update_merges_partial_updates(connect: Connect) -> None:
    client = await connect()
    client.send(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "instructions": "Be brief.",
                "audio": {"output": {"voice": "Ashley"}},
            },
        }
    )
    first = (await client.wait_for("session.updated"))["session"]
    client.send({"type": "session.update", "session": {"audio": {"output": {"speed": 1.2}}}})
    second = await client.wait_for(
        "session.updated", where=lambda e: e["session"]["audio"]["output"]["speed"] == 1.2
    )
    session = second["session"]
    assert first["instructions"] == "Be brief." and first["audio"]["output"]["voice"] == "Ashley"
    assert session["instructions"] == "Be brief."  # kept from the first update
    assert session["audio"]["output"] == {**first["audio"]["output"], "speed": 1.2}
    assert session["audio"]["input"] == first["audio"]["input"]


async def test_audio_response_is_audible_and_paced(connect: Connect, emulator: Emulator) -> None:
    emulator.configure(speech_rate=40.0)
    client = await connect()
    client.send(user_text("Tell me something"))
    client.send({"type": "response.create"})
    done = await client.wait_for("response.done", timeout=10)
    await client.wait_for("output_audio_buffer.stopped", timeout=5)
    await asyncio.sleep(0.2)  # let the last frames arrive
    types = client.types()
    order = [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "output_audio_buffer.started",
        "response.output_audio_transcript.delta",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
        "output_audio_buffer.stopped",
    ]
    start = types.index("response.created")
    positions = [types.index(t, start) for t in order]
    assert positions == sorted(positions)
    transcript = done["response"]["output"][0]["content"][0]["transcript"]
    assert transcript.startswith("You said: Tell me something.")
    duration = len(transcript) / 40.0
    # Transcript deltas are paced with the voice: first to last spans most of the speech.
    deltas = client.of_type("response.output_audio_transcript.delta")
    span = client.time_of(deltas[-1]) - client.time_of(deltas[0])
    assert 0.6 * duration < span < duration + 0.3
    # The voice arrived over RTP, audibly, for about as long as the text takes to say.
    loud_frames = sum(rms > 0.01 for rms in client.audio_rms)
    assert 0.6 * duration / 0.02 < loud_frames < 1.3 * duration / 0.02
    assert max(client.audio_rms) > 0.05
    out = emulator.calls[0]["audio_out"]
    assert 0.8 * duration / 0.02 < out["nonsilent_frames"] < 1.2 * duration / 0.02
    usage = done["response"]["usage"]
    assert usage["output_token_details"]["audio_tokens"] > 0


async def test_response_cancel_stops_audio(connect: Connect, emulator: Emulator) -> None:
    emulator.configure(speech_rate=15.0)
    client = await connect()
    client.send(user_text("Please talk for a while about anything at all"))
    client.send({"type": "response.create"})
    created = await client.wait_for("response.created")
    await client.wait_for("response.output_audio_transcript.delta")
    await asyncio.sleep(0.3)
    client.send({"type": "response.cancel"})
    done = await client.wait_for("response.done")
    cleared = await client.wait_for("output_audio_buffer.cleared")
    response = done["response"]
    assert response["id"] == created["response"]["id"] == cleared["response_id"]
    assert response["status"] == "cancelled"
    assert response["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert response["output"][0]["status"] == "incomplete"
    assert client.types().index("response.done") < client.types().index(
        "output_audio_buffer.cleared"
    )
    assert not client.of_type("output_audio_buffer.stopped")
    # The audio stops: after a short drain, the frames are silent again.
    await asyncio.sleep(0.3)
    heard = len(client.audio_rms)
    await asyncio.sleep(0.4)
    assert max(client.audio_rms[heard:]) < 0.001
    # A second cancel has nothing to cancel: an error, and the call stays usable.
    sent = client.send({"type": "response.cancel"})
    error = await client.wait_for("error")
    assert error["error"]["code"] == "response_cancel_not_active"
    assert error["error"]["event_id"] == sent["event_id"]
