"""The task that plays the runs, one after another, on the kernel's event loop.

How a run goes:
- the variant's fields, on top of the session as it was when the runs started, go out as one
  ``session.update`` (``update_session``) and the run waits for ``session.updated``; a field
  named in ``fresh_call`` (or ``isolation="call"``) makes the run start a new call instead,
  with the fields in its first ``session.update``;
- with ``isolation="conversation"`` (the default) the items of the conversation so far are
  deleted first, so every run starts from the same empty conversation;
- each turn plays itself (``Turn.play``: typed or spoken with ``ask()``; spoken turns through
  the run's condition) and ends when every response it caused is done (a tool's output
  answered, too) and the agent's audio has stopped playing; a turn that fails or times out is
  a row with its error, and the run goes on. A turn followed by a barge-in ends as soon as its
  reply is first heard, and the barge-in plays over that reply (both tracks are recorded for
  runs of a script with a barge-in);
- when the run ends its slice of the event log is copied out and folded into rows
  (``rows.turn_rows``).

The task waits on handles with ``settled()`` (no host probe), so it also moves forward between
cells on hosts that deliver the page's messages only then. It uses the widget's public API and
the call's port only.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
import time
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import _vocab as V
from .._log import EventLog
from .._pending import Pending
from .._session import SESSION_TRAITS
from .._vocab import obj, text
from ._progress import Progress
from ._rows import turn_rows
from ._runs import Run, Runs
from ._script import SAY_ENDED, SAY_STARTED, Heard, Turn, TurnContext, answers_clip

if TYPE_CHECKING:
    from .._core import SessionCore
    from .._port import CallPort

ITEM_DELETE = "conversation.item.delete"
ITEM_DELETED = "conversation.item.deleted"
# every spelling of an added item, as the log keeps what the service sent
ITEM_ADDED_NAMES = (V.ITEM_ADDED, *(b for b, ga in V.BETA_ALIASES.items() if ga == V.ITEM_ADDED))
AUDIBLE = "audio.audible"
# how long after output_audio_buffer.started the page may take to hear a reply before the
# service's word stands in for it
AUDIBLE_GRACE_MS = 1000.0
# how long a speech_stopped may wait for its response.created before the turn ends without it
ANSWER_GRACE_S = 2.0


def now_ms() -> float:
    return time.time() * 1000.0


def run_seed(seed: int, variant: str, repeat: int) -> int:
    """A run's seed: stable for the same grid seed, variant and repeat."""
    return zlib.crc32(f"{seed}/{variant}/{repeat}".encode()) & 0x7FFFFFFF


class TurnEnd(Pending):
    """One turn, until its responses are done, the agent is silent and the caller is done.

    Every response it caused is done (a tool's output answered too), the agent's audio has
    stopped, and the caller is done: the turn's clip has played to its end, no speech is open,
    and a ``speech_stopped`` with no response after it has had its answer (or
    ``ANSWER_GRACE_S``). A service that ends the turn at a pause answers the rest too.
    """

    _what = "the turn"

    def __init__(self, call: int, tools: bool) -> None:
        super().__init__(None)
        self.call = call
        self.tools = tools  # a tool runner answers function calls with a new response
        self.open: set[str] = set()
        self.seen = 0
        self.followups = 0
        self.audio = False
        self.clip_playing = False
        self.clip_end: float | None = None  # log clock: the turn's clip's last sample
        self.clip_speech: float | None = None  # the last speech_started heard during the clip
        self.speech_open = False
        self.unanswered: float | None = None  # a speech_stopped no response followed yet
        self.created: dict[str, float] = {}  # every response this turn caused: its t_ms
        self.cues: list[Heard] = []  # its responses heard (the page) or started (the service)

    def reply(self, source: str) -> Heard | None:
        """The reply to the turn first heard (``source`` "audible") or started.

        That is a response that answers the turn's whole clip (``answers_clip``: one begun at
        a pause is not the reply).
        """
        if self.clip_playing:
            return None
        for cue in self.cues:
            t = self.created.get(cue.response_id or "")
            if (
                cue.source == source
                and t is not None
                and answers_clip(t, self.clip_end, self.clip_speech)
            ):
                return cue
        return None

    def _timeout_words(self, timeout: float) -> str:
        if not self.seen:
            return f"no response within {timeout:g} s"
        if self.open or self.followups:
            return f"the reply did not finish within {timeout:g} s"
        if self.clip_playing or self.speech_open or self.unanswered is not None:
            return f"the caller's turn did not end within {timeout:g} s"
        return f"the agent's audio did not stop within {timeout:g} s"

    def check(self) -> None:
        caller_done = not self.clip_playing and not self.speech_open and self.unanswered is None
        if self.seen and not self.open and not self.followups and not self.audio and caller_done:
            self._finish()


class Watch:
    """Hears the call's records for the runner.

    It follows the current turn's progress, and the items of the conversation (to delete them
    between runs).
    """

    def __init__(self, session: SessionCore) -> None:
        self.w = session
        self.lock = threading.Lock()
        self.turn: TurnEnd | None = None
        self.items: dict[int, dict[str, None]] = {}  # call -> item ids, in order
        self.loop: asyncio.AbstractEventLoop | None = None  # the runner's (for timers)
        for rec in session.events.of_type(*ITEM_ADDED_NAMES, ITEM_DELETED):
            self.item(rec["call_number"], V.canonical(rec["type"]), rec["event"])

    def item(self, call: int, etype: str, ev: Mapping[str, Any]) -> None:
        if etype == ITEM_DELETED:
            self.items.get(call, {}).pop(text(ev.get("item_id")) or "", None)
            return
        item_id = text(obj(ev.get("item")).get("id"))
        if item_id:
            self.items.setdefault(call, {})[item_id] = None

    def begin(self, call: int) -> TurnEnd:
        end = TurnEnd(call, bool(self.w.tool_functions))
        with self.lock:
            self.turn = end
        return end

    def end(self) -> None:
        with self.lock:
            self.turn = None

    def on_record(self, direction: str, event: Mapping[str, Any], t_ms: float, call: int) -> None:
        if direction == "local":
            self.local(event, t_ms, call)
            return
        if direction != "server":
            return
        etype = V.canonical(event.get("type"))
        if etype in (V.ITEM_ADDED, ITEM_DELETED):
            with self.lock:
                self.item(call, etype, event)
            return
        with self.lock:
            end = self.turn
            if end is None or end.done or end.call != call:
                return
            if etype == V.RESPONSE_CREATED:
                rid = text(obj(event.get("response")).get("id")) or "?"
                end.open.add(rid)
                end.created[rid] = t_ms
                end.unanswered = None
                end.seen += 1
                end.followups = max(0, end.followups - 1)
            elif etype == V.SPEECH_STARTED:
                end.speech_open = True
                if end.clip_end is None:
                    end.clip_speech = t_ms
            elif etype == V.SPEECH_STOPPED:
                end.speech_open = False
                end.unanswered = t_ms
                self.expire_later(end, t_ms)
            elif etype == V.RESPONSE_DONE:
                resp = obj(event.get("response"))
                end.open.discard(text(resp.get("id")) or "?")
                output = resp.get("output")
                calls = [
                    i for i in (output if isinstance(output, list) else [])
                    if obj(i).get("type") == "function_call"
                ]  # fmt: skip
                if calls and end.tools and resp.get("status") == "completed":
                    end.followups += 1  # the tool loop answers with one response.create
            elif etype == V.AUDIO_STARTED:
                end.audio = True
                cue = Heard(t_ms, now_ms(), text(event.get("response_id")), "started")
                end.cues.append(cue)
            elif etype in V.AUDIO_ENDED:
                end.audio = False
            else:
                return
        end.check()

    def local(self, event: Mapping[str, Any], t_ms: float, call: int) -> None:
        """The page's own records of the turn: its clip playing, its reply first heard."""
        etype = event.get("type")
        with self.lock:
            end = self.turn
            if end is None or end.done or end.call != call:
                return
            if etype == SAY_STARTED:
                end.clip_playing = True
            elif etype == SAY_ENDED:
                end.clip_playing, end.clip_end = False, t_ms
            elif etype == AUDIBLE:
                end.cues.append(Heard(t_ms, now_ms(), text(event.get("response_id")), "audible"))
                return
            elif etype == V.SPEAKER_STARTED:  # the kernel's own speaker (a call it holds)
                end.audio = True
            elif etype == V.SPEAKER_STOPPED:
                end.audio = False
            else:
                return
        end.check()

    def expire_later(self, end: TurnEnd, stopped: float) -> None:
        """In ``ANSWER_GRACE_S``, stop waiting for an answer to that speech_stopped."""
        loop = self.loop
        if loop is None:
            return

        def expire() -> None:
            with self.lock:
                if end.unanswered != stopped:
                    return
                end.unanswered = None
            end.check()

        with contextlib.suppress(RuntimeError):  # a closed loop: the runs are over
            loop.call_soon_threadsafe(loop.call_later, ANSWER_GRACE_S, expire)


class Runner:
    """Plays every (variant, repeat) run of a :class:`Runs`, and puts the session back.

    Runs go repeat by repeat, the variants in turn; afterwards the session is as it was.
    """

    def __init__(
        self,
        session: SessionCore,
        port: CallPort,
        runs: Runs,
        *,
        fresh_call: frozenset[str],
        isolation: str,
        timeout: float,
        seed: int,
    ) -> None:
        self.w = session
        self.port = port
        self.runs = runs
        self.script = runs.script  # what plays (a runs' own, or one bound to this call)
        self.fresh_call = fresh_call
        self.isolation = isolation
        self.timeout = timeout
        self.seed = seed
        names = {n for fields in runs.variants.values() for n in fields}
        # every run starts from the session as it was, plus its variant's fields
        self.baseline = {
            n: copy.deepcopy(getattr(session, n)) for n in SESSION_TRAITS if n in names
        }
        conditions: list[str | None] = list(runs.conditions) or [None]
        self.order = [
            (v, c, r) for r in range(1, runs.repeat + 1) for v in runs.variants for c in conditions
        ]
        # a barge-in is measured from the recording: record both tracks for such scripts
        ahead = getattr(runs.script, "turns", ())
        self.record = any(getattr(t, "interrupts", False) for t in ahead)
        self.heard: Heard | None = None  # the last turn's reply, once heard (for a barge-in)
        self.watch = Watch(session)
        self.task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.progress: Progress | None = None
        self.turns_done = 0

    def cancel(self) -> None:
        cancel_grid(self.runs, self.task, self.loop)

    def start(self, loop: asyncio.AbstractEventLoop, progress: bool) -> asyncio.Task[None]:
        if progress:
            self.progress = Progress.shown(len(self.order) * len(self.runs.script), self.cancel)
            if self.progress is not None:
                self.runs.progress = self.progress.box
        self.loop = self.watch.loop = loop
        # hear the call from now on, until the task ends (even one cancelled before it began)
        unsubscribe = self.port.subscribe(self.watch.on_record)
        self.task = loop.create_task(self.main())
        self.task.add_done_callback(lambda _task: unsubscribe())
        return self.task

    def _say(self, words: str) -> None:
        if self.progress is not None:
            self.progress.show(self.turns_done, words)

    async def main(self) -> None:
        runs, w = self.runs, self.w
        t0 = time.perf_counter()
        was_recording = bool(w.record)
        try:
            if self.record and not was_recording:
                w.record = True
            for index, (variant, condition, repeat) in enumerate(self.order, 1):
                fields = runs.variants[variant]
                seed = run_seed(self.seed, variant, repeat)
                run = Run(variant, repeat, index, seed, copy.deepcopy(fields), condition=condition)
                runs.runs.append(run)
                await self.run_one(run)
        except asyncio.CancelledError:
            runs.cancelled = True
        except Exception as exc:  # the runner's own bug or a call that cannot start
            runs.error = f"{type(exc).__name__}: {exc}"
        finally:
            runs.wall_ms = (time.perf_counter() - t0) * 1000.0
            if self.record and not was_recording:
                w.record = False
            if self.baseline and self.port.live:
                with contextlib.suppress(Exception):
                    w.update_session(**self.baseline)  # leave the session as it was
            runs._finish()  # before the progress box's last words, so they say "done"
            if self.progress is not None:
                self.progress.close(self.turns_done, repr(runs))

    async def run_one(self, run: Run) -> None:
        w, script = self.w, self.script
        run.status = "running"
        run.started_ms = now_ms()
        seq0 = len(w.events)
        # the run's bounds in the log (a trace's experiment_run span)
        self.port.log_local({"type": "run.started", "grid": self.runs.grid, **run.meta})
        played: list[Turn] = []
        cancelled = False
        self.heard = None
        ahead = getattr(script, "turns", None)  # a script's turns are known: look one ahead
        where = f" · {run.condition}" if run.condition is not None else ""
        try:
            try:
                await self.prepare(run)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                run.error = f"the variant could not be applied: {type(exc).__name__}: {exc}"
            async for turn in script.turns_for(run):
                played.append(turn)
                self._say(
                    f"{run.variant}{where} · repeat {run.repeat}/{self.runs.repeat} · turn "
                    f"{len(played)}/{len(script)}: {turn.prompt[:60]}"
                )
                if run.error is not None:
                    run.spans.append((len(w.events), len(w.events), run.error))
                    continue
                following = ahead[len(played)] if ahead and len(played) < len(ahead) else None
                try:
                    await self.play(run, turn, hand_over=getattr(following, "interrupts", False))
                finally:
                    self.turns_done += 1
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            run.ended_ms = now_ms()
            run.status = (
                "cancelled" if cancelled else "failed" if run.error is not None else "completed"
            )
            self.port.log_local(
                {"type": "run.ended", "grid": self.runs.grid, "run": run.index,
                 "status": run.status, "error": run.error}
            )  # fmt: skip
            self.close_run(run, seq0, played)

    async def prepare(self, run: Run) -> None:
        w = self.w
        fields = {**self.baseline, **run.fields}
        changed = {n for n, v in fields.items() if getattr(w, n) != v}
        fresh = self.isolation == "call" or not self.port.live or bool(changed & self.fresh_call)
        if fresh:
            if self.port.live:
                w.disconnect()
            w.update_session(**fields)  # no call: it goes in the new call's first update
            w.connect()
            run.fresh_call = True
            await w.ready(self.timeout).settled()
        else:
            waits = []
            if changed:
                waits.append(w.wait_for(V.SESSION_UPDATED, timeout=self.timeout))
            before = {n: copy.deepcopy(getattr(w, n)) for n in fields}
            w.update_session(**fields)
            if not any(getattr(w, n) != before[n] for n in fields) and waits:
                waits.pop().cancel()  # nothing differed after validation: no update was sent
            if self.isolation == "conversation":
                ids = list(self.watch.items.get(w.call_number, {}))
                if ids:
                    last = ids[-1]
                    # the last deletion confirmed (or an error: an item the service forgot)
                    waits.append(
                        w.wait_for(
                            "*",
                            timeout=self.timeout,
                            where=lambda ev: (
                                ev.get("type") == V.ERROR
                                or (ev.get("type") == ITEM_DELETED and ev.get("item_id") == last)
                            ),
                        )
                    )
                    self.port.send_events([{"type": ITEM_DELETE, "item_id": i} for i in ids])
            for waiter in waits:
                await waiter.settled()
        run.call_number = w.call_number
        run.session = w.session_config()
        run.confirmed = copy.deepcopy(dict(w.server_session))

    async def play(self, run: Run, turn: Turn, *, hand_over: bool = False) -> None:
        """Play one turn.

        ``hand_over``: the next turn plays over this one's reply, so this one ends as soon as
        that reply is first heard.
        """
        w = self.w
        lo = len(w.events)
        error: str | None = None
        end = self.watch.begin(w.call_number)
        condition = self.runs.conditions.get(run.condition) if run.condition else None
        ctx = TurnContext(w, self.port, run, self.timeout, end, condition, self.heard)
        self.heard = None
        try:
            if hand_over:
                self.heard = await self.play_until_heard(turn, ctx, end)
            else:
                await turn.play(ctx)
        except asyncio.CancelledError:
            error = "interrupted"
            with contextlib.suppress(Exception):
                w.cancel_response()
            raise
        except Exception as exc:  # this turn's failure is its row; the run goes on
            error = f"{type(exc).__name__}: {exc}"
            if self.port.live:
                with contextlib.suppress(Exception):
                    w.cancel_response()
        finally:
            self.watch.end()
            run.spans.append((lo, len(w.events), error))

    async def play_until_heard(self, turn: Turn, ctx: TurnContext, end: TurnEnd) -> Heard | None:
        """Play ``turn`` until its reply is first heard; None when the turn ended before.

        Heard is the page's audible, or the service's output_audio_buffer.started when the
        page hears nothing within a second.
        """
        task = asyncio.ensure_future(turn.play(ctx))
        try:
            while not task.done():
                if end.reply("audible") is not None:
                    break
                started = end.reply("started")
                if started is not None and now_ms() - started.kernel_ms > AUDIBLE_GRACE_MS:
                    break
                await asyncio.sleep(0.005)
            else:
                await task  # ended (or failed) before it was heard
                return end.reply("audible") or end.reply("started")
        except BaseException:
            task.cancel()
            raise
        task.cancel()  # the reply plays on; the next turn takes it from here
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return end.reply("audible") or end.reply("started")

    def close_run(self, run: Run, seq0: int, played: list[Turn]) -> None:
        w = self.w
        seq1 = len(w.events)
        run.seq = (seq0, seq1)
        calls = {run.call_number} if run.call_number else set()
        records = [w.events.record(i) for i in range(seq0, seq1)]
        records = [r for r in records if not calls or r["call_number"] in calls]
        log = EventLog()
        log._extend(
            (r["direction"], r["event"], r["t_ms"], r["t_kernel_ms"], r["call_number"])
            for r in records
        )
        run.events = log
        run.recording = w.recordings.get(run.call_number)
        # a cancelled run keeps the turns that were played (the cut one is a cancelled row)
        run.rows = turn_rows(records, run.spans, played, run.meta, recording=run.recording)


def cancel_grid(
    runs: Runs, task: asyncio.Task[None] | None, loop: asyncio.AbstractEventLoop | None
) -> None:
    """Stop a grid's task (its Stop button, ``runs.cancel()``), from any thread."""
    if task is None or loop is None or task.done():
        return
    runs.cancelled = True
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(task.cancel)
