"""What the emulated model says: pluggable responders and transcribers, deterministic defaults.

A responder gets a :class:`ResponseContext` and returns a :class:`TextReply`, a
:class:`ToolCall`, or a plain ``str`` (short for ``TextReply``); it may be sync or async. It runs
on the emulator's event loop: a slow sync responder delays every call, so make long work async.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._conversation import item_text


@dataclass(frozen=True)
class TextReply:
    text: str


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    call_id: str | None = None  # generated when None

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, separators=(",", ":"))


Reply = TextReply | ToolCall


@dataclass(frozen=True)
class ResponseContext:
    """Everything the emulated model may look at for one response (copies, safe to keep)."""

    session: dict[str, Any]
    instructions: str
    items: list[dict[str, Any]]  # the conversation, or the response's own ``input``
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any]
    output_modalities: list[str]
    metadata: dict[str, str] | None = None

    @property
    def last_item(self) -> dict[str, Any] | None:
        return self.items[-1] if self.items else None

    @property
    def last_user_text(self) -> str | None:
        for item in reversed(self.items):
            if item.get("type") == "message" and item.get("role") == "user":
                return item_text(item)
        return None

    def call_for(self, call_id: str) -> dict[str, Any] | None:
        """The function_call item a function_call_output answers."""
        for item in self.items:
            if item.get("type") == "function_call" and item.get("call_id") == call_id:
                return item
        return None


Responder = Callable[[ResponseContext], Reply | str | Awaitable[Reply | str]]


@dataclass(frozen=True)
class TranscriptionRequest:
    """One user turn's audio (mono int16) and the session's transcription settings."""

    pcm: np.ndarray
    sample_rate: int
    model: str
    language: str | None = None
    prompt: str | None = None

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / self.sample_rate if self.sample_rate else 0.0


Transcriber = Callable[[TranscriptionRequest], str | Awaitable[str]]


def default_transcriber(request: TranscriptionRequest) -> str:
    """No speech recognition here: say honestly what was heard."""
    return f"[speech, {request.duration_s:.1f} s]"


def _tool_wanted(ctx: ResponseContext, text: str) -> dict[str, Any] | None:
    choice = ctx.tool_choice
    if not ctx.tools or choice == "none":
        return None
    if isinstance(choice, dict):
        return next((t for t in ctx.tools if t.get("name") == choice.get("name")), None)
    lowered = text.lower()
    for tool in ctx.tools:
        name = str(tool.get("name", ""))
        if name and (name.lower() in lowered or name.lower().replace("_", " ") in lowered):
            return tool
    return ctx.tools[0] if choice == "required" else None


def _fill_arguments(tool: dict[str, Any], text: str) -> dict[str, Any]:
    """Deterministic arguments from the tool's JSON schema: strings get the user's words."""
    properties = (tool.get("parameters") or {}).get("properties") or {}
    samples: dict[str, Any] = {"string": text, "number": 1, "integer": 1, "boolean": True}
    return {
        name: samples.get(str(spec.get("type"))) if isinstance(spec, dict) else None
        for name, spec in properties.items()
    }


def default_responder(ctx: ResponseContext) -> Reply:
    """Echo the user, call a tool the user names, and report a tool's output back."""
    last = ctx.last_item
    if last is not None and last.get("type") == "function_call_output":
        call = ctx.call_for(str(last.get("call_id")))
        name = call.get("name") if call else "tool"
        return TextReply(f"The {name} tool returned: {last.get('output', '')}.")
    text = ctx.last_user_text
    if text is None:
        return TextReply("Hello! This is the local realtime emulator. How can I help?")
    tool = _tool_wanted(ctx, text)
    if tool is not None:
        return ToolCall(str(tool["name"]), _fill_arguments(tool, text))
    said = text.rstrip()
    end = "" if said.endswith((".", "!", "?")) else "."  # "You said: Hi!" not "Hi!."
    return TextReply(f"You said: {said}{end} This is the local realtime emulator.")
