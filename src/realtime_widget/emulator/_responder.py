"""What the emulated model says: pluggable responders and transcribers, deterministic defaults.

A responder gets a :class:`ResponseContext` and returns a :class:`TextReply`, a
:class:`ToolCall`, or a plain ``str`` (short for ``TextReply``); it may be sync or async. It runs
on the emulator's event loop: a slow sync responder delays every call, so make long work async.
"""

from __future__ import annotations

import json
import re
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


ResponderReply = TextReply | ToolCall


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


Responder = Callable[[ResponseContext], ResponderReply | str | Awaitable[ResponderReply | str]]


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


WEB_SEARCH = "web_search"  # Inworld's built-in tool: {"type": "web_search"}, no name
WEB_SEARCH_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"query": {"type": "string"}},
    "required": ["query"],
}


def tool_name(tool: dict[str, Any]) -> str:
    """The name a model calls ``tool`` by: a function's ``name``, or ``web_search``."""
    return WEB_SEARCH if tool.get("type") == WEB_SEARCH else str(tool.get("name", ""))


def tool_parameters(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") == WEB_SEARCH:
        return WEB_SEARCH_PARAMETERS
    parameters = tool.get("parameters")
    return parameters if isinstance(parameters, dict) else {}


def web_search_stand_in(query: str) -> str:
    """What the emulator's built-in ``web_search`` returns: no search is made, and it says so."""
    return f'[emulator stand-in: no web search was made] "{query}": no real results.'


def _spaced(name: str) -> str:
    return re.sub(r"[_\-]+", " ", name).strip().lower()


def _tool_wanted(ctx: ResponseContext, text: str) -> tuple[dict[str, Any], int] | None:
    """The tool the user asks for, and where its name ends in ``text``.

    The rule: a tool is called when its name appears in the user's words, as written
    (``get_weather``) or with its underscores and hyphens as spaces (``get weather``), in any
    case; "use get weather for Paris" is the natural way to say it. The first tool of the
    session's list that appears wins. ``tool_choice`` ``none`` never calls one; a forced
    ``{"type": "function", "name"}`` or ``required`` calls that (or the first) tool anyway.
    """
    choice = ctx.tool_choice
    if not ctx.tools or choice == "none":
        return None
    lowered = text.lower()
    for tool in ctx.tools:
        name = tool_name(tool)
        if isinstance(choice, dict) and name != choice.get("name"):
            continue
        for form in (name.lower(), _spaced(name)):
            at = lowered.find(form) if form else -1
            if at >= 0:
                return tool, at + len(form)
    if isinstance(choice, dict):
        forced = next((t for t in ctx.tools if tool_name(t) == choice.get("name")), None)
        return (forced, 0) if forced else None
    return (ctx.tools[0], 0) if choice == "required" else None


_FILLER = {"for", "in", "of", "about", "to", "with", "on", "at", "the", "please", "a", "an"}
_VALUE = r"\s*(?:=|:|\bis\b)?\s*(\"[^\"]*\"|'[^']*'|[^\s,;!?]+)"


def _convert(value: str, spec: dict[str, Any]) -> Any:
    value = value.strip().strip("\"'").rstrip(".")
    kind = spec.get("type")
    if isinstance(spec.get("enum"), list) and spec["enum"]:
        return next((e for e in spec["enum"] if str(e).lower() == value.lower()), spec["enum"][0])
    if kind in ("number", "integer"):
        try:
            number = float(value)
        except ValueError:
            return 1
        return int(number) if kind == "integer" else number
    if kind == "boolean":
        return value.lower() in ("true", "yes", "on", "1")
    return value


def _fill_arguments(tool: dict[str, Any], text: str, after: int) -> dict[str, Any]:
    """Arguments from the user's words, deterministically (see docs/emulator.md, *Tools*).

    For each parameter of the tool's JSON schema: an explicit ``<param> <value>``,
    ``<param>=<value>``, ``<param>: <value>`` or ``<param> is <value>`` in the text (the
    parameter name with spaces for underscores; a value is one word or a quoted phrase) gives
    its value, converted to the parameter's type (an ``enum`` takes the matching member, else
    its first). Otherwise a string parameter gets the words after the tool's name, without
    leading "for", "in", "about"... and trailing punctuation (all the text if none follow); a
    number takes the first number there; a required parameter gets 1 / true / its first enum
    member; an optional one is left out.
    """
    schema = tool_parameters(tool)
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    words = text[after:].strip(" \t\n.,;:!?").split()
    while words and words[0].lower().strip(",:") in _FILLER:
        words.pop(0)
    rest = " ".join(words).rstrip(".!?,;") or text.strip()
    args: dict[str, Any] = {}
    for name, spec in properties.items():
        spec = spec if isinstance(spec, dict) else {}
        found = re.search(r"\b" + re.escape(_spaced(name)) + _VALUE, text, re.IGNORECASE)
        found = found or re.search(r"\b" + re.escape(name) + _VALUE, text, re.IGNORECASE)
        kind = spec.get("type")
        if found:
            args[name] = _convert(found.group(1), spec)
        elif kind == "string" and not spec.get("enum"):
            args[name] = rest
        elif kind in ("number", "integer") and (number := re.search(r"-?\d+(?:\.\d+)?", rest)):
            args[name] = _convert(number.group(), spec)
        elif name in required:
            args[name] = (
                _convert("", spec)
                if spec.get("enum")
                else {"number": 1, "integer": 1, "boolean": True}.get(str(kind), rest)
            )
    return args


def _say_output(output: Any) -> str:
    """A tool's output in a sentence: a JSON object as "key is value" pairs."""
    try:
        value = json.loads(output) if isinstance(output, str) else output
    except ValueError:
        return str(output).strip()
    if isinstance(value, dict):
        return ", ".join(f"{_spaced(str(k))} is {_say_output(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_say_output(v) for v in value)
    return str(value).strip()


def default_responder(ctx: ResponseContext) -> ResponderReply:
    """Echo what was heard, call a tool the user names, and report a tool's output back."""
    last = ctx.last_item
    if last is not None and last.get("type") == "function_call_output":
        call = ctx.call_for(str(last.get("call_id")))
        name = _spaced(str(call.get("name"))) if call else "tool"  # said as words
        said = _say_output(last.get("output", "")).rstrip(".")
        return TextReply(f"The {name} tool returned: {said}.")
    text = ctx.last_user_text
    if text is None:
        return TextReply("Hello! This is the local realtime emulator. How can I help?")
    wanted = _tool_wanted(ctx, text)
    if wanted is not None:
        tool, after = wanted
        return ToolCall(tool_name(tool), _fill_arguments(tool, text, after))
    said = text.rstrip()
    end = "" if said.endswith((".", "!", "?")) else "."  # "You said: Hi!" not "Hi!."
    return TextReply(f"You said: {said}{end} This is the local realtime emulator.")
