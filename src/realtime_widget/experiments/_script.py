"""The script: the turns of a conversation, played in order in every run.

A turn kind is a :class:`Turn` subclass with a ``kind`` name, a ``prompt`` (what the table
shows), the bytes that identify it (``identity()``, for the script's fingerprint) and how it is
played (``send()`` for a turn answered like ``ask()``, or all of ``play()`` for one that is
not). ``measure()`` may add the kind's own columns to its row (each declared in
``storage.COLUMNS``). A static factory on :class:`Script` makes the kind easy to write.

Anything with ``__len__``, ``turns_for(run)`` (an async iterator of turns), ``describe()`` and
``fingerprint`` can be played as a script (:class:`TurnSource`): a caller that makes each turn
up as the conversation goes is one.

Spoken turns (:class:`SpokenTurn`) are played under the run's condition (``ctx.condition``:
noise, a phone line, a gain), the same samples on every repeat. The turn-taking kinds (pauses,
barge-in, noise alone) live in ``turn_taking``.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .. import _vocab as V
from .._audio import ESPEAK_VOICE, ESPEAK_WPM, load_source, wav_info
from .._vocab import obj

if TYPE_CHECKING:
    from .._core import SessionCore
    from .._pending import Pending
    from .._port import CallPort
    from .._recording import Recording
    from .._waits import Reply
    from ..media._conditions import Condition
    from ._runs import Run
    from ._turn_taking import BargeInTurn, NoiseTurn, PausesTurn

Record = Mapping[str, Any]
SAY_STARTED, SAY_ENDED = "say.started", "say.ended"


@dataclass(frozen=True)
class Heard:
    """When the agent's reply to a turn was first heard.

    The runner hands it to the next turn as ``TurnContext.previous_heard``: a barge-in waits
    ``after_ms`` from it.

    Args:
        t_ms: When the reply was first heard, on the log clock (epoch ms): the page's
            ``audio.audible``, or the service's ``output_audio_buffer.started`` when the page
            heard nothing.
        kernel_ms: When the kernel learnt it, on the kernel's clock (epoch ms).
        response_id: The reply's response id, when the event named it.
        source: ``"audible"`` or ``"started"``: which of the two events it came from.

    Example:
        >>> heard = ctx.previous_heard          # in a custom turn's play()
        >>> if heard is not None:
        ...     await asyncio.sleep(max(0.0, heard.kernel_ms + 500 - time.time() * 1000) / 1000)
    """

    t_ms: float
    kernel_ms: float
    response_id: str | None
    source: str  # "audible" or "started"


@dataclass(frozen=True)
class TurnRecords:
    """What a turn's columns may be measured from, beyond its own records.

    ``Turn.measure_in`` gets one after the run: a barge-in reads how long the agent took to
    stop from the previous turn's records and the recording.

    Args:
        own: The turn's own log records, in order.
        previous: The records of the turn before it in the run (empty for the first).
        recording: The call's recording (both tracks), when the session records.

    Example:
        >>> class Quiet(Turn):
        ...     def measure_in(self, records: TurnRecords):
        ...         return {"clip_ms": None if records.recording is None else 0.0}
    """

    own: Sequence[Record]
    previous: Sequence[Record]
    recording: Recording | None


@dataclass
class TurnContext:
    """What a turn gets to play itself: the session, the call, its run and the turn's end.

    The runner makes one per turn and passes it to ``Turn.send`` / ``Turn.play``.

    Args:
        session: The widget or session playing the run: its public API (``ask``, ``say``,
            ...).
        port: The call's port (how the runner watches its records).
        run: The run the turn belongs to (its ``seed``, ``variant``, ...).
        timeout: Seconds the turn may take.
        end: Finishes once every response the turn caused is done (a tool's output answered
            too) and the agent's audio has stopped; ``await ctx.end.settled(ctx.timeout)``.
        condition: The run's condition: spoken turns play their audio through it (``None``:
            as it is).
        previous_heard: When the previous turn's reply was first heard, once it was (a
            barge-in's cue).

    Example:
        >>> class Twice(Turn):
        ...     kind = "twice"
        ...     async def play(self, ctx: TurnContext) -> None:
        ...         await ctx.session.ask(self.text, timeout=ctx.timeout)
        ...         await ctx.session.ask(self.text, timeout=ctx.timeout)
        ...         await ctx.end.settled(ctx.timeout)
    """

    session: SessionCore
    port: CallPort
    run: Run
    timeout: float
    end: Pending
    condition: Condition | None = None  # the run's condition: spoken turns play through it
    previous_heard: Heard | None = None  # the previous turn's reply, once heard (a barge-in's cue)


class Turn:
    """One turn of a :class:`Script`: a subclass per kind.

    The turn kinds (``TextTurn``, ``AudioTurn``, ``PausesTurn``, ``BargeInTurn``,
    ``NoiseTurn``, ``SavedTurn``) share these methods; ``Script.text(...)``,
    ``Script.audio(...)`` and the other factories make them. A custom kind subclasses ``Turn``
    with a ``kind`` name and either ``send()`` (a turn answered like ``ask()``) or all of
    ``play()``; ``measure()`` may add the kind's own columns to its row (each declared in
    ``realtime_widget.experiments.COLUMNS``).

    Class attributes: ``kind`` (the table's ``kind`` column), ``interrupts`` (plays over the
    previous turn's reply, so the runner hands over early) and ``expects_reply`` (a turn
    without a response is an error; not so for noise alone).

    Args:
        text: What the turn says, if it says something in words.

    Example:
        >>> class Greeting(Turn):
        ...     kind = "greeting"
        ...     def send(self, ctx: TurnContext):
        ...         return ctx.session.ask(f"Hello, I am {self.text}.", timeout=ctx.timeout)
        >>> script = Script([Greeting("Ada"), "What can you do?"])
    """

    kind: str = ""  # the kind's name, as the table's ``kind`` column shows it
    interrupts = False  # plays over the previous turn's reply (the runner hands over early)
    expects_reply = True  # a turn without a response is an error (not so for noise alone)

    def __init__(self, text: str | None = None) -> None:
        self.text = text

    @property
    def prompt(self) -> str:
        """What the turn says, as the table's ``prompt`` column shows it."""
        return self.text or ""

    @property
    def duration_ms(self) -> float | None:
        """How long the turn's audio lasts (None when it has none)."""
        return None

    def identity(self) -> Iterable[bytes]:
        """The bytes that make this turn what it is, for the script's fingerprint.

        Two turns with the same identity play the same; a kind adds what sets it apart (its
        audio, its pauses).

        Returns:
            The parts, hashed in order: by default the kind and the text.

        Example:
            >>> list(Script.text("Hi").identity())
            [b'text', b'Hi']
        """
        return (self.kind.encode(), (self.text or "").encode())

    def describe(self) -> dict[str, Any]:
        """The turn as a saved set keeps it (``_runs.json``); ``SavedTurn`` is rebuilt from it.

        Returns:
            ``{"kind": ..., "prompt": ..., "audio_ms": ...}``.

        Example:
            >>> Script.text("Hi").describe()
            {'kind': 'text', 'prompt': 'Hi', 'audio_ms': None}
        """
        return {"kind": self.kind, "prompt": self.prompt, "audio_ms": self.duration_ms}

    def send(self, ctx: TurnContext) -> Reply:
        """Send the turn into the call and return the handle of the reply it asks for.

        A kind answered like ``ask()`` implements this; ``play()`` then awaits the reply and
        the turn's end.

        Args:
            ctx: The turn's context: the session, the run, the timeout.

        Returns:
            The reply's handle, as ``ask()`` returns it.

        Raises:
            NotImplementedError: When the kind has neither ``send()`` nor its own ``play()``.

        Example:
            >>> def send(self, ctx: TurnContext):
            ...     return ctx.session.ask(self.text, timeout=ctx.timeout)
        """
        raise NotImplementedError(f"{self!r} cannot be played: it has no send() or play()")

    async def play(self, ctx: TurnContext) -> None:
        """Play the turn and wait until it is over: its reply settled and ``ctx.end``.

        The runner calls it once per turn and run. A kind that is not one question and one
        reply (a noise turn, a barge-in) overrides it.

        Args:
            ctx: The turn's context: the session, the run, the timeout, the turn's end.

        Example:
            >>> async def play(self, ctx: TurnContext) -> None:
            ...     await ctx.session.say(self.audio)
            ...     await ctx.end.settled(ctx.timeout)
        """
        await self.send(ctx).settled()
        await ctx.end.settled(ctx.timeout)

    def measure(self, records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        """This kind's own columns of its row, from the turn's records (none by default).

        Each column must be one of ``realtime_widget.experiments.COLUMNS``.

        Args:
            records: The turn's log records, in order.

        Returns:
            Column name to value.

        Example:
            >>> def measure(self, records):
            ...     return {"false_turns": sum(r["type"] == "input_audio_buffer.speech_started"
            ...                                for r in records)}
        """
        return {}

    def measure_in(self, records: TurnRecords) -> Mapping[str, Any]:
        """Columns that need more than the turn's own records (none by default).

        Measured after the run, from the previous turn's records and the call's recording as
        well.

        Args:
            records: The turn's records, the previous turn's, and the recording.

        Returns:
            Column name to value.

        Example:
            >>> def measure_in(self, records: TurnRecords):
            ...     return {"heard_ms": None if records.recording is None else 0.0}
        """
        return {}

    def __repr__(self) -> str:
        return f"Script.{self.kind}({self.prompt[:60]!r})"


class TextTurn(Turn):
    """A typed turn: ``conversation.item.create`` then ``response.create``.

    The run's seed goes as ``rtw_seed`` in the response's metadata. A plain string in a
    ``Script`` is one; ``Script.text(...)`` makes one too.

    Args:
        text: What the user types; a non-empty string.

    Raises:
        ValueError: When ``text`` is not a non-empty string.

    Example:
        >>> Script([TextTurn("Where is Paris?"), "And Rome?"])
    """

    kind = "text"

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"a text turn needs a non-empty string; got {text!r}")
        super().__init__(text)

    def send(self, ctx: TurnContext) -> Reply:
        """Ask the text as a typed turn, with the run's seed in the response's metadata.

        Args:
            ctx: The turn's context.

        Returns:
            The reply's handle.

        Example:
            >>> reply = turn.send(ctx)  # what the runner does
        """
        return ctx.session.ask(
            self.text, timeout=ctx.timeout, metadata={"rtw_seed": str(ctx.run.seed)}
        )


def say_times(records: Sequence[Record]) -> tuple[float | None, float | None]:
    """The first clip's (first sample, last sample) times in the records, on the log clock."""
    start = end = None
    clip = None
    for rec in records:
        if rec.get("direction") != "local":
            continue
        ev = obj(rec.get("event"))
        etype = ev.get("type")
        if etype == SAY_STARTED and start is None:
            start, clip = float(rec["t_ms"]), ev.get("clip_id")
        elif etype == SAY_ENDED and start is not None and ev.get("clip_id") == clip:
            end = float(rec["t_ms"])
            break
    return start, end


def answers_clip(created_ms: float, clip_end: float | None, clip_speech: float | None) -> bool:
    """Is a response created at ``created_ms`` the reply to the whole of a turn's clip?

    It is when it began after the clip's last sample (``clip_end``), or after the last speech
    the service heard start while the clip played (``clip_speech``): a service that ends the
    turn in the clip's trailing silence answers all of it. One begun at a pause, with more of
    the clip's speech after it, is not the reply. A turn with no clip (typed) has no such rule.
    """
    if clip_end is None or created_ms >= clip_end:
        return True
    return clip_speech is not None and created_ms >= clip_speech


def clip_speech_start(records: Sequence[Record], clip_end: float | None) -> float | None:
    """When the service last heard speech start up to the clip's last sample (log clock)."""
    if clip_end is None:
        return None
    starts = [t for t in server_times(records, V.SPEECH_STARTED) if t <= clip_end]
    return starts[-1] if starts else None


def server_times(records: Sequence[Record], etype: str) -> list[float]:
    """The log-clock times of the server events of ``etype``, in order."""
    return [
        float(r["t_ms"])
        for r in records
        if r.get("direction") == "server" and V.canonical(obj(r.get("event")).get("type")) == etype
    ]


class SpokenTurn(Turn):
    """A turn whose audio is a clip played into the call.

    The clip (``audio``, WAV bytes) is made once, so every run plays the same samples, then
    passed through the run's condition (each condition's clip made once, too). Its row gains
    ``clip_ms`` (the clip as played) and ``end_of_turn_ms`` (the clip's last sample -> the
    service's ``speech_stopped``). ``AudioTurn``, ``PausesTurn`` and ``BargeInTurn`` are
    spoken turns; a custom spoken kind sets ``audio`` and ``mime``.

    Args:
        text: What the clip says, if known.

    Example:
        >>> turn = Script.audio(text="What's on the menu?")
        >>> isinstance(turn, SpokenTurn)
        True
        >>> turn.duration_ms                  # the clip's length in ms
    """

    audio: bytes = b""
    mime: str = "audio/wav"

    def __init__(self, text: str | None = None) -> None:
        super().__init__(text)
        self._conditioned: dict[Condition, bytes] = {}

    def last_onset_ms(self) -> float:
        """Where the clip's last phrase starts, in ms into the clip.

        ``end_of_turn_ms`` counts the service's first ``speech_stopped`` from there on. The
        whole clip counts as one phrase by default (0); a pauses turn returns its last
        phrase's onset.

        Returns:
            Milliseconds from the clip's start.

        Example:
            >>> turn = Script.pauses(["a table for", "two"], pause_ms=900)
            >>> turn.last_onset_ms() > 900      # the first phrase, then the pause
            True
        """
        return 0.0

    def clip_for(self, condition: Condition | None) -> bytes:
        """The clip as heard under ``condition``: noise, phone line, gain applied.

        Each condition's clip is made once and kept, so every repeat plays the same samples.

        Args:
            condition: The run's condition; ``None`` gives the clip itself.

        Returns:
            The clip's encoded bytes (WAV after a condition).

        Example:
            >>> from realtime_widget import Condition
            >>> wav = turn.clip_for(Condition(telephone=True))
        """
        if condition is None:
            return self.audio
        got = self._conditioned.get(condition)
        if got is None:
            from ..media._conditions import conditioned_clip

            got = conditioned_clip(condition, self.audio, self.mime)[0]
            self._conditioned[condition] = got
        return got

    @property
    def duration_ms(self) -> float | None:
        """The clip's length in ms (None when it is not a WAV)."""
        info = wav_info(self.audio) if self.mime == "audio/wav" else None
        return round(info[3] * 1000.0 / info[0], 1) if info and info[0] else None

    def identity(self) -> Iterable[bytes]:
        """The kind, the text and the clip's bytes.

        Returns:
            The parts the script's fingerprint hashes.

        Example:
            >>> parts = list(turn.identity())
        """
        return (*super().identity(), self.audio)

    def send(self, ctx: TurnContext) -> Reply:
        """Play the clip under the run's condition, as ``ask(audio=...)`` does.

        Args:
            ctx: The turn's context (its ``condition`` shapes the clip).

        Returns:
            The reply's handle.

        Example:
            >>> reply = turn.send(ctx)  # what the runner does
        """
        return ctx.session.ask(audio=self.clip_for(ctx.condition), timeout=ctx.timeout)

    def measure(self, records: Sequence[Record]) -> Mapping[str, Any]:
        """The spoken turn's columns: ``clip_ms`` and ``end_of_turn_ms``.

        ``clip_ms`` runs from ``say.started`` to ``say.ended``; ``end_of_turn_ms`` from the
        clip's last sample to the service's first ``speech_stopped`` at or after the last
        phrase's onset (None when it never came).

        Args:
            records: The turn's log records.

        Returns:
            The columns (both None when the clip's start or end is not in the records).

        Example:
            >>> runs.turns()[["kind", "clip_ms", "end_of_turn_ms"]]  # where they show
        """
        start, end = say_times(records)
        stops = server_times(records, V.SPEECH_STOPPED)
        out: dict[str, Any] = {
            "clip_ms": end - start if start is not None and end is not None else None
        }
        if start is not None and end is not None:
            last = start + self.last_onset_ms()
            # the service's end of the user's turn: its first speech_stopped in the last phrase
            ended = next((t for t in stops if t >= last), None)
            out["end_of_turn_ms"] = ended - end if ended is not None else None
        return out


class AudioTurn(SpokenTurn):
    """Audio played into the call, as ``say()`` plays it; loaded once, so every run plays the same.

    ``Script.audio(...)`` makes one. Give a ``source`` or ``text=``, not both.

    Args:
        source: A path, WAV or other audio bytes, or ``(numpy array, sample_rate)``.
        text: Words for espeak-ng to speak (once, here) instead of a source.
        sample_rate: The rate of a bare numpy array given as ``source``.
        voice: espeak-ng's voice for ``text``.
        wpm: espeak-ng's speed for ``text``, in words per minute.

    Raises:
        TypeError: When there is neither a source nor text, or both.
        ValueError: When the audio is empty, or the text too long.

    Example:
        >>> Script([AudioTurn("order.wav"), AudioTurn(text="Anything vegetarian?")])
    """

    kind = "audio"

    def __init__(
        self,
        source: Any = None,
        *,
        text: str | None = None,
        sample_rate: int | None = None,
        voice: str = ESPEAK_VOICE,
        wpm: int = ESPEAK_WPM,
    ) -> None:
        super().__init__(text)
        data, mime, name = load_source(
            source, text=text, sample_rate=sample_rate, voice=voice, wpm=wpm
        )
        if not data:
            raise ValueError("an audio turn needs some audio; this one is empty")
        self.audio = data
        self.mime = mime
        self.source: str = name

    @property
    def prompt(self) -> str:
        """The source's name, or ``(spoken) <text>`` for a clip spoken from text."""
        return self.source if self.text is None else f"(spoken) {self.text}"


class SavedTurn(Turn):
    """A turn as a saved set describes it: its kind and prompt, not its audio.

    ``Runs.read_parquet`` rebuilds the script from these, so the set's tables, figures and
    expectations work; it cannot be played again.

    Args:
        kind: The turn's kind, as the table's ``kind`` column shows it.
        prompt: What the turn said, as the table's ``prompt`` column shows it.
        audio_ms: How long its audio lasted, if it had some.

    Example:
        >>> runs = Runs.read_parquet("runs/")
        >>> runs.script[0]
        <saved text turn 'Hello!'>
    """

    def __init__(self, kind: str, prompt: str, audio_ms: float | None = None) -> None:
        super().__init__(prompt)
        self.kind = kind
        self.audio_ms = audio_ms

    @property
    def duration_ms(self) -> float | None:
        """How long the turn's audio lasted when it was played (None for a typed turn)."""
        return self.audio_ms

    def send(self, ctx: TurnContext) -> Reply:
        """Refuse: a saved turn keeps what it said, not its audio.

        Args:
            ctx: The turn's context.

        Returns:
            Never returns.

        Raises:
            NotImplementedError: Always.

        Example:
            >>> saved = Runs.read_parquet("runs/").script[0]
            >>> saved.send(ctx)  # NotImplementedError: ... it cannot be played again
        """
        raise NotImplementedError(
            f"the {self.kind} turn {self.prompt[:60]!r} comes from a saved set, which keeps what "
            "it said but not its audio: it cannot be played again"
        )

    def __repr__(self) -> str:
        return f"<saved {self.kind} turn {self.prompt[:60]!r}>"


class TurnSource(Protocol):
    """What the runner plays: a :class:`Script`, or anything that makes its turns up as it goes.

    Anything with ``len()``, ``turns_for(run)``, ``describe()`` and ``fingerprint`` can be
    passed to ``run_script``: a simulated ``Caller`` is one, making each line up from the
    conversation so far.

    Example:
        >>> class Repeat:
        ...     fingerprint = "repeat-3"
        ...     def __len__(self):
        ...         return 3
        ...     async def turns_for(self, run):
        ...         for i in range(3):
        ...             yield TextTurn(f"Say {i + run.repeat}.")
        ...     def describe(self):
        ...         return [{"turn": i, "kind": "text", "prompt": "Say n."} for i in (1, 2, 3)]
        >>> runs = await w.run_script(Repeat(), repeat=2)
    """

    @property
    def fingerprint(self) -> str:
        """A short digest of what the source plays, saved with a set (``_runs.json``)."""
        ...

    def __len__(self) -> int:
        """The turns a run plays (at most): the progress bar's count."""
        ...

    def turns_for(self, run: Run) -> AsyncIterator[Turn]:
        """The turns of one run, in order; the next one may depend on the run so far.

        Args:
            run: The run being played (its rows fill in as its turns finish).

        Returns:
            An async iterator of the run's turns.

        Example:
            >>> async for turn in script.turns_for(run):
            ...     print(turn.prompt)
        """
        ...

    def describe(self) -> list[dict[str, Any]]:
        """The turns as a saved set keeps them, one dict each (``Turn.describe()`` plus ``turn``).

        Returns:
            One dict per turn, in order.

        Example:
            >>> script.describe()[0]
            {'turn': 1, 'kind': 'text', 'prompt': 'Hello!', 'audio_ms': None}
        """
        ...


class Script:
    """The turns of a conversation, played in order in every run of ``run_script``.

    Plain strings are typed turns; the static factories make the other kinds:
    ``Script.text(...)`` types, ``Script.audio(...)`` plays audio into the call, and
    ``Script.pauses(...)``, ``Script.barge_in(...)`` and ``Script.noise(...)`` test
    turn-taking. A script is a sequence: ``len(script)``, ``script[i]``, ``for turn in
    script``.

    Args:
        turns: The turns in order: strings or ``Turn`` s.

    Raises:
        TypeError: When a turn is neither a string nor a ``Turn``.
        ValueError: When there is no turn, or a barge-in has no turn before it that the agent
            answers.

    Example:
        >>> script = Script([
        ...     "Hello!",
        ...     Script.audio("order.wav"),
        ...     Script.barge_in(text="Sorry, make that three.", after_ms=700),
        ...     Script.text("Anything vegetarian?"),
        ... ])
        >>> runs = await w.run_script(script, variants={"fast": {"speed": 1.3}}, repeat=3)
    """

    def __init__(self, turns: Iterable[str | Turn]) -> None:
        made: list[Turn] = []
        for i, turn in enumerate(turns, 1):
            if isinstance(turn, str):
                turn = TextTurn(turn)
            if not isinstance(turn, Turn):
                raise TypeError(
                    f"turn {i}: a script holds strings, Script.text(...), Script.audio(...), "
                    "Script.pauses(...), Script.barge_in(...) or Script.noise(...); "
                    f"got {type(turn).__name__}"
                )
            if turn.interrupts and (not made or not made[-1].expects_reply):
                raise ValueError(
                    f"turn {i}: {turn!r} plays over the agent's reply to the turn before it, so "
                    "it needs a turn before it that the agent answers (a text or spoken turn)"
                )
            made.append(turn)
        if not made:
            raise ValueError("a script needs at least one turn")
        self.turns: tuple[Turn, ...] = tuple(made)

    @staticmethod
    def text(text: str) -> TextTurn:
        """A typed turn (``conversation.item.create`` + ``response.create``).

        Args:
            text: What the user types; a non-empty string.

        Returns:
            The turn.

        Example:
            >>> Script([Script.text("Where is Paris?")])
        """
        return TextTurn(text)

    @staticmethod
    def audio(
        source: Any = None,
        *,
        text: str | None = None,
        sample_rate: int | None = None,
        voice: str = ESPEAK_VOICE,
        wpm: int = ESPEAK_WPM,
    ) -> AudioTurn:
        """A spoken turn, as ``say()`` plays it; loaded once, so every run plays the same samples.

        Give a ``source`` or ``text=``, not both. ``text=`` needs espeak-ng (the
        ``espeak-ng`` program, or the ``voice`` extra).

        Args:
            source: A path, WAV or other audio bytes, or ``(numpy array, sample_rate)``.
            text: Words for espeak-ng to speak (once, here) instead of a source.
            sample_rate: The rate of a bare numpy array given as ``source``.
            voice: espeak-ng's voice for ``text``.
            wpm: espeak-ng's speed for ``text``, in words per minute.

        Returns:
            The turn.

        Example:
            >>> Script([Script.audio("order.wav"), Script.audio(text="What's on tonight?")])
        """
        return AudioTurn(source, text=text, sample_rate=sample_rate, voice=voice, wpm=wpm)

    @staticmethod
    def pauses(
        phrases: Sequence[str],
        pause_ms: float = 900,
        *,
        voice: str = ESPEAK_VOICE,
        wpm: int = ESPEAK_WPM,
    ) -> PausesTurn:
        """One spoken turn made of phrases with silences between them: does the agent wait?

        espeak-ng speaks each phrase, each is trimmed to its sound, and they are joined with
        exactly ``pause_ms`` of silence. Its row says whether the service ended the turn
        before the last phrase (``cut_off``) and how long after the last sample it ended it
        (``end_of_turn_ms``). Needs espeak-ng and numpy.

        Args:
            phrases: At least two non-empty strings; the pauses lie between them.
            pause_ms: The silence between phrases, 0 to 20,000 ms.
            voice: espeak-ng's voice.
            wpm: espeak-ng's speed, in words per minute.

        Returns:
            The turn.

        Example:
            >>> Script.pauses(["I'd like a table for", "two people", "at eight"], pause_ms=900)
        """
        from ._turn_taking import PausesTurn

        return PausesTurn(phrases, pause_ms, voice=voice, wpm=wpm)

    @staticmethod
    def barge_in(
        source: Any = None,
        *,
        text: str | None = None,
        after_ms: float = 700,
        sample_rate: int | None = None,
        voice: str = ESPEAK_VOICE,
        wpm: int = ESPEAK_WPM,
    ) -> BargeInTurn:
        """A spoken turn played over the agent's reply to the previous turn: does it stop?

        It starts ``after_ms`` after that reply was first heard. Its row says how long the
        agent took to stop (``stop_ms``, from the recording: both tracks are recorded for such
        runs), how much of the reply was heard (``heard_ms``) and what the service kept
        (``truncated_to_ms``). It needs a turn before it that the agent answers.

        Args:
            source: A path, WAV or other audio bytes, or ``(numpy array, sample_rate)``.
            text: Words for espeak-ng to speak instead of a source.
            after_ms: How long after the reply was first heard to start, 0 to 120,000 ms.
            sample_rate: The rate of a bare numpy array given as ``source``.
            voice: espeak-ng's voice for ``text``.
            wpm: espeak-ng's speed for ``text``, in words per minute.

        Returns:
            The turn.

        Example:
            >>> Script([
            ...     Script.audio(text="What's on the menu tonight?"),
            ...     Script.barge_in(text="Sorry, actually make that three.", after_ms=700),
            ... ])
        """
        from ._turn_taking import BargeInTurn

        return BargeInTurn(
            source, text=text, after_ms=after_ms, sample_rate=sample_rate, voice=voice, wpm=wpm
        )

    @staticmethod
    def noise(ms: float) -> NoiseTurn:
        """The run's condition's noise alone: does the agent take it for speech?

        It plays ``ms`` of the condition's noise (silence under no condition). No turn is
        expected, and each ``speech_started`` it causes counts as a false turn
        (``false_turns``); a noise turn with no response is ``completed``.

        Args:
            ms: How long the noise plays, 100 to 600,000 ms.

        Returns:
            The turn.

        Example:
            >>> Script(["Hello!", Script.noise(4000)])
        """
        from ._turn_taking import NoiseTurn

        return NoiseTurn(ms)

    def __len__(self) -> int:
        return len(self.turns)

    def __iter__(self) -> Iterator[Turn]:
        return iter(self.turns)

    def __getitem__(self, i: int) -> Turn:
        return self.turns[i]

    async def turns_for(self, run: Run) -> AsyncIterator[Turn]:
        """The turns of one run: every run plays the same turns.

        Args:
            run: The run being played.

        Yields:
            The script's turns, in order.

        Example:
            >>> async for turn in script.turns_for(run):
            ...     print(turn.kind, turn.prompt)
        """
        for turn in self.turns:
            yield turn

    @property
    def fingerprint(self) -> str:
        """A short digest of the turns (their kinds, texts and audio bytes)."""
        h = hashlib.sha1(usedforsecurity=False)
        for turn in self.turns:
            for part in turn.identity():
                h.update(part)
            h.update(b"\x00")
        return h.hexdigest()[:12]

    def describe(self) -> list[dict[str, Any]]:
        """The turns as a saved set keeps them: ``Turn.describe()`` of each, with its number.

        Returns:
            One dict per turn, in order.

        Example:
            >>> Script(["Hello!"]).describe()
            [{'turn': 1, 'kind': 'text', 'prompt': 'Hello!', 'audio_ms': None}]
        """
        return [{"turn": i, **t.describe()} for i, t in enumerate(self.turns, 1)]

    def __repr__(self) -> str:
        return f"Script([{', '.join(map(repr, self.turns))}])"
