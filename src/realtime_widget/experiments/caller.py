"""A simulated caller: a model plays the user, with a persona and a goal, turn by turn.

Each of its turns comes from the model given the persona, the goal and the conversation so far
(what the agent said, from its transcript). It ends when the model says the goal is met, at
``max_turns``, or on an error, and says which (``CallerTurn.ended_by``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._secrets import Secret, check_key
from .models import ModelClient

__all__ = ["CALLER_MARKER", "DEFAULT_CALLER_MODEL", "DEFAULT_SPEECH_MODEL", "Caller", "CallerTurn"]

DEFAULT_CALLER_MODEL = "openai/gpt-4.1-mini"
DEFAULT_SPEECH_MODEL = "inworld-tts-1"
# The system prompt's first line: how a stand-in (the emulator's) recognises a caller request.
CALLER_MARKER = "realtime-widget caller, format 1"
ENDINGS = ("goal", "max_turns", "error", "cancelled")
_ROLES = {"caller": "caller", "user": "caller", "agent": "agent", "assistant": "agent"}
_OPEN = "(The call has just been answered. Say your first line.)"

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"say": {"type": "string"}, "goal_met": {"type": "boolean"}},
    "required": ["say", "goal_met"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class CallerTurn:
    """The caller's next line. ``done``: the conversation ends here (``ended_by`` says why:
    ``goal``, ``max_turns`` or ``error``); a done turn's ``text`` is a closing remark that is
    not played. ``cached`` / ``latency_ms`` are the model request's (None when none was made:
    the opening, or ``max_turns``)."""

    text: str
    done: bool
    goal_met: bool = False
    ended_by: str | None = None
    error: str | None = None
    cached: bool | None = None
    latency_ms: float | None = None


def _history(history: Sequence[Any]) -> list[tuple[str, str]]:
    """``history`` as (``caller`` | ``agent``, text) pairs; entries may be dicts with
    ``role`` and ``text`` (or ``content``), or (role, text) pairs."""
    out = []
    for i, entry in enumerate(history):
        if isinstance(entry, Mapping):
            role, text = entry.get("role"), entry.get("text", entry.get("content"))
        elif isinstance(entry, Sequence) and not isinstance(entry, str) and len(entry) == 2:
            role, text = entry
        else:
            raise ValueError(
                f"history[{i}] must be a dict with role and text, or a (role, text) pair"
            )
        if role not in _ROLES:
            raise ValueError(
                f"history[{i}]: role must be 'caller' (or 'user') or 'agent', not {role!r}"
            )
        out.append((_ROLES[str(role)], "" if text is None else str(text)))
    return out


class Caller:
    """A simulated user for ``run_script``: ``persona`` (who they are, how they talk), ``goal``
    (what they want done; the conversation ends when the model says it is), ``opening`` (their
    first line; else the model opens), ``max_turns`` (the caller's turns at most), ``speak``
    (True: each line is spoken with ``voice`` through the service's ``/v1/audio/speech``;
    False: typed), ``model`` (the chat model playing the caller), ``seed`` (sent with every
    request, so a repeat asks for the same thing). ``base_url`` / ``api_key`` default to the
    widget's own service and key."""

    def __init__(
        self,
        persona: str,
        goal: str,
        *,
        opening: str | None = None,
        max_turns: int = 6,
        speak: bool = True,
        voice: str = "Dennis",
        model: str = DEFAULT_CALLER_MODEL,
        speech_model: str = DEFAULT_SPEECH_MODEL,
        base_url: str | None = None,
        api_key: str | None = None,
        seed: int = 0,
        temperature: float = 0.7,
        cache: bool | str | os.PathLike[str] = True,
    ) -> None:
        for name, value in (("persona", persona), ("goal", goal)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string")
        if opening is not None and (not isinstance(opening, str) or not opening.strip()):
            raise ValueError("opening must be a non-empty string, or None to let the model open")
        if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
            raise ValueError(f"max_turns must be an integer >= 1, not {max_turns!r}")
        if not isinstance(voice, str) or not voice:
            raise ValueError("voice must be a voice name such as 'Dennis'")
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a model name such as {DEFAULT_CALLER_MODEL!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, not {seed!r}")
        if not 0 <= temperature <= 2:
            raise ValueError(f"temperature must be between 0 and 2, not {temperature!r}")
        self.persona = persona.strip()
        self.goal = goal.strip()
        self.opening = opening.strip() if opening else None
        self.max_turns = max_turns
        self.speak = bool(speak)
        self.voice = voice
        self.model = model
        self.speech_model = speech_model
        self.base_url = base_url
        self._api_key = Secret(check_key(api_key)) if api_key else None
        self.seed = seed
        self.temperature = temperature
        self.cache = cache

    def __repr__(self) -> str:
        how = f"spoken ({self.voice})" if self.speak else "typed"
        return (
            f"Caller(goal={self.goal!r}, max_turns={self.max_turns}, {how}, model={self.model!r})"
        )

    def describe(self) -> dict[str, Any]:
        """The caller as it is kept with a set of runs (no key)."""
        return {
            "persona": self.persona,
            "goal": self.goal,
            "opening": self.opening,
            "max_turns": self.max_turns,
            "speak": self.speak,
            "voice": self.voice,
            "model": self.model,
            "speech_model": self.speech_model,
            "seed": self.seed,
            "temperature": self.temperature,
        }

    def client(
        self, base_url: str | None = None, api_key: str | Secret | None = None
    ) -> ModelClient:
        """The caller's model client: its own ``base_url`` / ``api_key``, else the given ones."""
        url = self.base_url or base_url
        key = self._api_key or api_key
        if not url or not key:
            raise ValueError(
                "the caller has no endpoint: pass Caller(base_url=..., api_key=...), or play it "
                "through run_script (the widget's service and key are used)"
            )
        return ModelClient(url, key, concurrency=1, cache=self.cache)

    # --- the prompt ------------------------------------------------------------------------
    def system_prompt(self) -> str:
        return (
            f"{CALLER_MARKER}\n"
            "You play a person calling a voice agent. Stay in character; never say you are an AI.\n"
            f"Persona: {self.persona}\n"
            f"Goal: {self.goal}\n"
            "Each of your turns is one short spoken line (a sentence or two, as people talk on "
            "the phone). Work towards the goal, answer the agent's questions, and say when it is "
            'done. Answer with one JSON object and nothing else: {"say": "<your next line>", '
            '"goal_met": <true once the agent has done what the goal asks, else false>}.'
        )

    def messages(self, history: Sequence[Any]) -> list[dict[str, str]]:
        """The chat messages for the next line: the agent's words are the model's ``user``
        messages, the caller's own earlier lines its ``assistant`` messages."""
        msgs = [{"role": "system", "content": self.system_prompt()}]
        pairs = _history(history)
        if not pairs or pairs[0][0] == "caller":
            msgs.append({"role": "user", "content": _OPEN})
        for role, text in pairs:
            if role == "caller":
                msgs.append({"role": "assistant", "content": text})
            else:
                msgs.append({"role": "user", "content": text or "(the agent said nothing)"})
        return msgs

    async def next_turn(
        self, history: Sequence[Any], *, client: ModelClient | None = None, seed: int | None = None
    ) -> CallerTurn:
        """The next line given the conversation so far (``history``: the caller's and the
        agent's lines, oldest first). ``seed`` overrides the caller's (a run passes its own)."""
        pairs = _history(history)
        said = sum(1 for role, _ in pairs if role == "caller")
        if said >= self.max_turns:
            return CallerTurn("", True, ended_by="max_turns")
        if said == 0 and self.opening:
            return CallerTurn(self.opening, False)
        own = client is None
        model_client = client or self.client()
        params = {"temperature": self.temperature, "seed": self.seed if seed is None else seed}
        try:
            reply = await model_client.chat_json(
                self.messages(pairs),
                model=self.model,
                schema=_SCHEMA,
                schema_name="caller_turn",
                params=params,
            )
        finally:
            if own:
                await model_client.aclose()
        if reply.error or reply.data is None:
            return CallerTurn(
                "", True, ended_by="error", error=reply.error or "no answer",
                cached=reply.cached, latency_ms=reply.latency_ms,
            )  # fmt: skip
        say = reply.data.get("say")
        goal_met = reply.data.get("goal_met") is True
        text = say.strip() if isinstance(say, str) else ""
        if goal_met:
            return CallerTurn(text, True, True, "goal", None, reply.cached, reply.latency_ms)
        if not text:
            return CallerTurn(
                "", True, ended_by="error",
                error=f"the caller's model gave no line to say: {reply.text!r}"[:300],
                cached=reply.cached, latency_ms=reply.latency_ms,
            )  # fmt: skip
        return CallerTurn(text, False, False, None, None, reply.cached, reply.latency_ms)

    async def audio(self, text: str, client: ModelClient) -> bytes:
        """``text`` in the caller's voice from the endpoint's ``/v1/audio/speech`` (WAV)."""
        return await client.speech(text, voice=self.voice, model=self.speech_model)
