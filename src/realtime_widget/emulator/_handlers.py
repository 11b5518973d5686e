"""The client events a call accepts: one handler each, looked up by ``type`` in ``HANDLERS``.

A handler validates its event, changes the call's state, and answers with server events; a
``ClientError`` it raises becomes an ``error`` event carrying the client event's ``event_id``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._conversation import normalize_item
from ._errors import ClientError
from ._ids import new_id
from ._response import parse_response_params
from ._session_state import merge_session, validate_session_update
from ._validate import string

if TYPE_CHECKING:
    from ._call import EmulatedCall

Handler = Callable[["EmulatedCall", dict[str, Any]], Awaitable[None]]


async def session_update(call: EmulatedCall, event: dict[str, Any]) -> None:
    update = validate_session_update(call.session, event.get("session"))
    call.session = merge_session(call.session, update)
    call.turns.session_changed()
    call.emit("session.updated", session=call.session)


async def item_create(call: EmulatedCall, event: dict[str, Any]) -> None:
    item = normalize_item(event.get("item"))
    after = event.get("previous_item_id")
    if after is not None:
        string(after, "previous_item_id")
    previous = call.conversation.add(item, after)
    call.emit("conversation.item.added", item=item, previous_item_id=previous)
    call.emit("conversation.item.done", item=item, previous_item_id=previous)


async def item_retrieve(call: EmulatedCall, event: dict[str, Any]) -> None:
    item = call.conversation.get(string(event.get("item_id"), "item_id"))
    call.emit("conversation.item.retrieved", item=item)


async def item_truncate(call: EmulatedCall, event: dict[str, Any]) -> None:
    item_id = string(event.get("item_id"), "item_id")
    content_index = event.get("content_index", 0)
    audio_end_ms = event.get("audio_end_ms")
    call.playback.truncate(item_id, content_index, audio_end_ms)
    call.emit(
        "conversation.item.truncated",
        item_id=item_id,
        content_index=content_index,
        audio_end_ms=audio_end_ms,
    )


async def item_delete(call: EmulatedCall, event: dict[str, Any]) -> None:
    item_id = string(event.get("item_id"), "item_id")
    call.conversation.delete(item_id)
    call.emit("conversation.item.deleted", item_id=item_id)


async def response_create(call: EmulatedCall, event: dict[str, Any]) -> None:
    if call.active is not None:
        raise ClientError(
            "conversation_already_has_active_response",
            None,
            f"Conversation already has an active response in progress: {call.active.id}. "
            "Wait until the response is finished before creating a new one.",
        )
    params = parse_response_params(call.session, event.get("response"), call.conversation)
    call.start_response(params)


async def response_cancel(call: EmulatedCall, event: dict[str, Any]) -> None:
    wanted = event.get("response_id")
    active = call.active
    if active is None or (wanted is not None and wanted != active.id):
        raise ClientError(
            "response_cancel_not_active",
            "response_id" if wanted is not None else None,
            "Cancellation failed: no active response found.",
        )
    await active.cancel("client_cancelled")


async def output_audio_clear(call: EmulatedCall, event: dict[str, Any]) -> None:
    if call.audio_in is not None:
        raise ClientError(
            "invalid_value",
            "type",
            "output_audio_buffer.clear is WebRTC-only: over a WebSocket the client plays the "
            "audio itself; send response.cancel, then conversation.item.truncate.",
        )
    # Cutting the audio of a response still being generated ends that response too, like
    # response.cancel. With nothing playing (say response.cancel came first) it is a no-op.
    if call.active is not None:
        await call.active.cancel("client_cancelled")
    else:
        call.playback.stop()


async def input_commit(call: EmulatedCall, event: dict[str, Any]) -> None:
    if call.turns.turn_detection is not None:
        raise ClientError(
            "invalid_value",
            None,
            "turn_detection is on, so the server commits turns itself; set "
            "session.audio.input.turn_detection to null to commit manually.",
        )
    if call.audio_in is not None:
        call.audio_in.flush()
    segment = call.mic.take_manual_turn()
    if segment.duration_s < 0.1:
        raise ClientError(
            "input_audio_buffer_commit_empty",
            None,
            f"Error committing input audio buffer: buffer too small. Expected at least "
            f"100ms of audio, but buffer only has {segment.duration_s * 1000:.0f}ms.",
        )
    call.turns.commit(new_id("item"), segment)


async def input_clear(call: EmulatedCall, event: dict[str, Any]) -> None:
    if call.audio_in is not None:
        call.audio_in.clear()
    call.turns.clear()
    call.emit("input_audio_buffer.cleared")


async def input_append(call: EmulatedCall, event: dict[str, Any]) -> None:
    if call.audio_in is not None:  # a WebSocket session: the same mic pipeline as RTP
        call.audio_in.append(event.get("audio"))
        return
    raise ClientError(
        "invalid_value",
        "type",
        "input_audio_buffer.append is not used over WebRTC: send audio on the RTP track.",
    )


HANDLERS: dict[str, Handler] = {
    "session.update": session_update,
    "conversation.item.create": item_create,
    "conversation.item.retrieve": item_retrieve,
    "conversation.item.truncate": item_truncate,
    "conversation.item.delete": item_delete,
    "response.create": response_create,
    "response.cancel": response_cancel,
    "output_audio_buffer.clear": output_audio_clear,
    "input_audio_buffer.commit": input_commit,
    "input_audio_buffer.clear": input_clear,
    "input_audio_buffer.append": input_append,
}
