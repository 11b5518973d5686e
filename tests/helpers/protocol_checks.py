"""Protocol checks for any stream of server events: the emulator's own tests and the
browser tests apply them to everything they receive."""

from __future__ import annotations

import base64
import copy
from typing import Any

from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter

SERVER_EVENT = TypeAdapter(RealtimeServerEvent)
# The documented schema exceptions: Inworld-only messages, which RealtimeServerEvent rejects.
# They are kept out of schema validation and checked against these shapes (field -> type)
# instead. Keyed by ``type``, or by ``errorType`` for the non-standard message that has none.
# Each back-channel attempt's events share its backchannel_id (Inworld's official clients).
_BACKCHANNEL: dict[str, type] = {"type": str, "event_id": str, "backchannel_id": str}
INWORLD_ONLY: dict[str, dict[str, type]] = {
    "response.backchannel.audio.delta": {**_BACKCHANNEL, "delta": str},
    "response.backchannel.audio.done": {**_BACKCHANNEL, "phrase": str},
    "response.backchannel.skipped": {**_BACKCHANNEL, "reason": str},
    "SESSION_RESOURCES_EXHAUSTED": {"errorType": str, "message": str},
    "ping": {"type": str, "event_id": str, "timestamp": int},
}


def inworld_kind(event: dict[str, Any]) -> str | None:
    """The INWORLD_ONLY key of ``event``, or None for an OpenAI-schema event."""
    kind = event.get("type", event.get("errorType"))
    return kind if kind in INWORLD_ONLY else None


def check_inworld_shape(event: dict[str, Any]) -> None:
    kind = inworld_kind(event)
    assert kind is not None, f"not an Inworld-only message: {event}"
    shape = INWORLD_ONLY[kind]
    assert set(event) == set(shape), f"{kind}: fields {sorted(event)} != {sorted(shape)}"
    for name, kind_of in shape.items():
        assert isinstance(event[name], kind_of), f"{kind}.{name} is not {kind_of.__name__}"
    if kind == "response.backchannel.audio.delta":
        pcm = base64.b64decode(event["delta"], validate=True)
        assert pcm and len(pcm) % 2 == 0  # PCM16 samples


def openai_view(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` without the session fields Inworld documents beyond OpenAI's schema: its
    built-in ``{"type": "web_search"}`` tool and input PCM rates other than 24 kHz."""
    session = event.get("session")
    if event.get("type") not in ("session.created", "session.updated") or not session:
        return event
    session = copy.deepcopy(session)
    session["tools"] = [t for t in session.get("tools") or [] if t.get("type") != "web_search"]
    fmt = session.get("audio", {}).get("input", {}).get("format") or {}
    if fmt.get("type") == "audio/pcm" and 8000 <= fmt.get("rate", 24000) <= 48000:
        fmt["rate"] = 24000
    return {**event, "session": session}


def check_stream(events: list[dict[str, Any]]) -> None:
    """Schema, unique event_id, and id consistency across every response in ``events``."""
    ids = [e["event_id"] for e in events if "event_id" in e]
    assert len(ids) == len(set(ids)), "duplicate event_id"
    for event in events:
        if inworld_kind(event) is not None:
            check_inworld_shape(event)
        else:
            SERVER_EVENT.validate_python(openai_view(event))
    events = [e for e in events if inworld_kind(e) is None]
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
                assert event["transcript"] == open_parts[part], (kind, event, open_parts[part])
            elif kind.endswith("text.done"):
                assert event["text"] == open_parts[part], (kind, event, open_parts[part])
            elif kind == "response.content_part.done":
                open_parts.pop(part)
                part_owner.pop(part)
    # A response may still be streaming when the client hung up; a finished one never is.
