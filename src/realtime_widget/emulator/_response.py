"""One response: ask the responder, then stream its message or tool call as server events.

Event order for an audio message (ids agree throughout):
``response.created`` -> ``response.output_item.added`` -> ``conversation.item.added`` ->
``response.content_part.added`` -> ``output_audio_buffer.started`` ->
``response.output_audio_transcript.delta``* (each when the voice reaches that word) ->
``response.output_audio_transcript.done`` -> ``response.content_part.done`` ->
``response.output_item.done`` -> ``conversation.item.done`` -> ``response.done`` ->
``rate_limits.updated`` -> ``output_audio_buffer.stopped`` (when the last sample has played).
A cancelled response closes whatever it had open (status ``incomplete``), then sends
``response.done`` (status ``cancelled``), ``rate_limits.updated`` and
``output_audio_buffer.cleared`` if audio was playing.

On a WebSocket session (``host.audio_events``) there are no ``output_audio_buffer.*`` events: the
voice goes out as ``response.output_audio.delta`` events interleaved with the transcript deltas
(each when the playback clock reaches it), then ``response.output_audio.done`` once the last
chunk is sent (or the audio was cut), before ``response.output_audio_transcript.done``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

from ._audio import SAMPLE_RATE, Sound, Utterance
from ._conversation import Conversation, item_text
from ._errors import ClientError
from ._ids import new_id
from ._knobs import Knobs
from ._ratelimits import RateLimits
from ._responder import (
    WEB_SEARCH,
    Responder,
    ResponseContext,
    TextReply,
    ToolCall,
    web_search_stand_in,
)
from ._tts import make_speech
from ._validate import (
    enum,
    list_of,
    max_tokens,
    metadata,
    modalities,
    obj,
    string,
    tool,
    tool_choice,
    type_error,
    voice,
)

log = logging.getLogger(__name__)

AUDIO_TOKENS_PER_S_IN = 10  # plausible figures for usage, not billing
AUDIO_TOKENS_PER_S_OUT = 20
ARGUMENT_CHUNK = 12  # characters per function_call_arguments.delta
_CHUNKS = re.compile(r"\s*\S+|\s+$")


def tokens(text: str) -> int:
    """About four characters per token, like the common BPE tokenizers on English."""
    return math.ceil(len(text) / 4) if text else 0


@dataclass(frozen=True)
class ResponseParams:
    instructions: str
    output_modalities: list[str]
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any]
    conversation: str
    metadata: dict[str, str] | None
    max_output_tokens: int | str
    voice: str
    speed: float
    input: list[dict[str, Any]] | None


def _input_items(value: Any, param: str, conversation: Conversation | None) -> list[dict[str, Any]]:
    from ._conversation import normalize_item

    if not isinstance(value, list):
        raise type_error(param, "an array", value)
    items = []
    for i, raw in enumerate(value):
        if isinstance(raw, dict) and raw.get("type") == "item_reference":
            ref = string(raw.get("id"), f"{param}[{i}].id")
            found = conversation.find(ref) if conversation else None
            if found is None:
                raise ClientError("item_not_found", f"{param}[{i}].id", f"No item {ref!r}.")
            items.append(copy.deepcopy(found))
        else:
            items.append(normalize_item(raw, f"{param}[{i}]"))
    return items


def parse_response_params(
    session: dict[str, Any], raw: Any, conversation: Conversation | None = None
) -> ResponseParams:
    """The session's defaults with a ``response.create``'s overrides applied (validated)."""
    fields = obj(
        {
            "instructions": string,
            "output_modalities": modalities,
            "tools": list_of(tool),
            "tool_choice": tool_choice,
            "conversation": enum("auto", "none"),
            "metadata": metadata,
            "max_output_tokens": max_tokens,
            "audio": obj({"output": obj({"voice": voice})}),
            "input": lambda v, p: _input_items(v, p, conversation),
        }
    )({} if raw is None else raw, "response")
    out = session["audio"]["output"]
    voice_value = fields.get("audio", {}).get("output", {}).get("voice", out.get("voice", ""))
    return ResponseParams(
        instructions=fields.get("instructions", session.get("instructions", "")),
        output_modalities=fields.get("output_modalities", session["output_modalities"]),
        tools=fields.get("tools", session.get("tools", [])),
        tool_choice=fields.get("tool_choice", session.get("tool_choice", "auto")),
        conversation=fields.get("conversation", "auto"),
        metadata=fields.get("metadata"),
        max_output_tokens=fields.get("max_output_tokens", session.get("max_output_tokens", "inf")),
        voice=voice_value["id"] if isinstance(voice_value, dict) else str(voice_value),
        speed=float(out.get("speed", 1.0)),
        input=fields.get("input"),
    )


class ResponseHost(Protocol):
    """All a response needs from its call (``EmulatedCall`` is the one implementation)."""

    conversation: Conversation
    responder: Responder
    rate_limits: RateLimits
    input_audio_s: dict[str, float]  # user audio item id -> seconds, for usage

    @property
    def session(self) -> dict[str, Any]: ...

    @property
    def knobs(self) -> Knobs: ...

    def emit(self, type: str, **fields: Any) -> dict[str, Any]: ...

    async def play(
        self, response_id: str, item_id: str, sound: Sound, text_chars: int = 0
    ) -> Utterance: ...

    def stop_playback(self) -> bool: ...

    @property
    def audio_events(self) -> bool:
        """True when the voice goes out as ``response.output_audio.delta`` events (WebSocket)."""

    def send_audio(self, utterance: Utterance, fields: dict[str, Any]) -> asyncio.Task[None] | None:
        """Start sending ``utterance`` as audio delta events (None when it plays on a track)."""

    def stop_audio(self, item_id: str) -> None:
        """Send no more audio deltas for ``item_id``."""

    def response_finished(self, runner: ResponseRunner) -> None: ...


class ResponseRunner:
    def __init__(self, host: ResponseHost, params: ResponseParams) -> None:
        self.host = host
        self.params = params
        self.id = new_id("resp")
        self.task: asyncio.Task[Any] | None = None
        self.finished = False
        self.items: list[dict[str, Any]] = []
        self._open_item: dict[str, Any] | None = None
        self._open_part: str | None = None  # "audio" | "text" while a content part is open
        self._sent = ""  # text or arguments streamed so far
        self._utterance: Utterance | None = None
        self._audio_sent: asyncio.Task[None] | None = None  # the audio deltas' sender (WebSocket)
        self._context: list[dict[str, Any]] = []
        self.searches: list[str] = []  # the queries the built-in web_search answered

    @property
    def in_conversation(self) -> bool:
        return self.params.conversation == "auto"

    # --- events ------------------------------------------------------------------------
    def _response(self, status: str, details: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "object": "realtime.response",
            "id": self.id,
            "status": status,
            "status_details": details,
            "output": copy.deepcopy(self.items),
            "conversation_id": self.host.conversation.id if self.in_conversation else None,
            "output_modalities": self.params.output_modalities,
            "max_output_tokens": self.params.max_output_tokens,
            "audio": {
                "output": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "voice": self.params.voice,
                }
            },
            "usage": self._usage() if status != "in_progress" else None,
            "metadata": self.params.metadata,
        }

    def _ids(self) -> dict[str, Any]:
        assert self._open_item is not None
        return {
            "response_id": self.id,
            "item_id": self._open_item["id"],
            "output_index": len(self.items) - 1,
        }

    def _add_item(self, item: dict[str, Any]) -> None:
        self.items.append(item)
        self._open_item = item
        self._sent = ""
        self.host.emit(
            "response.output_item.added",
            response_id=self.id,
            output_index=len(self.items) - 1,
            item=item,
        )
        if self.in_conversation:
            previous = self.host.conversation.add(item)
            self.host.emit("conversation.item.added", item=item, previous_item_id=previous)

    def _close_item(self, status: str) -> None:
        item = self._open_item
        if item is None:
            return
        if self._open_part is not None:
            kind, self._open_part = self._open_part, None
            key = "transcript" if kind == "audio" else "text"
            if kind == "audio" and self.host.audio_events:
                self.host.stop_audio(item["id"])  # a cut response sends no more of it
                self.host.emit("response.output_audio.done", **self._ids(), content_index=0)
            done = (
                "response.output_audio_transcript.done"
                if kind == "audio"
                else ("response.output_text.done")
            )
            self.host.emit(done, **self._ids(), content_index=0, **{key: self._sent})
            self.host.emit(
                "response.content_part.done",
                **self._ids(),
                content_index=0,
                part={"type": kind, key: self._sent},
            )
            item["content"] = [{"type": f"output_{kind}", key: self._sent}]
        elif item["type"] == "function_call":
            item["arguments"] = self._sent
        item["status"] = status
        self.host.emit(
            "response.output_item.done",
            response_id=self.id,
            output_index=len(self.items) - 1,
            item=item,
        )
        if self.in_conversation and self.host.conversation.find(item["id"]) is not None:
            previous = self.host.conversation.previous_id(item["id"])
            self.host.emit("conversation.item.done", item=item, previous_item_id=previous)
        self._open_item = None

    def _usage(self) -> dict[str, Any]:
        text_in = tokens(self.params.instructions)
        audio_in = 0
        for item in self._context:
            text_in += tokens(item_text(item))
            seconds = self.host.input_audio_s.get(str(item.get("id")), 0.0)
            audio_in += round(seconds * AUDIO_TOKENS_PER_S_IN)
        text_out = sum(tokens(item_text(item)) for item in self.items)
        audio_out = 0
        if self._utterance is not None:
            played = min(time.monotonic(), self._utterance.end) - self._utterance.start
            audio_out = round(max(0.0, played) * AUDIO_TOKENS_PER_S_OUT)
        return {
            "total_tokens": text_in + audio_in + text_out + audio_out,
            "input_tokens": text_in + audio_in,
            "output_tokens": text_out + audio_out,
            "input_token_details": {
                "text_tokens": text_in,
                "audio_tokens": audio_in,
                "cached_tokens": 0,
                "image_tokens": 0,
            },
            "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
        }

    # --- the run -----------------------------------------------------------------------
    async def run(self) -> None:
        self.host.emit("response.created", response=self._response("in_progress", None))
        created_at = time.monotonic()
        params = self.params
        self._context = (
            params.input if params.input is not None else self.host.conversation.snapshot()
        )
        try:
            reply = await self._ask()
        except Exception as exc:  # the responder's bug fails this response, not the call
            self._finish(
                "failed",
                error={"type": "server_error", "code": "responder_error", "message": repr(exc)},
            )
            return
        speech = None
        if not isinstance(reply, ToolCall) and "audio" in self.params.output_modalities:
            text, limited = self._limit(reply.text)
            if text:  # the first sentence only: the rest is made as it plays
                speech = await asyncio.to_thread(self._speech, text)
        # The knob is the time from response.created to the first delta, whatever the work.
        delay = self.host.knobs.first_delta_delay_ms / 1000 - (time.monotonic() - created_at)
        await asyncio.sleep(max(0.0, delay))
        if isinstance(reply, ToolCall):
            await self._stream_tool_call(reply)
            self._finish("completed")
            return
        text, limited = self._limit(reply.text)
        await self._stream_message(text, "incomplete" if limited else "completed", speech)
        if limited:
            self._finish("incomplete", reason="max_output_tokens")
        else:
            self._finish("completed")

    def _speech(self, text: str) -> Sound:
        knobs, p = self.host.knobs, self.params
        return make_speech(text, knobs.tts, knobs.speech_rate, p.speed, p.voice)

    async def _ask(self) -> TextReply | ToolCall:
        """The responder's reply.

        It may call any tool name (models call unknown names too); a call to the built-in
        ``web_search`` is answered here with a stand-in result, which the responder then reads, up
        to the tool's ``max_steps`` searches per response.
        """
        context = copy.deepcopy(self._context)
        searches = 0
        while True:
            result = await self._call_responder(context)
            if not (isinstance(result, ToolCall) and self._searches_here(result.name)):
                return result
            steps = self._search_max_steps()
            if searches >= steps:
                raise ValueError(f"web_search called more than its max_steps ({steps}) times")
            searches += 1
            context.extend(self._stand_in_search(result))

    async def _call_responder(self, items: list[dict[str, Any]]) -> TextReply | ToolCall:
        params = self.params
        ctx = ResponseContext(
            session=copy.deepcopy(self.host.session),
            instructions=params.instructions,
            items=copy.deepcopy(items),
            tools=copy.deepcopy(params.tools),
            tool_choice=copy.deepcopy(params.tool_choice),
            output_modalities=list(params.output_modalities),
            metadata=params.metadata,
        )
        result = self.host.responder(ctx)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, str):
            result = TextReply(result)
        if not isinstance(result, (TextReply, ToolCall)):
            raise TypeError(f"responder returned {type(result).__name__}")
        return result

    def _searches_here(self, name: str) -> bool:
        """True when ``name`` is the built-in search.

        The response has a ``web_search`` tool and no function tool of that name (a client's own
        function wins).
        """
        tools = self.params.tools
        return (
            name == WEB_SEARCH
            and any(t.get("type") == WEB_SEARCH for t in tools)
            and not any(
                t.get("type", "function") == "function" and t.get("name") == name for t in tools
            )
        )

    def _search_max_steps(self) -> int:
        tool = next(t for t in self.params.tools if t.get("type") == WEB_SEARCH)
        steps = (tool.get("providerData") or {}).get("max_steps", 1)
        return int(steps)

    def _stand_in_search(self, call: ToolCall) -> list[dict[str, Any]]:
        """The search as the responder sees it: its call and a stand-in output.

        Neither is a conversation item nor an event: the service runs the tool itself.
        """
        try:
            arguments = json.loads(call.arguments_json())
        except ValueError:
            arguments = {}
        query = arguments.get("query") if isinstance(arguments, dict) else None
        query = str(query if query is not None else call.arguments_json())
        call_id = call.call_id or new_id("call")
        log.info("response %s: web_search %r answered with the emulator's stand-in", self.id, query)
        self.searches.append(query)
        return [
            {
                "id": new_id("item"),
                "object": "realtime.item",
                "type": "function_call",
                "status": "completed",
                "name": WEB_SEARCH,
                "call_id": call_id,
                "arguments": call.arguments_json(),
            },
            {
                "id": new_id("item"),
                "object": "realtime.item",
                "type": "function_call_output",
                "call_id": call_id,
                "output": web_search_stand_in(query),
            },
        ]

    def _limit(self, text: str) -> tuple[str, bool]:
        limit = self.params.max_output_tokens
        if isinstance(limit, int) and tokens(text) > limit:
            return text[: limit * 4], True
        return text, False

    async def _stream_message(self, text: str, status: str, speech: Sound | None = None) -> None:
        audio = "audio" in self.params.output_modalities
        kind = "audio" if audio else "text"
        key = "transcript" if audio else "text"
        item: dict[str, Any] = {
            "id": new_id("item"),
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        self._add_item(item)
        self.host.emit(
            "response.content_part.added",
            **self._ids(),
            content_index=0,
            part={"type": kind, key: ""},
        )
        self._open_part = kind
        chunks = _CHUNKS.findall(text)
        knobs = self.host.knobs
        if audio and text:
            if speech is None:
                speech = await asyncio.to_thread(self._speech, text)
            self._utterance = await self.host.play(self.id, item["id"], speech, len(text))
            ids = {**self._ids(), "content_index": 0}
            self._audio_sent = self.host.send_audio(self._utterance, ids)
            if self._audio_sent is not None:
                await asyncio.sleep(0)  # its first chunk goes out before the first word's delta
            start, offset = self._utterance.start, 0
            for chunk in chunks:
                # Each word's transcript goes out as the voice starts saying it (the voice's
                # own word positions; a streamed voice may not have reached it yet).
                word = offset + len(chunk) - len(chunk.lstrip())
                sample = speech.char_sample(word)
                while sample is None:
                    await asyncio.sleep(0.02)
                    sample = speech.char_sample(word)
                delay = start + sample / SAMPLE_RATE - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._delta("response.output_audio_transcript.delta", chunk)
                offset += len(chunk)
            if self._audio_sent is not None:  # the item ends with its audio's last chunk
                await asyncio.wait({self._audio_sent})
        else:
            for i, chunk in enumerate(chunks):
                if i:
                    await asyncio.sleep(knobs.delta_interval_ms / 1000)
                self._delta("response.output_text.delta", chunk)
        self._close_item(status)

    def _delta(self, type: str, chunk: str) -> None:
        self.host.emit(type, **self._ids(), content_index=0, delta=chunk)
        self._sent += chunk

    async def _stream_tool_call(self, call: ToolCall) -> None:
        arguments = call.arguments_json()
        call_id = call.call_id or new_id("call")
        item: dict[str, Any] = {
            "id": new_id("item"),
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": call.name,
            "call_id": call_id,
            "arguments": "",
        }
        self._add_item(item)
        for i in range(0, len(arguments), ARGUMENT_CHUNK):
            if i:
                await asyncio.sleep(self.host.knobs.delta_interval_ms / 1000)
            chunk = arguments[i : i + ARGUMENT_CHUNK]
            self.host.emit(
                "response.function_call_arguments.delta",
                **self._ids(),
                call_id=call_id,
                delta=chunk,
            )
            self._sent += chunk
        # Inworld may leave name out of .done (the omit_function_call_name knob): clients must
        # take it from response.output_item.added.
        named = {} if self.host.knobs.omit_function_call_name else {"name": call.name}
        self.host.emit(
            "response.function_call_arguments.done",
            **self._ids(),
            call_id=call_id,
            **named,
            arguments=arguments,
        )
        self._close_item("completed")

    # --- endings -----------------------------------------------------------------------
    async def cancel(self, reason: str) -> None:
        """Stop now: close what is open, report ``cancelled``, cut the audio."""
        if self.finished:
            return
        task = self.task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._finish("cancelled", reason=reason)

    def _finish(
        self, status: str, reason: str | None = None, error: dict[str, Any] | None = None
    ) -> None:
        if self.finished:
            return
        self.finished = True
        self._close_item("completed" if status == "completed" else "incomplete")
        details: dict[str, Any] | None = None
        if status != "completed":
            details = {"type": status}
            if reason:
                details["reason"] = reason
            if error:
                details["error"] = error
        response = self._response(status, details)
        self.host.emit("response.done", response=response)
        # Every finished response spends one request and its tokens (sent after response.done).
        limits = self.host.rate_limits.spend(response["usage"]["total_tokens"])
        self.host.emit("rate_limits.updated", rate_limits=limits)
        self.host.response_finished(self)
        if status == "cancelled":
            self.host.stop_playback()
