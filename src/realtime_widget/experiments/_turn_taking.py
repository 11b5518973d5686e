"""The turn-taking kinds of a script: pauses in a turn, a barge-in, and noise alone.

A turn spoken with pauses in it, a barge-in over the agent's reply, and the run's noise alone.

Their columns:
- ``cut_off`` (pauses): the service ended the user's turn before the last phrase was played: a
  ``response.created`` before that phrase's first sample, or a ``speech_stopped`` before it
  followed by a ``response.created`` before the turn's real end.
- ``end_of_turn_ms`` (every spoken turn, in ``SpokenTurn``): the clip's last sample ->
  the first ``speech_stopped`` at or after the last phrase's onset.
- ``stop_ms`` (barge-in): the interrupting speech's onset -> the agent's last audible sample,
  read from the recording's agent track (10 ms frames above the page's audible level, RMS 0.01),
  up to the agent's answer or its first back-channel sound, whichever comes first, and up to
  the first silence of 600 ms after the onset (what follows that is the answer);
  ``heard_ms``: the interrupted reply's first audible sample -> that last one (from events when
  there is no recording); ``truncated_to_ms``: ``conversation.item.truncated``'s
  ``audio_end_ms``, what the service says it kept.
- ``false_turns`` (noise): each ``speech_started`` while the noise played or just after.
"""

from __future__ import annotations

import asyncio
import io
import math
import time
import wave
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import _vocab as V
from .._audio import ESPEAK_VOICE, ESPEAK_WPM, array_wav, load_source, synthesize
from .._extras import require
from .._vocab import obj
from .._vocab import text as as_text
from ._script import (
    Record,
    SpokenTurn,
    Turn,
    TurnContext,
    TurnRecords,
    answers_clip,
    clip_speech_start,
    say_times,
    server_times,
)

if TYPE_CHECKING:
    from .._recording import Recording

AUDIBLE_RMS = 0.01  # the page's own level for "audible" (about -40 dBFS)
AUDIBLE_FRAME_MS = 10.0
SPEECH_PEAK = 300 / 32768  # a sample this loud is speech, not espeak-ng's quiet lead-in
NOISE_RATE = 24_000
NOISE_TAIL_S = 0.6  # after the noise: late VAD events still count as its false turns
RESPONSE_GRACE_S = 0.5  # after a false turn's speech_stopped: time for its response.created
LEAD_SEARCH_MS = 500.0  # how far before the page's audible the reply's first sound may lie
# A silence this long after a barge-in's onset ends the interrupted reply's sound: longer than a
# voice's pause between sentences (espeak-ng's, at its slowest rate here: 370 ms).
STOP_GAP_MS = 600.0
ITEM_TRUNCATED = "conversation.item.truncated"
BACKCHANNEL = "response.backchannel.audio.delta"


def _number(field: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"{field} must be a number of milliseconds; got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{field} must be {lo:g}..{hi:g} ms; got {value!r}")
    return float(value)


def _pcm16(data: bytes, what: str) -> tuple[Any, int]:
    """A 16-bit mono WAV's samples (int16) and rate."""
    np = require("numpy", "conditions", what)
    with wave.open(io.BytesIO(data)) as f:
        if f.getsampwidth() != 2 or f.getnchannels() != 1:
            raise ValueError(f"{what}: espeak-ng gave audio that is not 16-bit mono")
        return np.frombuffer(f.readframes(f.getnframes()), "<i2"), f.getframerate()


def _speech_onset_ms(data: bytes, mime: str) -> float:
    """Where speech starts in a clip (its first sample above -40 dBFS), in ms.

    0 when the clip is not a 16-bit WAV.
    """
    if mime != "audio/wav":
        return 0.0
    np = require("numpy", "conditions", "Script.barge_in")
    try:
        with wave.open(io.BytesIO(data)) as f:
            if f.getsampwidth() != 2:
                return 0.0
            rate, channels = f.getframerate(), f.getnchannels()
            x = np.frombuffer(f.readframes(f.getnframes()), "<i2").reshape(-1, channels)
    except (wave.Error, EOFError, ValueError):
        return 0.0
    loud = np.flatnonzero(np.abs(x).max(axis=1) > SPEECH_PEAK * 32768)
    return float(loud[0]) * 1000.0 / rate if loud.size else 0.0


class PausesTurn(SpokenTurn):
    """One spoken turn: phrases (espeak-ng) with silences between them. Does the agent wait?

    ``Script.pauses(...)`` makes one. Each phrase is trimmed to its sound and the phrases are
    joined with exactly ``pause_ms`` of silence. Its row gains ``cut_off``: the service ended
    the user's turn before the last phrase was played (a ``response.created`` before that
    phrase's first sample, or a ``speech_stopped`` before it followed by a
    ``response.created`` before the turn's real end), besides a spoken turn's ``clip_ms`` and
    ``end_of_turn_ms``. Needs espeak-ng and numpy (the ``conditions`` extra).

    Args:
        phrases: At least two non-empty strings; the pauses lie between them.
        pause_ms: The silence between phrases, 0 to 20,000 ms.
        voice: espeak-ng's voice.
        wpm: espeak-ng's speed, in words per minute.

    Raises:
        TypeError: When ``phrases`` is not a list of strings, or ``pause_ms`` not a number.
        ValueError: When there are fewer than two phrases, one is empty or silent, or
            ``pause_ms`` is out of range.

    Example:
        >>> turn = PausesTurn(["I'd like a table for", "two people", "at eight"], pause_ms=900)
        >>> turn.onsets_ms                     # where each phrase starts in the clip
    """

    kind = "pauses"

    def __init__(
        self,
        phrases: Sequence[str],
        pause_ms: float = 900,
        *,
        voice: str = ESPEAK_VOICE,
        wpm: int = ESPEAK_WPM,
    ) -> None:
        if isinstance(phrases, str) or not isinstance(phrases, Sequence):
            raise TypeError(
                "phrases must be a list of strings, e.g. ['a table for', 'two people']; "
                f"got {phrases!r}"
            )
        phrases = list(phrases)
        if len(phrases) < 2 or not all(isinstance(p, str) and p.strip() for p in phrases):
            raise ValueError(
                "phrases must hold at least two non-empty strings (the pauses lie between "
                f"them); got {phrases!r}"
            )
        self.pause_ms = _number("pause_ms", pause_ms, 0.0, 20_000.0)
        self.phrases = tuple(p.strip() for p in phrases)
        super().__init__(" … ".join(self.phrases))
        np = require("numpy", "conditions", "Script.pauses")
        parts: list[Any] = []
        onsets: list[float] = []
        rate = at = 0
        for phrase in self.phrases:
            pcm, r = _pcm16(synthesize(phrase, voice=voice, wpm=wpm), "Script.pauses")
            if rate and r != rate:
                raise ValueError("espeak-ng spoke the phrases at different sample rates")
            rate = r
            loud = np.flatnonzero(np.abs(pcm) > SPEECH_PEAK * 32768)
            if not loud.size:
                raise ValueError(f"espeak-ng said nothing audible for the phrase {phrase!r}")
            if parts:  # the pause: silence between one phrase's last sound and the next's first
                parts.append(np.zeros(round(self.pause_ms * rate / 1000), np.int16))
                at += parts[-1].size
            onsets.append(at * 1000.0 / rate)
            parts.append(pcm[loud[0] : loud[-1] + 1])
            at += parts[-1].size
        self.onsets_ms: tuple[float, ...] = tuple(onsets)
        self.audio = array_wav(np.concatenate(parts), rate)
        self.mime = "audio/wav"

    @property
    def prompt(self) -> str:
        """``(spoken, <pause> ms pauses) <phrase> … <phrase>``."""
        return f"(spoken, {self.pause_ms:g} ms pauses) {self.text}"

    def identity(self) -> Iterable[bytes]:
        """A spoken turn's identity, plus the pause.

        Returns:
            The parts the script's fingerprint hashes.

        Example:
            >>> parts = list(turn.identity())
        """
        return (*super().identity(), f"pause={self.pause_ms:g}".encode())

    def last_onset_ms(self) -> float:
        """Where the last phrase starts, in ms into the clip.

        Returns:
            The last of ``onsets_ms``.

        Example:
            >>> turn.last_onset_ms() == turn.onsets_ms[-1]
            True
        """
        return self.onsets_ms[-1]

    def measure(self, records: Sequence[Record]) -> Mapping[str, Any]:
        """A spoken turn's columns, plus ``cut_off``.

        Args:
            records: The turn's log records.

        Returns:
            ``clip_ms``, ``end_of_turn_ms`` and ``cut_off`` (None when the clip never
            started).

        Example:
            >>> runs.turns().query("kind == 'pauses'").cut_off.mean()
        """
        out = dict(super().measure(records))
        start, _ = say_times(records)
        if start is None:
            return {**out, "cut_off": None}
        last = start + self.last_onset_ms()
        created = server_times(records, V.RESPONSE_CREATED)
        stops = server_times(records, V.SPEECH_STOPPED)
        final = next((t for t in stops if t >= last), math.inf)  # the turn's real end
        early = [s for s in stops if s < last]
        out["cut_off"] = any(c < last for c in created) or any(
            s < c < final for s in early for c in created
        )
        return out

    def __repr__(self) -> str:
        return f"Script.pauses({list(self.phrases)!r}, pause_ms={self.pause_ms:g})"


class BargeInTurn(SpokenTurn):
    """A clip played over the agent's reply to the previous turn. Does the agent stop?

    ``Script.barge_in(...)`` makes one. It starts ``after_ms`` after that reply was first
    heard (the page's ``audio.audible``, or ``output_audio_buffer.started``); the previous
    turn ends as soon as its reply is heard, and the runner records both tracks for such
    scripts. Its row gains, besides a spoken turn's columns:

    - ``stop_ms``: from the barge-in's speech onset to the agent's last audible sample, read
      from the recording's agent track (None when the recording does not cover it, or the
      reply was over before the barge-in);
    - ``heard_ms``: how much of the interrupted reply was played (from events when there is no
      recording);
    - ``truncated_to_ms``: ``conversation.item.truncated``'s ``audio_end_ms``, what the
      service says it kept of the reply.

    Args:
        source: A path, WAV or other audio bytes, or ``(numpy array, sample_rate)``.
        text: Words for espeak-ng to speak instead of a source.
        after_ms: How long after the reply was first heard to start, 0 to 120,000 ms.
        sample_rate: The rate of a bare numpy array given as ``source``.
        voice: espeak-ng's voice for ``text``.
        wpm: espeak-ng's speed for ``text``, in words per minute.

    Raises:
        TypeError: When ``after_ms`` is not a number, or there is neither a source nor text.
        ValueError: When ``after_ms`` is out of range or the audio is empty.

    Example:
        >>> script = Script([
        ...     Script.audio(text="What's on the menu tonight?"),
        ...     BargeInTurn(text="Sorry, actually make that three.", after_ms=700),
        ... ])
    """

    kind = "barge_in"
    interrupts = True

    def __init__(
        self,
        source: Any = None,
        *,
        text: str | None = None,
        after_ms: float = 700,
        sample_rate: int | None = None,
        voice: str = ESPEAK_VOICE,
        wpm: int = ESPEAK_WPM,
    ) -> None:
        self.after_ms = _number("after_ms", after_ms, 0.0, 120_000.0)
        super().__init__(text)
        data, mime, name = load_source(
            source, text=text, sample_rate=sample_rate, voice=voice, wpm=wpm
        )
        if not data:
            raise ValueError("a barge-in needs some audio; this one is empty")
        self.audio, self.mime, self.source = data, mime, name
        # stop_ms counts from the speech in the clip, not from a quiet lead-in
        self.speech_onset_ms = _speech_onset_ms(data, mime)

    @property
    def prompt(self) -> str:
        """``(barge-in after <after_ms> ms) <text or source>``."""
        said = self.source if self.text is None else self.text
        return f"(barge-in after {self.after_ms:g} ms) {said}"

    def identity(self) -> Iterable[bytes]:
        """A spoken turn's identity, plus ``after_ms``.

        Returns:
            The parts the script's fingerprint hashes.

        Example:
            >>> parts = list(turn.identity())
        """
        return (*super().identity(), f"after={self.after_ms:g}".encode())

    async def play(self, ctx: TurnContext) -> None:
        """Wait until ``after_ms`` past the moment the previous reply was heard, then play.

        Args:
            ctx: The turn's context; its ``previous_heard`` is the cue.

        Raises:
            RuntimeError: When the previous turn's reply was never heard (the session does not
                speak, say).

        Example:
            >>> await turn.play(ctx)  # what the runner does
        """
        lead = ctx.previous_heard
        if lead is None:
            raise RuntimeError(
                "nothing to barge in on: the agent's reply to the previous turn was never heard "
                "(no audio.audible or output_audio_buffer.started; does the session speak?)"
            )
        wait_ms = lead.kernel_ms + self.after_ms - time.time() * 1000.0
        if wait_ms > 0:
            await asyncio.sleep(wait_ms / 1000.0)
        await self.send(ctx).settled()
        await ctx.end.settled(ctx.timeout)

    def measure(self, records: Sequence[Record]) -> Mapping[str, Any]:
        """A spoken turn's columns, plus ``truncated_to_ms``.

        Args:
            records: The turn's log records.

        Returns:
            ``clip_ms``, ``end_of_turn_ms`` and ``truncated_to_ms``.

        Example:
            >>> runs.turns()[["heard_ms", "truncated_to_ms"]]
        """
        out = dict(super().measure(records))
        kept = next(
            (
                obj(r.get("event")).get("audio_end_ms")
                for r in records
                if r.get("direction") == "server"
                and obj(r.get("event")).get("type") == ITEM_TRUNCATED
            ),
            None,
        )
        number = isinstance(kept, int | float) and not isinstance(kept, bool)
        out["truncated_to_ms"] = float(kept) if number and kept is not None else None
        return out

    def measure_in(self, records: TurnRecords) -> Mapping[str, Any]:
        """``stop_ms`` and ``heard_ms``, from the previous turn's records and the recording.

        Args:
            records: The turn's records, the previous turn's, and the call's recording.

        Returns:
            ``stop_ms`` and ``heard_ms`` (None where they cannot be measured; ``stop_ms`` is
            never guessed from events).

        Example:
            >>> runs.summary()[["stop_ms_p50", "stop_ms_p95"]]
        """
        start, _ = say_times(records.own)
        lead = reply_heard(records.previous)
        if start is None or lead is None:
            return {"stop_ms": None, "heard_ms": None}
        onset = start + self.speech_onset_ms
        lead_rid, lead_heard = lead
        mine = [rid for rid in _created(records.own) if rid != lead_rid]
        # the window ends where the agent's answer to the barge-in begins (its audio started,
        # or the page heard it: whichever is first)
        # (any of its answers: one begun at a pause in the barge-in may never have been heard)
        answer = [first_heard(records.own, rid, kind) for rid in mine for kind in HEARD_KINDS]
        begun = [got[1] for got in answer if got is not None]
        # the page plays the service's back-channel ("mm-hm") into the same track: stop there
        begun += [
            float(r["t_ms"])
            for r in records.own
            if r.get("direction") == "server" and obj(r.get("event")).get("type") == BACKCHANNEL
        ][:1]
        window_end = min(begun) if begun else max(float(r["t_ms"]) for r in records.own)
        ended = [
            float(r["t_ms"])
            for r in (*records.previous, *records.own)
            if V.playback_ended(
                str(r.get("direction")), V.canonical(obj(r.get("event")).get("type"))
            )
            and as_text(obj(r.get("event")).get("response_id")) in (lead_rid, None)
        ]
        lead_end = min(ended) if ended else None
        if lead_end is not None and lead_end < onset:
            # the reply was over before the barge-in began: nothing was stopped
            return {"stop_ms": None, "heard_ms": lead_end - lead_heard}
        sound = agent_sound(records.recording, lead_heard - LEAD_SEARCH_MS, window_end)
        if sound is None:  # no recording of that stretch: what the events say
            heard = lead_end - lead_heard if lead_end is not None else None
            return {"stop_ms": None, "heard_ms": heard}
        frames = [t for t in sound if t < window_end]
        first = next((t for t in frames if t <= lead_heard + AUDIBLE_FRAME_MS), lead_heard)
        # The interrupted reply's sound is what goes on from the onset without a silence of
        # STOP_GAP_MS (its own pauses, between words and sentences, are shorter): after such a
        # silence comes the answer, even when the events that name it reached a busy page late.
        stop = onset
        for t in frames:
            if t + AUDIBLE_FRAME_MS <= onset:
                continue
            if t - stop > STOP_GAP_MS:
                break
            stop = max(stop, t + AUDIBLE_FRAME_MS)
        return {"stop_ms": stop - onset, "heard_ms": stop - first}

    def __repr__(self) -> str:
        return f"Script.barge_in({self.prompt[:60]!r})"


class NoiseTurn(Turn):
    """The run's condition's noise alone, ``ms`` long. Does the agent take it for speech?

    ``Script.noise(...)`` makes one. It plays ``Condition.noise(ms, 24000)``, silence under no
    condition. No reply is expected (a noise turn with no response is ``completed``); its row
    gains ``false_turns``, each ``speech_started`` while it played or just after, and
    ``clip_ms``. The turn waits for any false turn to end, and for the agent's answer to it.

    Args:
        ms: How long the noise plays, 100 to 600,000 ms.

    Raises:
        TypeError: When ``ms`` is not a number.
        ValueError: When ``ms`` is out of range.

    Example:
        >>> script = Script(["Hello!", NoiseTurn(4000)])
    """

    kind = "noise"
    expects_reply = False

    def __init__(self, ms: float) -> None:
        self.ms = _number("ms", ms, 100.0, 600_000.0)
        super().__init__(None)

    @property
    def prompt(self) -> str:
        """``(<seconds> s of noise alone)``."""
        return f"({self.ms / 1000:g} s of noise alone)"

    @property
    def duration_ms(self) -> float | None:
        """How long the noise plays, in ms."""
        return self.ms

    def identity(self) -> Iterable[bytes]:
        """The kind and the length.

        Returns:
            The parts the script's fingerprint hashes.

        Example:
            >>> list(NoiseTurn(4000).identity())
            [b'noise', b'4000']
        """
        return (self.kind.encode(), f"{self.ms:g}".encode())

    async def play(self, ctx: TurnContext) -> None:
        """Play the noise, then wait for any false turn, and any answer to it, to end.

        Args:
            ctx: The turn's context; its ``condition`` makes the noise.

        Example:
            >>> await turn.play(ctx)  # what the runner does
        """
        from ..media._conditions import Condition

        condition = ctx.condition if ctx.condition is not None else Condition()
        wav = array_wav(condition.noise(self.ms, NOISE_RATE), NOISE_RATE)
        heard = _SpeechWatch()
        unsubscribe = ctx.port.subscribe(heard.on_record)
        try:
            clip = ctx.session.say(wav)
            await clip.settled(self.ms / 1000.0 + ctx.timeout)
            await asyncio.sleep(NOISE_TAIL_S)
            deadline = time.monotonic() + ctx.timeout
            while heard.open and time.monotonic() < deadline:  # a false turn still going
                await asyncio.sleep(0.05)
            if heard.stopped and not heard.responses:
                await asyncio.sleep(RESPONSE_GRACE_S)
            if heard.responses:  # the agent answered the noise: let that answer finish
                await ctx.end.settled(ctx.timeout)
        finally:
            unsubscribe()

    def measure(self, records: Sequence[Record]) -> Mapping[str, Any]:
        """``false_turns`` and ``clip_ms``.

        Args:
            records: The turn's log records.

        Returns:
            ``false_turns`` (each ``speech_started``) and ``clip_ms`` (the noise as played).

        Example:
            >>> runs.summary()["false_turns_per_min"]
        """
        start, end = say_times(records)
        return {
            "false_turns": len(server_times(records, V.SPEECH_STARTED)),
            "clip_ms": end - start if start is not None and end is not None else None,
        }

    def __repr__(self) -> str:
        return f"Script.noise({self.ms:g})"


class _SpeechWatch:
    """The VAD's view of the noise while it plays.

    Is a (false) turn open, did one end, did the agent answer.
    """

    def __init__(self) -> None:
        self.open = False
        self.stopped = 0
        self.responses = 0

    def on_record(self, direction: str, event: Mapping[str, Any], t_ms: float, call: int) -> None:
        if direction != "server":
            return
        etype = V.canonical(event.get("type"))
        if etype == V.SPEECH_STARTED:
            self.open = True
        elif etype == V.SPEECH_STOPPED:
            self.open = False
            self.stopped += 1
        elif etype == V.RESPONSE_CREATED:
            self.responses += 1


# -- reading replies in records and recordings -------------------------------------------------


def _created(records: Sequence[Record]) -> list[str]:
    out = []
    for r in records:
        ev = obj(r.get("event"))
        if r.get("direction") == "server" and V.canonical(ev.get("type")) == V.RESPONSE_CREATED:
            rid = as_text(obj(ev.get("response")).get("id"))
            if rid:
                out.append(rid)
    return out


HEARD_KINDS = (
    ("audio.audible", "local"),
    (V.AUDIO_STARTED, "server"),
    (V.SPEAKER_STARTED, "local"),
)


def first_heard(
    records: Sequence[Record],
    response_id: str | None = None,
    kind: tuple[str, str] | None = None,
) -> tuple[str | None, float] | None:
    """When a reply in ``records`` was first heard, as (response id, log-clock time).

    The page's ``audio.audible``, else ``output_audio_buffer.started`` (or only ``kind``); the
    first reply, or ``response_id``'s.
    """
    for etype, direction in HEARD_KINDS if kind is None else (kind,):
        for r in records:
            ev = obj(r.get("event"))
            if r.get("direction") != direction or V.canonical(ev.get("type")) != etype:
                continue
            rid = as_text(ev.get("response_id"))
            if response_id is None or rid == response_id:
                return rid, float(r["t_ms"])
    return None


def reply_heard(records: Sequence[Record]) -> tuple[str | None, float] | None:
    """When the reply to a turn was first heard, as (response id, log-clock time).

    Of the responses that answer the turn's whole clip (``answers_clip``: all of them for a
    typed turn; one begun at a pause is not the reply), the first the page heard, else the
    first whose audio started.
    """
    _, clip_end = say_times(records)
    clip_speech = clip_speech_start(records, clip_end)
    created: dict[str, float] = {}
    for r in records:
        ev = obj(r.get("event"))
        if r.get("direction") == "server" and V.canonical(ev.get("type")) == V.RESPONSE_CREATED:
            rid = as_text(obj(ev.get("response")).get("id"))
            if rid and answers_clip(float(r["t_ms"]), clip_end, clip_speech):
                created.setdefault(rid, float(r["t_ms"]))
    for kind in HEARD_KINDS:
        for rid in created:
            got = first_heard(records, rid, kind)
            if got is not None:
                return got
    return None


def agent_sound(recording: Recording | None, start_ms: float, end_ms: float) -> list[float] | None:
    """Log-clock start times of the agent track's audible 10 ms frames between two times.

    Audible is an RMS above the page's audible level. None when the recording does not cover
    the stretch.
    """
    if recording is None or recording.t0_ms is None or end_ms <= start_ms:
        return None
    t0 = recording.t0_ms
    t1 = recording.time_of(recording.frames)
    if t0 > start_ms + LEAD_SEARCH_MS or t1 < end_ms:
        return None
    np = require("numpy", "conditions", "stop_ms")
    part = recording.window(start_ms, end_ms)
    x = part.agent
    rate = part.sample_rate
    step = max(1, round(rate * AUDIBLE_FRAME_MS / 1000.0))
    n = x.size // step
    if n == 0 or part.t0_ms is None:
        return []
    rms = np.sqrt(np.mean(np.square(x[: n * step].reshape(n, step), dtype=np.float64), axis=1))
    frame_ms = step * 1000.0 / rate
    return [part.t0_ms + i * frame_ms for i in np.flatnonzero(rms > AUDIBLE_RMS).tolist()]
