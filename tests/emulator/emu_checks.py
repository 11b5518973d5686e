"""Checks applied to every event stream the emulator tests receive."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from emu_client import RealtimeClient
from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter

# Fast pacing: tests assert behaviour, not realistic latency.
FAST: dict[str, Any] = {"first_delta_delay_ms": 0.0, "delta_interval_ms": 2.0, "speech_rate": 150.0}
SERVER_EVENT = TypeAdapter(RealtimeServerEvent)
INWORLD_ONLY = {
    "response.backchannel.audio.delta",
    "response.backchannel.audio.done",
    "response.backchannel.skipped",
}


def check_stream(events: list[dict[str, Any]]) -> None:
    """Schema, unique event_id, and id consistency across every response in ``events``."""
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), "duplicate event_id"
    for event in events:
        if event["type"] not in INWORLD_ONLY:
            SERVER_EVENT.validate_python(event)
    created: set[str] = set()
    done: set[str] = set()
    item_at: dict[tuple[str, int], str] = {}
    open_parts: dict[tuple[str, int], str] = {}  # (item_id, content_index) -> text so far
    part_owner: dict[tuple[str, int], str] = {}  # (item_id, content_index) -> response id
    playing: set[str] = set()
    for event in events:
        kind = event["type"]
        if kind == "response.created":
            rid = event["response"]["id"]
            assert rid not in created and event["response"]["status"] == "in_progress"
            created.add(rid)
        elif kind == "response.done":
            rid = event["response"]["id"]
            assert rid in created and rid not in done
            done.add(rid)
            assert rid not in part_owner.values(), "response.done with a content part open"
            output = [item["id"] for item in event["response"]["output"]]
            assert output == [item_at[(rid, i)] for i in range(len(output))]
            assert event["response"]["usage"]["total_tokens"] == (
                event["response"]["usage"]["input_tokens"]
                + event["response"]["usage"]["output_tokens"]
            )
        elif kind.startswith("output_audio_buffer."):
            rid = event["response_id"]
            assert rid in created
            if kind.endswith("started"):
                assert rid not in playing
                playing.add(rid)
            else:
                assert rid in playing, f"{kind} without started"
                playing.discard(rid)
        elif kind.startswith("response."):
            rid = event["response_id"]
            assert rid in created and rid not in done, f"{kind} outside its response"
            key = (rid, event["output_index"])
            if kind == "response.output_item.added":
                assert key not in item_at
                item_at[key] = event["item"]["id"]
                continue
            item_id = event["item"]["id"] if "item" in event else event["item_id"]
            assert item_at[key] == item_id
            part = (item_id, event.get("content_index", 0))
            if kind == "response.content_part.added":
                open_parts[part] = ""
                part_owner[part] = rid
            elif kind.endswith("transcript.delta") or kind.endswith("text.delta"):
                open_parts[part] += event["delta"]
            elif kind.endswith("transcript.done"):
                assert event["transcript"] == open_parts[part]
            elif kind.endswith("text.done"):
                assert event["text"] == open_parts[part]
            elif kind == "response.content_part.done":
                open_parts.pop(part)
                part_owner.pop(part)
    # A response may still be streaming when the client hung up; a finished one never is.


Connect = Callable[..., Awaitable[RealtimeClient]]
