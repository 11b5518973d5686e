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
    """A responder's answer in words: the emulated model says ``text``.

    The emulator streams it as the response's text (or as speech with its transcript, when the
    session's output is audio), paced by the ``delta_interval_ms`` and ``speech_rate`` knobs. A
    responder may return a plain ``str`` instead: it is short for ``TextReply(text)``.

    Args:
        text: What the model says.

    Example:
        >>> from realtime_widget.emulator import Emulator, TextReply
        >>> emu = Emulator(responder=lambda ctx: TextReply("We open at nine.")).start()
    """

    text: str


@dataclass(frozen=True)
class ToolCall:
    """A responder's answer that calls a tool, as a model's ``function_call`` would.

    The emulator sends ``response.output_item.added`` with a ``function_call`` item, the
    ``response.function_call_arguments`` deltas and ``.done``, then ``response.done``; the client
    answers with a ``function_call_output`` item and ``response.create``, and the responder is
    asked again with it in ``ctx.items``. Any name may be called, one the session does not have
    included too (models do). ``ToolCall("web_search", {"query": ...})`` calls the built-in
    search when the response has that tool: the emulator answers it with a stand-in result.

    Args:
        name: The tool's name.
        arguments: The call's arguments: a dict (sent as compact JSON) or a JSON text sent as
            it is.
        call_id: The call's id; generated when None.

    Example:
        >>> from realtime_widget.emulator import ToolCall
        >>> ToolCall("get_weather", {"city": "Paris"}).arguments_json()
        '{"city":"Paris"}'
    """

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    call_id: str | None = None  # generated when None

    def arguments_json(self) -> str:
        """The arguments as the JSON text the events carry.

        Returns:
            ``arguments`` itself when it is a ``str``, else the dict as compact JSON.

        Example:
            >>> ToolCall("lookup", '{"id": 7}').arguments_json()
            '{"id": 7}'
        """
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, separators=(",", ":"))


ResponderReply = TextReply | ToolCall
"""What a responder answers: a :class:`TextReply` or a :class:`ToolCall` (or a plain ``str``,
short for a ``TextReply``)."""


@dataclass(frozen=True)
class ResponseContext:
    """Everything the emulated model may look at for one response (copies, safe to keep).

    The emulator builds one for every response and hands it to the responder, which decides what
    the model says from it. A response's own ``response.create`` fields (``instructions``,
    ``tools``, ``input``...) are already applied.

    Args:
        session: The session's fields as the client set them (``session.update``).
        instructions: The instructions in force for this response.
        items: The conversation's items, oldest first, or the response's own ``input``; after a
            built-in ``web_search`` it ends with the call and its stand-in output.
        tools: The tools in force. Inworld's built-in ``{"type": "web_search"}`` has no
            ``name``: read names with ``tool.get("name")``.
        tool_choice: ``"auto"``, ``"none"``, ``"required"``, or a forced
            ``{"type": "function", "name": ...}``.
        output_modalities: The response's output modalities, such as ``["audio"]`` or
            ``["text"]``.
        metadata: The response's ``metadata`` (echoed back in its events), or None.

    Example:
        >>> from realtime_widget.emulator import Emulator, ResponseContext, TextReply, ToolCall
        >>> def responder(ctx: ResponseContext):
        ...     if ctx.tools and "weather" in (ctx.last_user_text or ""):
        ...         return ToolCall("get_weather", {"city": "Paris"})
        ...     return TextReply(f"{ctx.instructions or 'Hi'}: {ctx.last_user_text}")
        >>> emu = Emulator(responder=responder).start()
    """

    session: dict[str, Any]
    instructions: str
    items: list[dict[str, Any]]  # the conversation, or the response's own ``input``
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any]
    output_modalities: list[str]
    metadata: dict[str, str] | None = None

    @property
    def last_item(self) -> dict[str, Any] | None:
        """The newest item of ``items`` (say, the ``function_call_output`` just sent), or None."""
        return self.items[-1] if self.items else None

    @property
    def last_user_text(self) -> str | None:
        """What the user last said: the newest user message's text or transcript, or None."""
        for item in reversed(self.items):
            if item.get("type") == "message" and item.get("role") == "user":
                return item_text(item)
        return None

    def call_for(self, call_id: str) -> dict[str, Any] | None:
        """The ``function_call`` item a ``function_call_output`` answers.

        Args:
            call_id: The output's ``call_id``.

        Returns:
            The call's item (with its ``name`` and ``arguments``), or None when ``items`` has
            no call of that id.

        Example:
            >>> out = ctx.last_item
            >>> if out and out["type"] == "function_call_output":
            ...     call = ctx.call_for(out["call_id"])
            ...     reply = TextReply(f"{call['name']} said {out['output']}")
        """
        for item in self.items:
            if item.get("type") == "function_call" and item.get("call_id") == call_id:
                return item
        return None


Responder = Callable[[ResponseContext], ResponderReply | str | Awaitable[ResponderReply | str]]
"""What decides the emulated model's words: ``responder(ctx)`` returns a :class:`TextReply`, a
:class:`ToolCall` or a ``str``, and may be async. It runs on the emulator's loop, so make slow
work async; an exception fails only that response (``status: failed``)."""


@dataclass(frozen=True)
class TranscriptionRequest:
    """One user turn's audio (mono int16) and the session's transcription settings.

    What a transcriber is called with: the turn's audio up to the pause, and the session's
    ``audio.input.transcription`` settings.

    Args:
        pcm: The audio, mono int16 samples (48 kHz for a WebRTC call).
        sample_rate: The samples' rate in Hz.
        model: The session's transcription model.
        language: The session's transcription language, or None.
        prompt: The session's transcription prompt, or None.

    Example:
        >>> from realtime_widget.emulator import Emulator, TranscriptionRequest
        >>> def transcriber(req: TranscriptionRequest) -> str:
        ...     return f"{req.duration_s:.1f}s of audio for {req.model}"
        >>> emu = Emulator(transcriber=transcriber).start()
    """

    pcm: np.ndarray
    sample_rate: int
    model: str
    language: str | None = None
    prompt: str | None = None

    @property
    def duration_s(self) -> float:
        """The audio's length in seconds (0.0 without a sample rate)."""
        return len(self.pcm) / self.sample_rate if self.sample_rate else 0.0


Transcriber = Callable[[TranscriptionRequest], str | Awaitable[str]]
"""What turns a user's speech into the input transcript: ``transcriber(request)`` returns the
text, and may be async. One passed to the emulator replaces its recognizer; an exception fails
only that transcription (``.failed``)."""


def default_transcriber(request: TranscriptionRequest) -> str:
    """No speech recognition here: say honestly what was heard.

    The placeholder transcript when no recognizer is available (no ``voice`` extra, or
    ``stt_model="none"``): the length of the audio, not its words.

    Args:
        request: The turn's audio and the session's transcription settings.

    Returns:
        ``"[speech, <seconds> s]"``.

    Example:
        >>> import numpy as np
        >>> from realtime_widget.emulator import TranscriptionRequest, default_transcriber
        >>> pcm = np.zeros(72_000, np.int16)  # 1.5 s at 48 kHz
        >>> default_transcriber(TranscriptionRequest(pcm, 48_000, "auto"))
        '[speech, 1.5 s]'
    """
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
    """Echo what was heard, call a tool the user names, and report a tool's output back.

    The emulator's own model, deterministic: after a tool's output it says the output ("The get
    weather tool returned: sky is sunny."); it calls a session tool whose name appears in the
    user's words, as written or with underscores as spaces ("use get weather for Paris"),
    filling the arguments from the words; otherwise it echoes ("You said: ... This is the local
    realtime emulator."). Wrap it in your own responder to change one case and keep the rest.

    Args:
        ctx: The response's context.

    Returns:
        A :class:`TextReply`, or a :class:`ToolCall` when the user names a tool.

    Example:
        >>> from realtime_widget.emulator import Emulator, TextReply, default_responder
        >>> def polite(ctx):
        ...     if "hello" in (ctx.last_user_text or "").lower():
        ...         return TextReply("Hello! How can I help?")
        ...     return default_responder(ctx)
        >>> emu = Emulator(responder=polite).start()
    """
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
