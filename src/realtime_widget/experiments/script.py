"""The script: the turns of a conversation, played in order in every run.

A turn kind is a :class:`Turn` subclass with a ``kind`` name, a ``prompt`` (what the table
shows), the bytes that identify it (``identity()``, for the script's fingerprint) and how it is
played (``send()`` for a turn answered like ``ask()``, or all of ``play()`` for one that is
not). ``measure()`` may add the kind's own columns to its row (each declared in
``storage.COLUMNS``). A static factory on :class:`Script` makes the kind easy to write.

Anything with ``__len__``, ``turns_for(run)`` (an async iterator of turns), ``describe()`` and
``fingerprint`` can be played as a script (:class:`TurnSource`): a caller that makes each turn
up as the conversation goes is one.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .._clips import ESPEAK_VOICE, ESPEAK_WPM, load_source, wav_info

if TYPE_CHECKING:
    from .._pending import Pending
    from .._port import CallPort
    from .._waits import Reply
    from .._widget import RealtimeWidget
    from .runs import Run


@dataclass
class TurnContext:
    """What a turn gets to play itself: the widget's public API, the call's port, its run,
    the per-turn ``timeout`` and ``end``, which finishes once every response the turn caused
    is done (a tool's output answered too) and the agent's audio has stopped."""

    widget: RealtimeWidget
    port: CallPort
    run: Run
    timeout: float
    end: Pending


class Turn:
    """One turn of a :class:`Script` (a subclass per kind)."""

    kind: str = ""  # the kind's name, as the table's ``kind`` column shows it

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
        return ctx.widget.ask(
            self.text, timeout=ctx.timeout, metadata={"rtw_seed": str(ctx.run.seed)}
        )


class AudioTurn(Turn):
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
        data, _mime, name = load_source(
            source, text=text, sample_rate=sample_rate, voice=voice, wpm=wpm
        )
        if not data:
            raise ValueError("an audio turn needs some audio; this one is empty")
        self.audio: bytes = data
        self.source: str = name

    @property
    def prompt(self) -> str:
        return self.source if self.text is None else f"(spoken) {self.text}"

    @property
    def duration_ms(self) -> float | None:
        info = wav_info(self.audio)
        return round(info[3] * 1000.0 / info[0], 1) if info and info[0] else None

    def identity(self) -> Iterable[bytes]:
        return (*super().identity(), self.audio)

    def send(self, ctx: TurnContext) -> Reply:
        return ctx.widget.ask(audio=self.audio, timeout=ctx.timeout)


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
                    f"turn {i}: a script holds strings, Script.text(...) or Script.audio(...); "
                    f"got {type(turn).__name__}"
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
