"""A simulated caller: a model plays the user, with a persona and a goal, turn by turn.

Each of its turns comes from the model given the persona, the goal and the conversation so far
(what the agent said, from its transcript). It ends when the model says the goal is met, at
``max_turns``, or on an error, and says which (``CallerTurn.ended_by``).

``w.run_script(caller, ...)`` plays it (:class:`CallerScript`, the caller bound to the widget's
endpoint and call): each line is one row of ``runs.turns()`` (kind ``caller``, ``said``), a
``caller.turn`` record in the log, and the run's ending a ``caller.ended`` record.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import _vocab as V
from .._audio import ESPEAK_VOICE, synthesize
from .._secrets import Secret, check_key
from .._vocab import ResponseText, obj
from .._vocab import text as text_of
from ..experiments._script import Turn, TurnContext
from ._models import ModelClient, ModelEndpoint, ModelError, pick_endpoint

if TYPE_CHECKING:
    from .._port import CallPort
    from .._waits import Reply
    from ..experiments._runs import Run

__all__ = [
    "CALLER_KIND",
    "CALLER_MARKER",
    "DEFAULT_CALLER_MODEL",
    "DEFAULT_SPEECH_MODEL",
    "Caller",
    "CallerLine",
    "CallerScript",
    "CallerTurn",
]

DEFAULT_CALLER_MODEL = "openai/gpt-4.1-mini"
DEFAULT_SPEECH_MODEL = "inworld-tts-1"
# The system prompt's first line: how a stand-in (the emulator's) recognises a caller request.
CALLER_MARKER = "realtime-widget caller, format 1"
ENDINGS = ("goal", "max_turns", "error", "cancelled")
CALLER_KIND = "caller"  # the turns table's ``kind`` of a caller's line
# the log's local records of a caller: each line, the speech endpoint given up, the ending
CALLER_TURN = "caller.turn"
CALLER_SPEECH_FALLBACK = "caller.speech_fallback"
CALLER_ENDED = "caller.ended"
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
    """The caller's next line.

    ``done``: the conversation ends here (``ended_by`` says why: ``goal``, ``max_turns`` or
    ``error``); a done turn's ``text`` is a closing remark that is not played. ``cached`` /
    ``latency_ms`` are the model request's (None when none was made: the opening, or ``max_turns``).
    """

    text: str
    done: bool
    goal_met: bool = False
    ended_by: str | None = None
    error: str | None = None
    cached: bool | None = None
    latency_ms: float | None = None


def _history(history: Sequence[Any]) -> list[tuple[str, str]]:
    """``history`` as (``caller`` | ``agent``, text) pairs.

    Entries may be dicts with ``role`` and ``text`` (or ``content``), or (role, text) pairs.
    """
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
    """A simulated user for ``run_script``.

    Pass a caller where a script goes: ``w.run_script(caller, variants=..., repeat=...)``. In
    each run a chat model plays the user, writing each line from the persona, the goal and the
    conversation so far (what the agent said, from its transcript), until the model says the goal
    is met, at ``max_turns``, or on an error. Each line is one row of ``runs.turns()`` (kind
    ``caller``, ``said``); ``runs.conversations()`` has one row per run with how it ended. The
    caller's model calls need the ``evaluate`` extra.

    Args:
        persona: Who they are and how they talk.
        goal: What they want done; the conversation ends when the model says it is.
        opening: Their first line; None lets the model open.
        max_turns: The caller's turns at most (an integer >= 1).
        speak: True: each line is spoken with ``voice`` through the service's
            ``/v1/audio/speech`` (espeak-ng speaks instead should that endpoint fail); False:
            typed.
        voice: The speech endpoint's voice for the caller's lines.
        model: The chat model playing the caller.
        speech_model: The speech endpoint's model for the caller's lines.
        base_url: An OpenAI-compatible service's root URL for the caller's model calls, with
            ``api_key``; by default the widget's own service and key.
        api_key: The key for ``base_url``.
        seed: Sent with every request, so the same conversation asks for the same thing; in
            ``run_script`` each run sends its own seed instead (the run's ``seed`` column).
        temperature: The chat model's sampling temperature (0..2).
        cache: True (answers cached in ``~/.cache/realtime-widget/judge/``), a directory, or
            False.

    Raises:
        ValueError: An empty persona, goal or opening, ``max_turns`` below 1, an empty voice or
            model name, a seed that is not an integer, or a temperature outside 0..2.

    Example:
        >>> from realtime_widget import Caller
        >>> diner = Caller(
        ...     persona="A busy parent, short answers, a little impatient.",
        ...     goal="Book a table for four at 7 pm on Friday.",
        ...     opening="Hi, I need a table on Friday.",
        ...     max_turns=5,
        ... )
        >>> runs = await w.run_script(diner, variants={"calm": {"speed": 1.0}}, repeat=3)
        >>> runs.conversations()[["goal_met", "ended_by", "turns"]]
    """

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

    def settings(self) -> dict[str, Any]:
        """The caller as it is kept with a set of runs (no key).

        Returns:
            The caller's settings: ``persona``, ``goal``, ``opening``, ``max_turns``, ``speak``,
            ``voice``, ``model``, ``speech_model``, ``seed`` and ``temperature``.

        Example:
            >>> Caller("A regular.", "Cancel my booking.", speak=False).settings()["speak"]
            False
        """
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

    # --- played by run_script (a source of turns) -----------------------------------------
    def __len__(self) -> int:
        """The turns a run plays at most (the progress bar's count)."""
        return self.max_turns

    @property
    def fingerprint(self) -> str:
        """A digest of the caller's settings: the same caller, the same fingerprint."""
        blob = json.dumps(self.settings(), sort_keys=True).encode()
        return hashlib.sha1(blob, usedforsecurity=False).hexdigest()[:12]

    def describe(self) -> list[dict[str, Any]]:
        """The caller as a set's manifest keeps it (its turns are made up as each run goes).

        Returns:
            One entry, standing for every turn: ``turn`` 1, ``kind`` ``"caller"``, a ``prompt``
            naming the goal, ``audio_ms`` None and the caller's :meth:`settings`.

        Example:
            >>> Caller("A regular.", "Cancel my booking.").describe()[0]["prompt"]
            'a caller: Cancel my booking.'
        """
        return [
            {
                "turn": 1,
                "kind": CALLER_KIND,
                "prompt": f"a caller: {self.goal}",
                "audio_ms": None,
                "caller": self.settings(),
            }
        ]

    def bind(self, endpoint: ModelEndpoint | None, port: CallPort | None) -> CallerScript:
        """This caller played in one widget's call.

        ``run_script`` does this for you; bind a caller yourself to drive its turns by hand.

        Args:
            endpoint: Where its model calls go unless the caller has its own ``base_url``
                (typically ``w.model_endpoint()``).
            port: The call's port its lines are logged through; None logs nothing.

        Returns:
            A :class:`CallerScript` with one model client for the whole grid.

        Example:
            >>> script = diner.bind(w.model_endpoint(), None)
        """
        return CallerScript(self, self.client(endpoint), port)

    def turns_for(self, run: Run) -> AsyncIterator[Turn]:
        """The turns of one run, asked of the caller's own endpoint.

        ``run_script`` binds the widget's endpoint instead (see :meth:`bind`); this is for a
        caller with its own ``base_url`` and ``api_key``.

        Args:
            run: The run being played (its ``seed`` goes with every request).

        Returns:
            An async iterator of the run's turns, one line at a time.

        Example:
            >>> async for turn in caller.turns_for(run):
            ...     print(turn.prompt)
        """
        return self.bind(None, None).turns_for(run)

    def client(self, endpoint: ModelEndpoint | None = None) -> ModelClient:
        """The caller's model client.

        Its own ``base_url`` / ``api_key``, else ``endpoint`` (the widget's service and key).

        Args:
            endpoint: The fallback endpoint, typically ``w.model_endpoint()``.

        Returns:
            A ``ModelClient`` (one request at a time, the caller's ``cache``).

        Example:
            >>> turn = await diner.next_turn([], client=diner.client(w.model_endpoint()))
        """
        chosen = pick_endpoint("the caller", (self.base_url, self._api_key), default=endpoint)
        return chosen.client(concurrency=1, cache=self.cache)

    # --- the prompt ------------------------------------------------------------------------
    def system_prompt(self) -> str:
        """The system message of every request: the persona, the goal and the JSON to answer.

        Returns:
            The prompt text, asking for ``{"say": "<next line>", "goal_met": <bool>}``.

        Example:
            >>> print(diner.system_prompt())
        """
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
        """The chat messages for the next line.

        The agent's words are the model's ``user`` messages, the caller's own earlier lines its
        ``assistant`` messages.

        Args:
            history: The conversation so far, oldest first: dicts with ``role`` (``"caller"`` or
                ``"user"``, ``"agent"`` or ``"assistant"``) and ``text`` (or ``content``), or
                ``(role, text)`` pairs.

        Returns:
            The system message, then the conversation as chat messages.

        Raises:
            ValueError: An entry of ``history`` is neither form, or names another role.

        Example:
            >>> diner.messages([("caller", "Hi, a table on Friday?"), ("agent", "For how many?")])
        """
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
        """The next line given the conversation so far.

        The opening (when the caller has one) and the end at ``max_turns`` need no request. A
        failed request or an answer with no line ends the conversation with ``ended_by="error"``
        rather than raising.

        Args:
            history: The caller's and the agent's lines, oldest first (as :meth:`messages`
                takes them).
            client: The model client to ask (closed by you); by default a client of the
                caller's own endpoint, closed afterwards.
            seed: Overrides the caller's seed (a run passes its own).

        Returns:
            A ``CallerTurn``: ``text`` to say, ``done`` when the conversation ends here
            (``ended_by``: ``goal``, ``max_turns`` or ``error``; a done turn's ``text`` is a
            closing remark that is not played), ``goal_met``, ``error``, and the request's
            ``cached`` and ``latency_ms``.

        Raises:
            ValueError: ``history`` is malformed (see :meth:`messages`).

        Example:
            >>> turn = await diner.next_turn(
            ...     [("caller", "Hi, a table on Friday?"), ("agent", "Sure, for how many?")],
            ...     client=diner.client(w.model_endpoint()),
            ... )
            >>> turn.text, turn.done
        """
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
        """``text`` in the caller's voice from the endpoint's ``/v1/audio/speech`` (WAV).

        Args:
            text: The line to speak.
            client: The model client whose speech endpoint speaks it.

        Returns:
            The WAV file's bytes (cached like chat answers).

        Raises:
            ModelError: The speech endpoint failed (its message scrubbed of the key).

        Example:
            >>> wav = await diner.audio("Hi, a table on Friday?", diner.client(w.model_endpoint()))
            >>> w.say(wav)
        """
        return await client.speech(text, voice=self.voice, model=self.speech_model)


def agent_words(records: Sequence[Mapping[str, Any]]) -> str:
    """What the agent said in ``records``: each response's text, else its transcript."""
    by_rid: dict[str, ResponseText] = {}
    for rec in records:
        ev = obj(rec.get("event"))
        rid = text_of(ev.get("response_id"))
        if rec.get("direction") != "server" or not rid:
            continue
        by_rid.setdefault(rid, ResponseText()).feed(ev)
    return " ".join(t.text for t in by_rid.values() if t.text)


# The caller's next line given the conversation so far: (the model's answer, its audio, the
# speech endpoint's time).
NextLine = tuple["CallerTurn", bytes | None, float | None]


class AgentWords:
    """Hears one turn's server events as they arrive.

    What the agent has said so far, and ``final`` once a response ends without asking for a tool
    (its words are all known, while its audio may still be playing).
    """

    def __init__(self, call: int, on_final: Callable[[str], None]) -> None:
        self.call = call
        self.on_final = on_final
        self.texts: dict[str, ResponseText] = {}
        self.final: str | None = None

    def hear(self, direction: str, event: Mapping[str, Any], t_ms: float, call: int) -> None:
        if direction != "server" or call != self.call or self.final is not None:
            return
        etype = V.canonical(event.get("type"))
        if etype == V.RESPONSE_DONE:
            resp = obj(event.get("response"))
            output = resp.get("output")
            asks_tool = any(
                obj(item).get("type") == "function_call"
                for item in (output if isinstance(output, list) else [])
            )
            if resp.get("status") == "completed" and not asks_tool:
                self.final = " ".join(t.text for t in self.texts.values() if t.text)
                self.on_final(self.final)
            return
        rid = text_of(event.get("response_id"))
        if rid:
            self.texts.setdefault(rid, ResponseText()).feed(event)


class CallerLine(Turn):
    """One line of a simulated caller, already chosen.

    Typed, or spoken (the speech endpoint's audio, else espeak-ng). After it is played,
    ``agent_said`` holds the agent's answer.

    ``ahead`` (given by :class:`CallerScript`) is called with the agent's words as soon as its
    reply's last response is done, while its audio still plays: the next line is asked for
    then, so the model's and the speech endpoint's time overlap the agent's audio.
    """

    kind = CALLER_KIND

    def __init__(
        self,
        line: str,
        *,
        speak: bool,
        audio: bytes | None = None,
        caller_ms: float | None = None,
        speech_ms: float | None = None,
        ahead: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(line)
        self.line = line
        self.speak = speak
        self.audio = audio
        self.caller_ms = caller_ms
        self.speech_ms = speech_ms
        self.ahead = ahead
        self.agent_said = ""
        self.played = False  # its turn is over: too late to ask ahead for the next line

    @property
    def prompt(self) -> str:
        return f"(spoken) {self.line}" if self.speak else self.line

    def identity(self) -> Sequence[bytes]:
        return (self.kind.encode(), self.line.encode(), self.audio or b"")

    def send(self, ctx: TurnContext) -> Reply:
        """Type the line, or speak it.

        The speech endpoint's audio, else espeak-ng's, under the run's condition when it has one (as
        a script's spoken turns are).
        """
        w = ctx.session
        if not self.speak:
            return w.ask(self.line, timeout=ctx.timeout, metadata={"rtw_seed": str(ctx.run.seed)})
        if self.audio is None and ctx.condition is None:
            return w.ask(self.line, spoken=True, voice=ESPEAK_VOICE, timeout=ctx.timeout)
        audio = self.audio if self.audio is not None else synthesize(self.line, voice=ESPEAK_VOICE)
        if ctx.condition is not None:
            from ..media._conditions import conditioned_clip

            audio = conditioned_clip(ctx.condition, audio, "audio/wav")[0]
        return w.ask(audio=audio, timeout=ctx.timeout)

    async def play(self, ctx: TurnContext) -> None:
        events = ctx.session.events
        lo = len(events)
        call = ctx.session.call_number
        unsubscribe: Callable[[], None] | None = None
        loop = asyncio.get_running_loop()
        if self.ahead is not None:
            ahead = self.ahead

            def start(said: str) -> None:
                # records may be heard on another thread (a kernel subshell): start on the loop
                loop.call_soon_threadsafe(ahead, said)

            words = AgentWords(call, start)
            unsubscribe = ctx.port.subscribe(words.hear)
        try:
            await super().play(ctx)
        finally:
            self.played = True
            if unsubscribe is not None:
                unsubscribe()
            records = [events.record(i) for i in range(lo, len(events))]
            self.agent_said = agent_words([r for r in records if r["call_number"] == call])

    def measure(self, records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        return {"said": self.line, "caller_ms": self.caller_ms, "speech_ms": self.speech_ms}

    def __repr__(self) -> str:
        return f"CallerLine({self.prompt[:60]!r})"


class CallerScript:
    """A :class:`Caller` played in one grid.

    What ``run_script`` plays when given a caller (``caller.bind(...)`` makes one): the caller,
    its model client (one per grid) and the call's port its lines are logged through. Each run's
    turns are made up as it goes; each line is spoken through the speech endpoint until that
    fails once, then by espeak-ng (a ``caller.speech_fallback`` record says so).

    Args:
        caller: The caller played.
        client: The model client for its chat and speech requests.
        port: The call's port its lines (``caller.turn``) and its ending (``caller.ended``) are
            logged through; None logs nothing.

    Attributes:
        caller: The caller played.
        client: Its model client.
        speech_failed: The speech endpoint's failure, once it had one; else None.

    Example:
        >>> script = caller.bind(w.model_endpoint(), None)
        >>> len(script) == caller.max_turns
        True
    """

    def __init__(self, caller: Caller, client: ModelClient, port: CallPort | None) -> None:
        self.caller = caller
        self.client = client
        self.port = port
        self.speech_failed: str | None = None  # the speech endpoint's failure, once it had one

    def __len__(self) -> int:
        return len(self.caller)

    @property
    def fingerprint(self) -> str:
        """The caller's fingerprint: a digest of its settings."""
        return self.caller.fingerprint

    def describe(self) -> list[dict[str, Any]]:
        """The caller as a set's manifest keeps it.

        Returns:
            :meth:`Caller.describe`'s one entry.

        Example:
            >>> script.describe()[0]["kind"]
            'caller'
        """
        return self.caller.describe()

    def __repr__(self) -> str:
        return f"<{self.caller!r} in run_script>"

    def _log(self, event: dict[str, Any]) -> None:
        if self.port is not None:
            self.port.log_local(event)

    async def _audio(self, line: str) -> tuple[bytes | None, float | None]:
        """The line in the caller's voice from the speech endpoint, and its time.

        (None, None) once the endpoint failed (espeak-ng speaks instead).
        """
        if self.speech_failed is not None:
            return None, None
        t0 = time.perf_counter()
        try:
            audio = await self.caller.audio(line, self.client)
        except ModelError as exc:
            if self.speech_failed is None:
                self.speech_failed = str(exc)
                self._log({"type": CALLER_SPEECH_FALLBACK, "reason": self.speech_failed,
                           "speaks_with": "espeak-ng"})  # fmt: skip
            return None, None
        return audio, (time.perf_counter() - t0) * 1000.0

    async def _next(self, history: list[tuple[str, str]], seed: int) -> NextLine:
        turn = await self.caller.next_turn(history, client=self.client, seed=seed)
        if turn.done or not self.caller.speak:
            return turn, None, None
        audio, speech_ms = await self._audio(turn.text)
        return turn, audio, speech_ms

    async def turns_for(self, run: Run) -> AsyncIterator[Turn]:
        """Ask the model for each line given the conversation so far, one turn at a time.

        The lines go on until the model says the goal is met, at ``max_turns``, or on an error;
        the run's seed goes with every request. The next line is asked for as soon as the
        agent's words are known (its last response done), and asked again should its answer
        then change, so the model's time overlaps the agent's audio.

        Args:
            run: The run being played (its ``seed``, ``index`` and ``error``).

        Yields:
            One turn per caller line, typed or spoken; a turn's ``agent_said`` holds the agent's
            answer once it is played.

        Example:
            >>> async for turn in script.turns_for(run):
            ...     await turn.play(ctx)
        """
        caller = self.caller
        history: list[tuple[str, str]] = []
        said = 0
        ended: CallerTurn | None = None
        early: tuple[str, asyncio.Task[NextLine]] | None = None

        def ahead_of(line: CallerLine, so_far: list[tuple[str, str]]) -> Callable[[str], None]:
            def ahead(agent: str) -> None:
                nonlocal early
                # only while this line's turn is still being played (not once the run went on)
                if early is None and not line.played and len(so_far) < 2 * caller.max_turns:
                    task = asyncio.ensure_future(self._next([*so_far, ("agent", agent)], run.seed))
                    early = (agent, task)

            return ahead

        try:
            while True:
                if run.error is not None:  # the variant was not applied: no call to talk to
                    ended = CallerTurn("", True, ended_by="error", error=run.error)
                    break
                got: NextLine | None = None
                if early is not None:
                    (agent, task), early = early, None
                    if history and history[-1] == ("agent", agent):
                        got = await task
                    else:  # the agent said more after its reply seemed done: ask again
                        task.cancel()
                if got is None:
                    got = await self._next(history, run.seed)
                turn, audio, speech_ms = got
                if turn.done:
                    ended = turn
                    break
                said += 1
                self._log(
                    {
                        "type": CALLER_TURN,
                        "run": run.index,
                        "turn": said,
                        "text": turn.text,
                        "spoken": caller.speak,
                        "speech": None if not caller.speak else (
                            "endpoint" if audio is not None else "espeak-ng"),
                        "latency_ms": turn.latency_ms,
                        "model": caller.model,
                        "cached": turn.cached,
                        "speech_ms": speech_ms,
                    }
                )  # fmt: skip
                history.append(("caller", turn.text))
                line = CallerLine(
                    turn.text,
                    speak=caller.speak,
                    audio=audio,
                    caller_ms=turn.latency_ms,
                    speech_ms=speech_ms,
                )
                line.ahead = ahead_of(line, list(history))
                yield line
                history.append(("agent", line.agent_said))
            assert ended is not None  # every way out of the loop says how it ended
            self._log(
                {
                    "type": CALLER_ENDED,
                    "run": run.index,
                    "turns": said,
                    "ended_by": ended.ended_by,
                    "goal_met": ended.goal_met,
                    "error": ended.error,
                    "closing": ended.text or None,
                }
            )
        finally:
            if early is not None:
                early[1].cancel()
            await self.client.aclose()
