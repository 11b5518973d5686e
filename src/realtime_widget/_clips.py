"""Audio from Python into the call: ``w.say(...)``.

A clip (a file, WAV or other encoded bytes, a numpy array, or text synthesized here with
espeak-ng) travels to the page as ``play`` messages, chunks of at most
``limits.max_chunk_bytes`` in binary buffers (base64 in the message where the host drops
buffers, see ``_delivery.Delivery``). The page decodes it, plays it into the outgoing mix at
real time with the microphone ducked, and records ``say.started`` / ``say.ended`` /
``say.error`` on the log clock; those records fill in the clip's handle.

Clips wait, like client events, until the call's ``connect`` message has gone out; a call that
ends first takes its waiting clips with it (their handles say so).
"""

from __future__ import annotations

import base64
import math
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import _bridge as B
from ._audio import ESPEAK_VOICE, ESPEAK_WPM, MAX_SOURCE_CHARS, load_source, wav_info
from ._pending import Pending, new_id
from ._turns import text as _str

if TYPE_CHECKING:
    from ._delivery import Delivery
    from ._port import CallPort

DEFAULT_DUCK = 0.1  # the microphone's gain while a clip plays: room noise must not hold a turn

# -- the handle ------------------------------------------------------------------------------


class Clip(Pending):
    """One clip sent with ``say()`` (or a spoken ``ask()``): fills in as it plays.

    From the page's records (the kernel's, in a ``RealtimeSession``): ``started_ms`` /
    ``ended_ms`` (log clock: the clip's first and last sample in the outgoing mix),
    ``duration_ms``, ``stopped`` (cut by ``stop()`` or the call's end), ``sent``, ``error``; and
    what it is: ``clip_id``, ``call``, ``source`` (the path, ``"bytes"``, ``"array"`` or
    ``"text: ..."``), ``mime``, ``duck``, ``bytes``. ``await clip`` returns the clip once it
    finished playing; it raises if the clip could not play. Made by ``say()``, not by hand.

    Args:
        delivery: The session's delivery check (a clip needs the page's messages).
        clip_id: The clip's own id, as the log's ``say.*`` records name it.
        call: The number of the call it plays into.
        source: What was played, as the log names it.
        data: The encoded audio (WAV, or another format the page decodes).
        mime: The audio's MIME type (``"audio/wav"``, ...).
        duck: The microphone's gain while the clip plays, 0 to 1.
        suspended: Gives why the page's audio is suspended (the browser waits for a click), or
            None; a timeout names it.
        stop: Stops the clip in the page (or drops it from the queue).

    Example:
        >>> clip = w.say(text="I'd like to book a table.")
        >>> clip = await clip
        >>> clip.ended_ms - clip.started_ms
        1712.0
    """

    _what = "the clip"

    def __init__(
        self,
        delivery: Delivery,
        *,
        clip_id: str,
        call: int,
        source: str,
        data: bytes,
        mime: str,
        duck: float,
        suspended: Callable[[], str | None],
        stop: Callable[[Clip], None],
    ) -> None:
        super().__init__(delivery)
        self.clip_id = clip_id
        self.call = call
        self.source = source
        self.mime = mime
        self.duck = duck
        self.bytes = len(data)
        info = wav_info(data) if mime == "audio/wav" else None
        self.duration_ms: float | None = (
            round(info[3] * 1000.0 / info[0], 1) if info and info[0] else None
        )
        self.started_ms: float | None = None
        self.ended_ms: float | None = None
        self.stopped = False
        self.sent = False
        self.error: str | None = None
        self._data: bytes | None = data  # released once sent
        self._suspended = suspended
        self._stop = stop
        self._when_ended: list[Callable[[Clip], Any]] = []
        # generous: clips queue behind each other in the page
        self._default_timeout = (self.duration_ms or 60_000.0) / 1000.0 + 60.0

    def stop(self) -> None:
        """Stop playing, or drop the clip if it has not gone out yet; then ``stopped`` is True.

        Example:
            >>> clip = w.say("long_story.wav")
            >>> clip.stop()
        """
        if not self._finished:
            self._stop(self)

    def _timeout_words(self, timeout: float) -> str:
        words = f"clip {self.clip_id} did not finish playing within {timeout:g} s"
        if self.started_ms is None:
            words += " (it never started"
            suspended = self._suspended()
            if suspended:
                words += (
                    f": the page's audio is suspended ({suspended}); click anywhere in the page, "
                    "browsers start audio only after a user gesture"
                )
            words += ")"
        return words

    def when_ended(self, fn: Callable[[Clip], Any]) -> None:
        """Call ``fn(clip)`` once the clip has played to its end (not when it failed).

        A clip cut by ``stop()`` while it played ends too (``clip.stopped`` says so). Register
        it before the clip ends: a clip that ended already does not call it.

        Args:
            fn: A function of the clip; it runs on the thread that heard the clip end.

        Example:
            >>> clip = w.say(text="One moment, please.")
            >>> clip.when_ended(lambda c: print(f"played {c.duration_ms:.0f} ms"))
        """
        self._when_ended.append(fn)

    def _take_data(self) -> bytes:
        """The clip's bytes, once: they are not kept after they went to the page."""
        data, self._data = self._data or b"", None
        return data

    def _mark_ended(self, event: Mapping[str, Any], t_ms: float) -> None:
        """The page's ``say.ended`` record: the clip finished playing at ``t_ms``."""
        if self.ended_ms is None:
            self.ended_ms = t_ms
        self.stopped = bool(event.get("stopped")) or self.stopped
        dur = event.get("duration_ms")
        if isinstance(dur, int | float) and not isinstance(dur, bool):
            self.duration_ms = float(dur)
        if self._finish():
            for fn in self._when_ended:
                fn(self)

    def _fail(self, words: str, exc_type: type[Exception] = RuntimeError) -> None:
        """The clip could not play (or finish): ``error`` says why, awaiters raise it."""
        if not self._finished:
            self.error = words
            self._finish(exc_type(words))

    def __repr__(self) -> str:
        if self.error:
            state = f"error: {self.error}"
        elif self.ended_ms is not None:
            state = "stopped" if self.stopped else "played"
        elif self.started_ms is not None:
            state = "playing"
        else:
            state = "sent" if self.sent else "queued"
        dur = f", {self.duration_ms / 1000:.2f} s" if self.duration_ms else ""
        src = self.source if len(self.source) <= 60 else self.source[:59] + "…"
        return f"<Clip {self.clip_id} {state}{dur}: {src!r}>"


class ClipPlayer:
    """The clips of one widget: sends them, hears their records, stops them."""

    def __init__(self, port: CallPort, delivery: Delivery) -> None:
        self._port = port
        self._delivery = delivery
        self._lock = threading.RLock()
        self._queue: list[Clip] = []  # waiting for the call's connect message
        self._clips: dict[str, Clip] = {}  # sent, not finished
        self.suspended: str | None = None  # the page's last audio.suspended message
        port.subscribe(self.on_record)

    def say(
        self,
        source: Any = None,
        *,
        text: str | None = None,
        duck: float = DEFAULT_DUCK,
        sample_rate: int | None = None,
        voice: str = ESPEAK_VOICE,
        wpm: int = ESPEAK_WPM,
        condition: Any = None,
    ) -> Clip:
        port = self._port
        if not port.live:
            raise RuntimeError(
                f"say() needs a call to play into (status {port.status!r}): connect() first, or "
                "click Connect"
            )
        if isinstance(duck, bool) or not isinstance(duck, int | float) or not 0 <= duck <= 1:
            raise ValueError(
                f"duck is the microphone's gain while the clip plays, 0..1; got {duck!r}"
            )
        data, mime, name = load_source(
            source, text=text, sample_rate=sample_rate, voice=voice, wpm=wpm
        )
        if condition is not None:  # the samples as a place or a phone line would pass them on
            from .media._conditions import conditioned_clip

            data, mime = conditioned_clip(condition, data, mime)
        if not data:
            raise ValueError("the clip is empty")
        clip = Clip(
            self._delivery,
            clip_id=new_id("clip"),
            call=port.call,
            source=name[:MAX_SOURCE_CHARS],
            data=data,
            mime=mime,
            duck=float(duck),
            suspended=lambda: self.suspended,
            stop=self._stop,
        )
        with self._lock:
            self._queue.append(clip)
        self.flush()
        return clip

    def flush(self) -> None:
        """Send queued clips once the browser knows the call (its connect message went out)."""
        port = self._port
        with self._lock:
            if not self._queue or not port.browser_has_call:
                return
            queue, self._queue = self._queue, []
            for clip in queue:
                if clip.call != port.call:
                    clip._fail("its call ended before the clip could be sent", ConnectionError)
                    continue
                self._clips[clip.clip_id] = clip
                self._send(clip)

    def _send(self, clip: Clip) -> None:
        data = clip._take_data()
        as_b64 = not self._delivery.buffers_to_browser
        size = B.LIMITS["max_chunk_bytes"]
        if as_b64:  # the JSON field is 4/3 of the bytes: keep each message under the limit
            size = size * 3 // 4
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        page = self._port.page or ""
        for index, chunk in enumerate(chunks):
            message = B.message(
                B.PLAY,
                call=clip.call,
                page=page,
                clip_id=clip.clip_id,
                index=index,
                last=len(chunks) - 1,
                mime=clip.mime,
                duck=clip.duck,
                source=clip.source,
                b64=base64.b64encode(chunk).decode("ascii") if as_b64 else "",
            )
            self._port.post(message, [] if as_b64 else [chunk])
        clip.sent = True

    def _stop(self, clip: Clip) -> None:
        port = self._port
        with self._lock:
            if clip in self._queue:
                self._queue.remove(clip)
                clip.stopped = True
                clip._finish()
                return
        if clip.sent and port.browser_has_call and clip.call == port.call:
            port.post(
                B.message(B.STOP_CLIP, call=clip.call, page=port.page or "", clip_id=clip.clip_id)
            )

    def on_record(self, direction: str, event: Mapping[str, Any], t_ms: float, call: int) -> None:
        if direction != "local":
            if self._queue:  # a record of the current call: the browser knows the call
                self.flush()
            return
        etype = event.get("type")
        if etype == "audio.suspended":
            self.suspended = _str(event.get("message")) or "suspended"
            return
        if etype not in ("say.started", "say.ended", "say.error"):
            if self._queue:
                self.flush()
            return
        with self._lock:
            clip = self._clips.get(_str(event.get("clip_id")) or "")
            if clip is not None and etype != "say.started":
                del self._clips[clip.clip_id]
        if clip is None:
            return
        if etype == "say.started":
            self.suspended = None
            if clip.started_ms is None:
                clip.started_ms = t_ms
            dur = event.get("duration_ms")
            if isinstance(dur, int | float) and not isinstance(dur, bool) and math.isfinite(dur):
                clip.duration_ms = float(dur)
        elif etype == "say.ended":
            clip._mark_ended(event, t_ms)
        else:
            words = _str(event.get("message")) or "the page could not play it"
            clip._fail(f"the page could not play clip {clip.clip_id}: {words}")

    def call_ended(self, words: str) -> None:
        with self._lock:
            clips = [*self._queue, *self._clips.values()]
            self._queue, self._clips = [], {}
        for clip in clips:
            if clip.started_ms is not None:
                clip.stopped = True
            clip._fail(
                f"the call ended before the clip finished playing ({words})", ConnectionError
            )
