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
    """When the agent's reply to a turn was first heard: the page's ``audio.audible`` (or the
    service's ``output_audio_buffer.started`` when the page heard nothing), on the log clock,
    and when the kernel learnt it (kernel clock)."""

    t_ms: float
    kernel_ms: float
    response_id: str | None
    source: str  # "audible" or "started"


@dataclass(frozen=True)
class TurnRecords:
    """What a turn's columns may be measured from beyond its own records: the records of the
    turn before it in the run, and the call's recording (both tracks), when there is one."""

    own: Sequence[Record]
    previous: Sequence[Record]
    recording: Recording | None


@dataclass
class TurnContext:
    """What a turn gets to play itself: the widget's public API, the call's port, its run,
    the per-turn ``timeout`` and ``end``, which finishes once every response the turn caused
    is done (a tool's output answered too) and the agent's audio has stopped."""

    session: SessionCore
    port: CallPort
    run: Run
    timeout: float
    end: Pending
    condition: Condition | None = None  # the run's condition: spoken turns play through it
    previous_heard: Heard | None = None  # the previous turn's reply, once heard (a barge-in's cue)


class Turn:
    """One turn of a :class:`Script` (a subclass per kind)."""

    kind: str = ""  # the kind's name, as the table's ``kind`` column shows it
    interrupts = False  # plays over the previous turn's reply (the runner hands over early)
    expects_reply = True  # a turn without a response is an error (not so for noise alone)

    def __init__(self, text: str | None = None) -> None:
        self.text = text

    @property
    def prompt(self) -> str:
        """What the turn says, as the table shows it."""
        return self.text or ""

    @property
    def duration_ms(self) -> float | None:
        """How long the turn's audio lasts (None when it has none)."""
        return None

    def identity(self) -> Iterable[bytes]:
        """The bytes that make this turn what it is (for the script's fingerprint)."""
        return (self.kind.encode(), (self.text or "").encode())

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "prompt": self.prompt, "audio_ms": self.duration_ms}

    def send(self, ctx: TurnContext) -> Reply:
        """Send the turn into the call; the handle of the reply it asks for."""
        raise NotImplementedError(f"{self!r} cannot be played: it has no send() or play()")

    async def play(self, ctx: TurnContext) -> None:
        """Play the turn and wait until it is over (its reply settled and ``ctx.end``)."""
        await self.send(ctx).settled()
        await ctx.end.settled(ctx.timeout)

    def measure(self, records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        """This kind's own columns of its row, from the turn's records (none by default)."""
        return {}

    def measure_in(self, records: TurnRecords) -> Mapping[str, Any]:
        """Columns that need more than the turn's own records: the previous turn's, or the
        call's recording (none by default)."""
        return {}

    def __repr__(self) -> str:
        return f"Script.{self.kind}({self.prompt[:60]!r})"


class TextTurn(Turn):
    """A typed turn (``conversation.item.create`` + ``response.create``, with the run's seed
    as ``rtw_seed`` in the response's metadata)."""

    kind = "text"

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"a text turn needs a non-empty string; got {text!r}")
        super().__init__(text)

    def send(self, ctx: TurnContext) -> Reply:
        return ctx.session.ask(
            self.text, timeout=ctx.timeout, metadata={"rtw_seed": str(ctx.run.seed)}
        )


def say_times(records: Sequence[Record]) -> tuple[float | None, float | None]:
    """(first sample, last sample) of the first clip the records play, on the log clock."""
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


def server_times(records: Sequence[Record], etype: str) -> list[float]:
    """The log-clock times of the server events of ``etype``, in order."""
    return [
        float(r["t_ms"])
        for r in records
        if r.get("direction") == "server" and V.canonical(obj(r.get("event")).get("type")) == etype
    ]


class SpokenTurn(Turn):
    """A turn whose audio is a clip played into the call: WAV bytes (``audio``) made once, so
    every run plays the same samples, then passed through the run's condition (each condition's
    clip made once, too). Its row gains ``clip_ms`` (the clip as played) and
    ``end_of_turn_ms`` (the clip's last sample -> the service's ``speech_stopped``)."""

    audio: bytes = b""
    mime: str = "audio/wav"

    def __init__(self, text: str | None = None) -> None:
        super().__init__(text)
        self._conditioned: dict[Condition, bytes] = {}

    def last_onset_ms(self) -> float:
        """Where the clip's last phrase starts (ms into the clip): its whole length counts as
        one phrase by default."""
        return 0.0

    def clip_for(self, condition: Condition | None) -> bytes:
        """The clip as heard under ``condition`` (the clip itself for None)."""
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
        info = wav_info(self.audio) if self.mime == "audio/wav" else None
        return round(info[3] * 1000.0 / info[0], 1) if info and info[0] else None

    def identity(self) -> Iterable[bytes]:
        return (*super().identity(), self.audio)

    def send(self, ctx: TurnContext) -> Reply:
        return ctx.session.ask(audio=self.clip_for(ctx.condition), timeout=ctx.timeout)

    def measure(self, records: Sequence[Record]) -> Mapping[str, Any]:
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
    """Audio played into the call, as ``say()`` plays it; loaded once, so every run plays the
    same samples."""

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
        return self.source if self.text is None else f"(spoken) {self.text}"


class SavedTurn(Turn):
    """A turn as a saved set describes it (``Runs.read_parquet``): its kind and prompt, not its
    audio, so it cannot be played again."""

    def __init__(self, kind: str, prompt: str, audio_ms: float | None = None) -> None:
        super().__init__(prompt)
        self.kind = kind
        self.audio_ms = audio_ms

    @property
    def duration_ms(self) -> float | None:
        return self.audio_ms

    def send(self, ctx: TurnContext) -> Reply:
        raise NotImplementedError(
            f"the {self.kind} turn {self.prompt[:60]!r} comes from a saved set, which keeps what "
            "it said but not its audio: it cannot be played again"
        )

    def __repr__(self) -> str:
        return f"<saved {self.kind} turn {self.prompt[:60]!r}>"


class TurnSource(Protocol):
    """What the runner plays: a :class:`Script`, or anything that makes its turns up as the
    run goes."""

    @property
    def fingerprint(self) -> str: ...

    def __len__(self) -> int:
        """The turns a run plays (at most): the progress bar's count."""
        ...

    def turns_for(self, run: Run) -> AsyncIterator[Turn]:
        """The turns of one run, in order (the next one may depend on the run so far)."""
        ...

    def describe(self) -> list[dict[str, Any]]: ...


class Script:
    """The turns of a conversation, played in order: plain strings are typed turns,
    ``Script.audio(...)`` plays audio into the call, ``Script.text(...)`` types."""

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
        """A typed turn (``conversation.item.create`` + ``response.create``)."""
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
        """A spoken turn, as ``say()`` plays it: a path, WAV/other audio bytes,
        ``(numpy array, sample_rate)``, or ``text=`` spoken by espeak-ng (once, here)."""
        return AudioTurn(source, text=text, sample_rate=sample_rate, voice=voice, wpm=wpm)

    @staticmethod
    def pauses(
        phrases: Sequence[str],
        pause_ms: float = 900,
        *,
        voice: str = ESPEAK_VOICE,
        wpm: int = ESPEAK_WPM,
    ) -> PausesTurn:
        """One spoken turn made of ``phrases`` (spoken by espeak-ng) with ``pause_ms`` of
        silence between them. Its row says whether the service ended the turn before the last
        phrase (``cut_off``) and how long after the last sample it ended it
        (``end_of_turn_ms``)."""
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
        """A spoken turn that starts ``after_ms`` after the agent's reply to the previous turn
        was first heard, over that reply. Its row says how long the agent took to stop
        (``stop_ms``, from the recording: both tracks are recorded for such runs), how much of
        the reply was heard (``heard_ms``) and what the service kept (``truncated_to_ms``)."""
        from ._turn_taking import BargeInTurn

        return BargeInTurn(
            source, text=text, after_ms=after_ms, sample_rate=sample_rate, voice=voice, wpm=wpm
        )

    @staticmethod
    def noise(ms: float) -> NoiseTurn:
        """``ms`` of the run's condition's noise alone (silence under no condition): no turn is
        expected, and each ``speech_started`` it causes counts as a false turn
        (``false_turns``)."""
        from ._turn_taking import NoiseTurn

        return NoiseTurn(ms)

    def __len__(self) -> int:
        return len(self.turns)

    def __iter__(self) -> Iterator[Turn]:
        return iter(self.turns)

    def __getitem__(self, i: int) -> Turn:
        return self.turns[i]

    async def turns_for(self, run: Run) -> AsyncIterator[Turn]:
        """Every run plays the same turns."""
        for turn in self.turns:
            yield turn

    @property
    def fingerprint(self) -> str:
        """A digest of the turns (their kinds, texts and audio bytes)."""
        h = hashlib.sha1(usedforsecurity=False)
        for turn in self.turns:
            for part in turn.identity():
                h.update(part)
            h.update(b"\x00")
        return h.hexdigest()[:12]

    def describe(self) -> list[dict[str, Any]]:
        return [{"turn": i, **t.describe()} for i, t in enumerate(self.turns, 1)]

    def __repr__(self) -> str:
        return f"Script([{', '.join(map(repr, self.turns))}])"
