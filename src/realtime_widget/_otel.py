"""OpenTelemetry traces of sessions.

The event log's records folded into spans on the GenAI semantic conventions, live (a session's log,
as each record is kept) or after the fact (a saved log, a saved set of runs), with the records' own
times.

The span tree of a call (``docs/tracing.md`` has the attributes)::

    realtime_session                        the call: provider, model, conversation id, voice
    ├─ experiment_run {variant}             a run of run_script (when one was going on)
    │  ├─ user_input                        a user turn: speech started / stopped as events
    │  ├─ generate_live_content {model}     a response: latencies, usage, barge-ins, cuts
    │  ├─ execute_tool {name}               a tool call: its id, the approval wait
    │  └─ chat {model}                      a simulated caller's line (linked to the reply)
    └─ ...
    chat {model}  (judge)                   under the run, linked to the response it scores

One fold (:class:`TraceBuilder`) makes them all, so a live trace and an exported one agree.
Nothing here imports ``opentelemetry`` until a trace is asked for; with no SDK configured a
session's tracing costs one dictionary lookup per record.
"""

from __future__ import annotations

import asyncio
import collections
import importlib.util
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from . import _vocab as V
from ._extras import require
from ._turns import TurnTracker
from ._vocab import obj, text

if TYPE_CHECKING:
    from ._log import EventLog
    from .experiments._runs import Runs

__all__ = [
    "CAPTURE_ENV",
    "PROVIDER",
    "SessionTracing",
    "TraceBuilder",
    "attach",
    "export_log",
    "export_runs",
]

_logger = logging.getLogger(__name__)

PROVIDER = "inworld"
# The GenAI instrumentations' content switch: message text and transcripts only when it is on.
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_CAPTURE_ON = {"true", "1", "yes", "on", "span_only", "span_and_event"}
FOLD_DELAY_S = 0.05  # how long a live record waits for the fold (spans end this much later)
NS = "realtime_widget."  # this library's own attributes (what the GenAI conventions lack)
TRACER_NAME = "realtime_widget"

# Record types that name a run of run_script (logged by the runner).
RUN_STARTED = "run.started"
RUN_ENDED = "run.ended"
CALLER_TURN = "caller.turn"


def capture_default(capture_content: bool | None) -> bool:
    if capture_content is not None:
        return bool(capture_content)
    return os.environ.get(CAPTURE_ENV, "").strip().lower() in _CAPTURE_ON


def _trace() -> Any:
    return require("opentelemetry.trace", "otel", "Tracing", package="opentelemetry-api")


def available() -> bool:
    """Whether opentelemetry-api is installed (without importing it)."""
    try:
        return importlib.util.find_spec("opentelemetry.trace") is not None
    except (ImportError, ValueError):
        return False


def configured(tracer_provider: Any = None) -> bool:
    """Whether spans would go anywhere.

    A provider given, or a global one that is not the API's proxy / no-op (no SDK configured: then
    tracing skips all work).
    """
    trace = _trace()
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def tracer_for(tracer_provider: Any = None) -> Any:
    trace = _trace()
    from . import __version__

    return trace.get_tracer(TRACER_NAME, __version__, tracer_provider=tracer_provider)


def ns(t_ms: float | None) -> int | None:
    """A log time (epoch ms) as OpenTelemetry's (epoch ns)."""
    if t_ms is None or t_ms != t_ms:
        return None
    return round(t_ms * 1_000_000)


def _flush(tracer_provider: Any) -> None:
    trace = _trace()
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    flush = getattr(provider, "force_flush", None)
    if callable(flush):
        flush()


def _clean(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes OpenTelemetry takes: no None, lists of one primitive type."""
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if v is None or (isinstance(v, float) and v != v):
            continue
        if isinstance(v, list | tuple):
            v = [x for x in v if x is not None]
            if not v:
                continue
        out[k] = v
    return out


def _messages(role: str, parts: list[dict[str, Any]]) -> str:
    """One message in the GenAI conventions' JSON form (``gen_ai.input/output.messages``)."""
    return json.dumps([{"role": role, "parts": parts}], ensure_ascii=False)


def _with_aliases(handlers: dict[str, Any]) -> dict[str, Any]:
    """The handlers, and the same for the beta names of the events they read."""
    for beta, ga in V.BETA_ALIASES.items():
        if ga in handlers:
            handlers[beta] = handlers[ga]
    return handlers


@dataclass
class _Response:
    span: Any
    ctx: Any
    rid: str
    created: float
    done: float | None = None
    audio_started: float | None = None
    audio_stopped: float | None = None
    last: float = 0.0
    barge_ins: int = 0
    first_output: bool = False

    @property
    def settled(self) -> bool:
        """Done, and its sound (if any started) has stopped: the span may end."""
        return self.done is not None and (
            self.audio_started is None or self.audio_stopped is not None
        )


@dataclass
class _Tool:
    span: Any
    started: float
    pending: float | None = None
    waited_ms: float | None = None


@dataclass
class _Call:
    number: int
    span: Any = None  # None when the fold hangs its spans under a given parent
    ctx: Any = None
    start: float = 0.0
    last: float = 0.0
    model: str | None = None
    voice: str | None = None
    conversation_id: str | None = None
    ended: bool = False
    user: dict[str, Any] = field(default_factory=dict)  # the user turn being gathered
    responses: dict[str, _Response] = field(default_factory=dict)
    active: str | None = None  # the response in flight (or still sounding)
    items: dict[str, str] = field(default_factory=dict)  # output item id -> response id
    tools: dict[str, _Tool] = field(default_factory=dict)
    last_reply: Any = None  # the latest response's span context (what a caller answers)


@dataclass
class _Run:
    span: Any
    ctx: Any
    start: float
    key: tuple[str, int]


class TraceBuilder:
    """Folds records (in log order) into spans on ``tracer``.

    ``parent``: a context to hang every span under instead of a span per call (a run's slice of a
    log, exported under its run's span). ``scrub``: applied to every text kept from a record (a live
    session's events come before its log's scrubber). The responses' span contexts stay findable by
    ``response_context(call, response_id)`` so judges can link to them.
    """

    def __init__(
        self,
        tracer: Any,
        *,
        capture_content: bool = False,
        scrub: Callable[[str], str] | None = None,
        parent: Any = None,
        runs: bool = True,
        session: Mapping[str, Any] | None = None,
    ) -> None:
        self._trace = _trace()
        # what a call is known to run with before its log says (a run's session, as sent)
        session = obj(session)
        voice = obj(obj(session.get("audio")).get("output")).get("voice") or session.get("voice")
        self._session = {"model": text(session.get("model")), "voice": text(voice)}
        self.tracer = tracer
        self.capture = capture_content
        self._scrub = scrub
        self._parent = parent
        self._runs_on = runs and parent is None
        self._calls: dict[int, _Call] = {}
        self._tracker = TurnTracker(keep_all=False)
        self._run: _Run | None = None
        self.runs: dict[tuple[str, int], Any] = {}  # (grid, run index) -> its span context
        self.replies: dict[tuple[int, str], Any] = {}  # (call, response id) -> span context
        self.spans = 0
        self._last = 0.0  # the latest record's time
        self.lock = threading.RLock()

    # -- the fold --------------------------------------------------------------------------

    def feed(self, direction: str, event: Mapping[str, Any], t_ms: float, call: int) -> None:
        etype = event.get("type")
        handler = self.HANDLERS.get(etype) if isinstance(etype, str) else None
        if handler is None:
            return
        with self.lock:
            self._last = max(self._last, float(t_ms))
            handler(self, direction, event, float(t_ms), call)

    def feed_records(self, records: Iterable[Mapping[str, Any]]) -> None:
        for rec in records:
            self.feed(
                str(rec.get("direction", "")),
                obj(rec.get("event")),
                float(rec.get("t_ms") or 0.0),
                int(rec.get("call_number") or 0),
            )

    def finish(self) -> None:
        """End every span still open, at the last moment its call was heard of."""
        with self.lock:
            for c in list(self._calls.values()):
                if not c.ended:
                    self._end_call(c, c.last, "unfinished")
            if self._run is not None:
                self._end_run(self._last, None, None)

    def response_context(self, call: int, response_id: str) -> Any:
        return self.replies.get((call, response_id))

    # -- helpers ---------------------------------------------------------------------------

    def _s(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return None
        return self._scrub(value) if self._scrub is not None else value

    def _start(self, name: str, ctx: Any, t_ms: float, attrs: Mapping[str, Any]) -> Any:
        self.spans += 1
        return self.tracer.start_span(
            name,
            context=ctx,
            kind=self._trace.SpanKind.CLIENT,
            attributes=_clean(attrs),
            start_time=ns(t_ms),
        )

    def _ctx(self, span: Any) -> Any:
        return self._trace.set_span_in_context(span)

    def _call(self, number: int, t_ms: float) -> _Call:
        c = self._calls.get(number)
        if c is None or c.ended:
            c = _Call(number, start=t_ms, last=t_ms)
            c.model, c.voice = self._session.get("model"), self._session.get("voice")
            self._calls[number] = c
            if self._parent is None:
                parent = self._run.ctx if self._run is not None else None
                c.span = self._start(
                    "realtime_session",
                    parent,
                    t_ms,
                    {
                        "gen_ai.operation.name": "realtime_session",
                        "gen_ai.provider.name": PROVIDER,
                        NS + "call_number": number,
                    },
                )
                c.span.add_event("gen_ai.client.live_session.started", timestamp=ns(t_ms))
                c.ctx = self._ctx(c.span)
            else:
                c.ctx = self._parent
        c.last = max(c.last, t_ms)
        return c

    def _parent_of(self, c: _Call) -> Any:
        """The innermost of the call and the run going on: spans hang under it."""
        run = self._run
        if run is not None and self._parent is None and run.start >= c.start:
            return run.ctx
        return c.ctx

    def _common(self, c: _Call) -> dict[str, Any]:
        return {
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.request.model": c.model,
            "gen_ai.conversation.id": c.conversation_id,
            NS + "call_number": c.number,
        }

    def _set_call(self, c: _Call, **attrs: Any) -> None:
        if c.span is not None and not c.ended:
            c.span.set_attributes(_clean(attrs))

    # -- the call --------------------------------------------------------------------------

    def _on_call_start(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        if d != "local":
            return
        old = self._calls.get(call)
        if old is not None and not old.ended:
            self._end_call(old, old.last, "restarted")
        c = self._call(call, t)
        transport = text(ev.get("transport")) or "page"
        self._set_call(c, **{NS + "transport": transport})

    def _on_channel_open(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        c = self._call(call, t)
        sid = self._s(ev.get("session_id"))
        if sid and c.conversation_id is None:  # the kernel's WebSocket session id
            c.conversation_id = sid
            self._set_call(c, **{"gen_ai.conversation.id": sid})

    def _on_answered(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        c = self._call(call, t)
        sid = self._s(ev.get("service_call_id"))
        if sid:  # the service's own id for the call: the conversation's id
            c.conversation_id = sid
            self._set_call(c, **{"gen_ai.conversation.id": sid, NS + "service_call_id": sid})

    def _on_session(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        if d == "local":
            return
        c = self._call(call, t)
        session = obj(ev.get("session"))
        model = self._s(session.get("model"))
        voice = self._s(obj(obj(obj(session.get("audio")).get("output"))).get("voice"))
        voice = voice or self._s(session.get("voice"))
        if model and (d == "server" or c.model is None):
            c.model = model
        if voice and (d == "server" or c.voice is None):
            c.voice = voice
        if d == "server":
            self._set_call(
                c,
                **{
                    "gen_ai.request.model": c.model,
                    NS + "voice": c.voice,
                    NS + "session_id": self._s(session.get("id")),
                },
            )

    def _on_call_end(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        if d != "local":
            return
        c = self._calls.get(call)
        if c is None or c.ended:
            return
        etype = ev.get("type")
        why = "failed" if etype == "call.failed" else text(ev.get("by")) or "closed"
        if etype == "call.failed" and c.span is not None:
            c.span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, "call failed"))
            c.span.set_attribute("error.type", "call_failed")
        self._end_call(c, t, why)

    def _end_call(self, c: _Call, t: float, why: str) -> None:
        for r in list(c.responses.values()):
            self._end_response(c, r, max(t, r.last))
        for tool in c.tools.values():
            tool.span.end(end_time=ns(max(t, tool.started)))
        c.tools.clear()
        c.ended = True
        if c.span is not None:
            c.span.add_event(
                "gen_ai.client.live_session.ended", {NS + "ended_by": why}, timestamp=ns(t)
            )
            c.span.end(end_time=ns(max(t, c.start)))

    def _on_error(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        if d != "server":
            return
        c = self._call(call, t)
        err = obj(ev.get("error"))
        if c.span is not None:
            c.span.add_event(
                "error",
                _clean(
                    {
                        "error.type": self._s(err.get("code")) or self._s(err.get("type")),
                        "exception.message": self._s(err.get("message")),
                    }
                ),
                timestamp=ns(t),
            )

    # -- user turns ------------------------------------------------------------------------

    def _on_speech(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        self._tracker.feed(call, d, ev, t)
        if d != "server":
            return
        c = self._call(call, t)
        if ev.get("type") == V.SPEECH_STARTED:
            c.user = {"speech_started": t, "start": t}
            r = c.responses.get(c.active or "")
            if r is not None:  # the user spoke over the agent: a barge-in
                r.barge_ins += 1
                r.span.add_event(
                    "barge_in",
                    _clean({NS + "audio_playing": r.audio_started is not None}),
                    timestamp=ns(t),
                )
        else:
            c.user.setdefault("start", t)
            c.user["speech_stopped"] = t

    def _on_say(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        self._tracker.feed(call, d, ev, t)
        if d != "local":
            return
        c = self._call(call, t)
        if ev.get("type") == "say.started":
            c.user = {"clip_started": t, "start": t}
        else:
            c.user.setdefault("start", t)
            c.user["clip_ended"] = t

    def _on_item_create(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        self._tracker.feed(call, d, ev, t)
        if d != "client":
            return
        item = obj(ev.get("item"))
        if item.get("role") == "user" and item.get("type") == "message":
            c = self._call(call, t)
            c.user = {"typed": t, "start": t}
            if self.capture:
                parts = [
                    {"type": "text", "content": self._s(p.get("text"))}
                    for p in item.get("content") or ()
                    if isinstance(p, Mapping) and isinstance(p.get("text"), str)
                ]
                c.user["messages"] = _messages("user", parts)

    def _on_transcription(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        if d != "server" or not self.capture:
            return
        c = self._call(call, t)
        said = self._s(ev.get("transcript"))
        if said is not None:
            c.user["transcript"] = said

    def _user_span(self, c: _Call, trigger: str, turn_start: float | None, t: float) -> Any:
        """The user turn a response answered, as a span ending where the turn ended."""
        u, c.user = c.user, {}
        if not u or trigger in ("tool_output", "response.create"):
            return None
        end = turn_start if turn_start is not None else t
        start = min(u.get("start", end), end)
        span = self._start(
            "user_input",
            self._parent_of(c),
            start,
            {
                **self._common(c),
                "gen_ai.operation.name": "user_input",
                NS + "trigger": trigger,
                "gen_ai.input.messages": u.get("messages"),
                NS + "transcript": u.get("transcript"),
            },
        )
        for key, name in (
            ("speech_started", "input_audio_buffer.speech_started"),
            ("speech_stopped", "input_audio_buffer.speech_stopped"),
            ("clip_started", "say.started"),
            ("clip_ended", "say.ended"),
            ("typed", "conversation.item.create"),
        ):
            if key in u:
                span.add_event(name, timestamp=ns(u[key]))
        span.end(end_time=ns(end))
        return span

    # -- responses -------------------------------------------------------------------------

    def _on_response_create(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        self._tracker.feed(call, d, ev, t)

    def _on_created(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        self._tracker.feed(call, d, ev, t)
        if d != "server":
            return
        c = self._call(call, t)
        resp = obj(ev.get("response"))
        rid = text(resp.get("id")) or f"?{t}"
        turn = self._tracker.turn(call, rid)
        trigger = turn.trigger if turn is not None else "response.create"
        turn_start = turn.t.get("turn_start") if turn is not None else None
        user = self._user_span(c, trigger, turn_start, t)
        old = c.responses.get(rid)
        if old is not None:
            self._end_response(c, old, t)
        start = turn_start if turn_start is not None and turn_start <= t else t
        model = c.model
        links = []
        if user is not None:
            links.append(self._trace.Link(user.get_span_context(), {NS + "answers": "user_input"}))
        self.spans += 1
        span = self.tracer.start_span(
            f"generate_live_content {model}" if model else "generate_live_content",
            context=self._parent_of(c),
            kind=self._trace.SpanKind.CLIENT,
            attributes=_clean(
                {
                    **self._common(c),
                    "gen_ai.operation.name": "generate_live_content",
                    "gen_ai.response.id": self._s(rid),
                    NS + "trigger": trigger,
                    NS + "voice": c.voice,
                }
            ),
            links=links,
            start_time=ns(start),
        )
        if start < t:
            span.add_event("response.created", timestamp=ns(t))
        r = _Response(span, self._ctx(span), rid, t, last=t)
        c.responses[rid] = r
        c.active = rid
        self.replies[(call, rid)] = span.get_span_context()
        if len(self.replies) > 4096:
            del self.replies[next(iter(self.replies))]

    def _resp(self, call: int, ev: Mapping[str, Any]) -> tuple[_Call, _Response] | None:
        c = self._calls.get(call)
        if c is None:
            return None
        r = c.responses.get(text(ev.get("response_id")) or "")
        return (c, r) if r is not None else None

    def _on_delta(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        if d != "server":
            return
        got = self._resp(call, ev)
        if got is None or got[1].first_output:
            return  # only a reply's first output counts (the rest are its stream)
        r = got[1]
        r.first_output = True
        self._tracker.feed(call, d, ev, t)
        r.span.add_event("gen_ai.output.first_chunk", timestamp=ns(t))
        r.last = max(r.last, t)

    def _on_output_item(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        self._tracker.feed(call, d, ev, t)
        got = self._resp(call, ev)
        if got is None:
            return
        c, r = got
        item_id = text(obj(ev.get("item")).get("id")) or text(ev.get("item_id"))
        if item_id:
            c.items[item_id] = r.rid
            if len(c.items) > 1024:
                del c.items[next(iter(c.items))]

    def _on_playback(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        etype = str(ev.get("type"))
        self._tracker.feed(call, d, ev, t)
        c = self._calls.get(call)
        if c is None:
            return
        rid = text(ev.get("response_id")) or c.active or ""
        r = c.responses.get(rid)
        if r is None:
            return
        r.last = max(r.last, t)
        if V.playback_started(d, etype):
            if r.audio_started is None:
                r.audio_started = t
                r.span.add_event("audio.started", timestamp=ns(t))
        elif V.playback_ended(d, etype):
            if r.audio_stopped is None and r.audio_started is not None:
                r.audio_stopped = t
                attrs = _clean({NS + "reason": self._s(ev.get("reason"))})
                r.span.add_event("audio.stopped", attrs, timestamp=ns(t))
                if r.settled:
                    self._end_response(c, r, t)
        elif etype == "audio.audible":
            r.span.add_event("audio.first_audible", timestamp=ns(t))

    def _on_cancel(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        if d != "client":
            return
        c = self._calls.get(call)
        if c is None:
            return
        r = c.responses.get(text(ev.get("response_id")) or c.active or "")
        if r is not None:
            r.span.add_event("response.cancel", timestamp=ns(t))

    def _on_truncate(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        if d != "client":
            return
        c = self._calls.get(call)
        if c is None:
            return
        item_id = text(ev.get("item_id")) or ""
        r = c.responses.get(c.items.get(item_id, ""))
        cut = ev.get("audio_end_ms")
        attrs = _clean(
            {
                NS + "item_id": self._s(item_id),
                NS + "audio_end_ms": cut if isinstance(cut, int | float) else None,
            }
        )
        target = r.span if r is not None else c.span
        if target is not None:
            target.add_event("truncation", attrs, timestamp=ns(t))

    def _on_done(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        self._tracker.feed(call, d, ev, t)
        if d != "server":
            return
        c = self._calls.get(call)
        resp = obj(ev.get("response"))
        r = c.responses.get(text(resp.get("id")) or "") if c is not None else None
        if c is None or r is None:
            return
        r.done = r.last = t
        status = text(resp.get("status"))
        details = obj(resp.get("status_details"))
        reason = text(details.get("reason")) or text(obj(details.get("error")).get("code"))
        usage = obj(resp.get("usage"))
        inp, out = obj(usage.get("input_token_details")), obj(usage.get("output_token_details"))
        attrs: dict[str, Any] = {
            "gen_ai.response.finish_reasons": [x for x in (status, reason) if x],
            "gen_ai.usage.input_tokens": _int(usage.get("input_tokens")),
            "gen_ai.usage.output_tokens": _int(usage.get("output_tokens")),
            "gen_ai.usage.audio.input_tokens": _int(inp.get("audio_tokens")),
            "gen_ai.usage.audio.output_tokens": _int(out.get("audio_tokens")),
            "gen_ai.usage.text.input_tokens": _int(inp.get("text_tokens")),
            "gen_ai.usage.text.output_tokens": _int(out.get("text_tokens")),
            "gen_ai.usage.cache_read.input_tokens": _int(inp.get("cached_tokens")),
            NS + "status": status,
        }
        if self.capture:
            attrs["gen_ai.output.messages"] = self._output_messages(resp)
        r.span.set_attributes(_clean(attrs))
        if status == "failed":  # (cancelled and incomplete are outcomes, not errors)
            r.span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, reason or ""))
            r.span.set_attribute("error.type", reason or "failed")
        c.last_reply = r.span.get_span_context()
        if r.settled:
            self._end_response(c, r, t)

    def _output_messages(self, resp: Mapping[str, Any]) -> str | None:
        parts: list[dict[str, Any]] = []
        for item in resp.get("output") or ():
            item = obj(item)
            if item.get("type") == "function_call":
                parts.append(
                    {
                        "type": "tool_call",
                        "id": self._s(item.get("call_id")),
                        "name": self._s(item.get("name")),
                        "arguments": self._s(item.get("arguments")),
                    }
                )
            for part in item.get("content") or ():
                part = obj(part)
                said = self._s(part.get("text")) or self._s(part.get("transcript"))
                if said:
                    parts.append({"type": "text", "content": said})
        return _messages("assistant", parts) if parts else None

    def _end_response(self, c: _Call, r: _Response, t: float) -> None:
        if c.responses.pop(r.rid, None) is None:
            return
        turn = self._tracker.turn(c.number, r.rid)
        if turn is not None:  # the latencies of events.turns(), by the same code
            heard = "first_audible" if turn.t.get("first_audible") is not None else "audio_started"
            r.span.set_attributes(
                _clean(
                    {
                        NS + "latency.to_created_ms": turn.since("created"),
                        NS + "latency.to_first_delta_ms": turn.since("first_delta"),
                        NS + "latency.to_first_audio_ms": turn.since(heard),
                        NS + "latency.to_first_output_ms": turn.first_output_ms(),
                        NS + "barge_ins": r.barge_ins or None,
                    }
                )
            )
        if c.active == r.rid:
            c.active = None
        r.span.end(end_time=ns(max(t, r.created)))

    # -- tools -----------------------------------------------------------------------------

    def _on_tool(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        self._tracker.feed(call, d, ev, t)
        if d != "local":
            return
        etype = ev.get("type")
        c = self._call(call, t)
        call_id = text(ev.get("call_id")) or ""
        if etype == "tool.started":
            name = self._s(ev.get("name")) or "?"
            rid = text(ev.get("response_id")) or ""
            links = []
            reply = self.replies.get((call, rid))
            if reply is not None:
                links.append(self._trace.Link(reply, {NS + "called_by": "response"}))
            self.spans += 1
            span = self.tracer.start_span(
                f"execute_tool {name}",
                context=self._parent_of(c),
                kind=self._trace.SpanKind.INTERNAL,
                attributes=_clean(
                    {
                        **self._common(c),
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": name,
                        "gen_ai.tool.call.id": self._s(call_id),
                        "gen_ai.tool.type": "function",
                        "gen_ai.response.id": self._s(rid),
                        "gen_ai.tool.call.arguments": (
                            self._s(ev.get("arguments")) if self.capture else None
                        ),
                    }
                ),
                links=links,
                start_time=ns(t),
            )
            old = c.tools.pop(call_id, None)
            if old is not None:
                old.span.end(end_time=ns(t))
            c.tools[call_id] = _Tool(span, t)
            return
        tool = c.tools.get(call_id)
        if tool is None:
            return
        if etype == "tool.approval":
            decision = text(ev.get("decision")) or ""
            attrs = _clean({NS + "decision": decision, NS + "reason": self._s(ev.get("reason"))})
            tool.span.add_event(f"approval.{decision}", attrs, timestamp=ns(t))
            if decision == "pending":
                tool.pending = t
            elif tool.pending is not None:
                tool.waited_ms = t - tool.pending
                tool.span.set_attribute(NS + "tool.approval_wait_ms", tool.waited_ms)
            return
        # tool.finished
        del c.tools[call_id]
        status = text(ev.get("status")) or "ok"
        dur = ev.get("duration_ms")
        attrs = {
            NS + "tool.status": status,
            NS + "tool.duration_ms": dur if isinstance(dur, int | float) else None,
            "gen_ai.tool.call.result": (
                self._s(ev.get("output_preview")) if self.capture else None
            ),
        }
        tool.span.set_attributes(_clean(attrs))
        if status != "ok":
            tool.span.set_attribute("error.type", status)
            words = self._s(ev.get("error")) or status
            tool.span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, words))
        tool.span.end(end_time=ns(max(t, tool.started)))

    # -- runs and callers ------------------------------------------------------------------

    def _on_run(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        if d != "local" or not self._runs_on:
            return
        if ev.get("type") == RUN_STARTED:
            if self._run is not None:
                self._end_run(t, None, None)
            c = self._calls.get(call)
            parent = c.ctx if c is not None and not c.ended else None
            key = (str(ev.get("grid") or ""), _int(ev.get("run")) or 0)
            span = self._start(run_span_name(ev.get("variant")), parent, t, run_attrs(ev, self._s))
            self._run = _Run(span, self._ctx(span), t, key)
            self.runs[key] = span.get_span_context()
        elif self._run is not None:
            self._end_run(t, text(ev.get("status")), self._s(ev.get("error")))

    def _end_run(self, t: float, status: str | None, error: str | None) -> None:
        run, self._run = self._run, None
        if run is None:
            return
        end_run_span(self._trace, run.span, max(t, run.start), status, error)

    def _on_caller(self, d: str, ev: Mapping[str, Any], t: float, call: int) -> None:
        if d != "local":
            return
        c = self._call(call, t)
        latency = ev.get("latency_ms")
        cached = bool(ev.get("cached"))
        took = float(latency) if isinstance(latency, int | float) and not cached else 0.0
        model = self._s(ev.get("model"))
        links = [] if c.last_reply is None else [self._trace.Link(c.last_reply)]
        self.spans += 1
        span = self.tracer.start_span(
            f"chat {model}" if model else "chat",
            context=self._parent_of(c),
            kind=self._trace.SpanKind.CLIENT,
            attributes=_clean(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": PROVIDER,
                    "gen_ai.request.model": model,
                    NS + "role": "caller",
                    NS + "run": _int(ev.get("run")),
                    NS + "turn": _int(ev.get("turn")),
                    NS + "cached": cached,
                    NS + "speech_ms": ev.get("speech_ms"),
                    "gen_ai.output.messages": (
                        _messages(
                            "assistant", [{"type": "text", "content": self._s(ev.get("text"))}]
                        )
                        if self.capture and isinstance(ev.get("text"), str)
                        else None
                    ),
                }
            ),
            links=links,
            start_time=ns(t - took),
        )
        span.end(end_time=ns(t))

    # -- which records the fold reads (every other record costs this one lookup) ----------

    HANDLERS: ClassVar[dict[str, Callable[..., None]]] = _with_aliases(
        {
            "call.start": _on_call_start,
            "channel.open": _on_channel_open,
            "call.answered": _on_answered,
            V.SESSION_UPDATE: _on_session,
            V.SESSION_UPDATED: _on_session,
            "channel.close": _on_call_end,
            "call.failed": _on_call_end,
            V.ERROR: _on_error,
            V.SPEECH_STARTED: _on_speech,
            V.SPEECH_STOPPED: _on_speech,
            "say.started": _on_say,
            "say.ended": _on_say,
            V.ITEM_CREATE: _on_item_create,
            V.INPUT_TRANSCRIPTION_COMPLETED: _on_transcription,
            V.RESPONSE_CREATE: _on_response_create,
            V.RESPONSE_CREATED: _on_created,
            V.RESPONSE_DONE: _on_done,
            V.RESPONSE_CANCEL: _on_cancel,
            "conversation.item.truncate": _on_truncate,
            V.OUTPUT_ITEM_ADDED: _on_output_item,
            V.OUTPUT_ITEM_DONE: _on_output_item,
            V.FUNCTION_ARGUMENTS_DONE: _on_output_item,
            V.AUDIO_STARTED: _on_playback,
            V.AUDIO_STOPPED: _on_playback,
            V.AUDIO_CLEARED: _on_playback,
            V.SPEAKER_STARTED: _on_playback,
            V.SPEAKER_STOPPED: _on_playback,
            "audio.audible": _on_playback,
            "tool.started": _on_tool,
            "tool.approval": _on_tool,
            "tool.finished": _on_tool,
            RUN_STARTED: _on_run,
            RUN_ENDED: _on_run,
            CALLER_TURN: _on_caller,
            **dict.fromkeys(V.OUTPUT_DELTAS, _on_delta),
        }
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def run_span_name(variant: Any) -> str:
    return f"experiment_run {variant}" if isinstance(variant, str) and variant else "experiment_run"


def run_attrs(meta: Mapping[str, Any], scrub: Callable[[Any], str | None]) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "experiment_run",
        NS + "run.variant": scrub(meta.get("variant")),
        NS + "run.condition": scrub(meta.get("condition")),
        NS + "run.repeat": _int(meta.get("repeat")),
        NS + "run.index": _int(meta.get("run")),
        NS + "run.seed": _int(meta.get("seed")),
        NS + "run.grid": scrub(meta.get("grid")),
    }


def end_run_span(trace: Any, span: Any, t: float, status: str | None, error: str | None) -> None:
    span.set_attributes(_clean({NS + "run.status": status, NS + "run.error": error}))
    if status == "failed":
        span.set_status(trace.Status(trace.StatusCode.ERROR, error or "failed"))
    span.end(end_time=ns(t))


# -- judges: chat spans under their run, linked to the response they scored ---------------------


def judge_spans(
    builder_tracer: Any,
    judged: Sequence[Mapping[str, Any]],
    *,
    run_context: Callable[[int], Any],
    reply_context: Callable[[int, int | None], Any],
    capture_content: bool,
) -> int:
    """One ``chat`` span per judgement under its run's span; returns how many.

    A judgement is a row of ``runs.judged``, with its ``started_ms`` / ``ended_ms``. Its span is
    linked to the response of the turn it scored (a per-run judgement: to the run).
    """
    trace = _trace()
    made = 0
    for row in judged:
        start, end = _ms(row.get("started_ms")), _ms(row.get("ended_ms"))
        if start is None or end is None:
            continue  # a judgement saved before its times were kept
        run = _int(_py(row.get("run"))) or 0
        turn = _int(_py(row.get("turn")))
        parent = run_context(run)
        reply = reply_context(run, turn)
        links = [trace.Link(reply, {NS + "scores": "response"})] if reply is not None else []
        model = _str(row.get("model"))
        score, passed = _int(_py(row.get("score"))), _py(row.get("passed"))
        name = _str(row.get("judge"))
        err = _str(row.get("error"))
        span = builder_tracer.start_span(
            f"chat {model}" if model else "chat",
            context=trace.set_span_in_context(trace.NonRecordingSpan(parent))
            if parent is not None
            else None,
            kind=trace.SpanKind.CLIENT,
            attributes=_clean(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": PROVIDER,
                    "gen_ai.request.model": model,
                    "gen_ai.request.temperature": 0.0,
                    NS + "role": "judge",
                    NS + "judge.name": name,
                    NS + "judge.per": _str(row.get("per")),
                    NS + "judge.score": score,
                    NS + "judge.passed": passed if isinstance(passed, bool) else None,
                    NS + "run": run,
                    NS + "turn": turn,
                    NS + "cached": bool(_py(row.get("cached"))),
                    "error.type": "judge_error" if err else None,
                }
            ),
            links=links,
            start_time=ns(start),
        )
        span.add_event(
            "gen_ai.evaluation.result",
            _clean(
                {
                    "gen_ai.evaluation.name": name,
                    "gen_ai.evaluation.score.value": float(score) if score is not None else None,
                    "gen_ai.evaluation.score.label": (
                        ("pass" if passed else "fail") if isinstance(passed, bool) else None
                    ),
                    "gen_ai.evaluation.explanation": (
                        _str(row.get("reason")) if capture_content else None
                    ),
                }
            ),
            timestamp=ns(end),
        )
        if err:
            span.set_status(trace.Status(trace.StatusCode.ERROR, err))
        span.end(end_time=ns(max(start, end)))
        made += 1
    return made


def _py(value: Any) -> Any:
    """A pandas scalar as Python's (NA / NaN as None)."""
    try:
        if value is None or value != value:
            return None
    except (TypeError, ValueError):  # pandas.NA refuses bool()
        return None
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _ms(value: Any) -> float | None:
    v = _py(value)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _str(value: Any) -> str | None:
    v = _py(value)
    return v if isinstance(v, str) else None


def _turn_replies(runs: Runs) -> dict[tuple[int, int], tuple[int, str]]:
    """(run, turn) -> (call number, response id) of the turn's first response."""
    out: dict[tuple[int, int], tuple[int, str]] = {}
    for run in runs.runs:
        for row in run.rows:
            rid, turn = row.get("response_id"), _int(_py(row.get("turn")))
            if isinstance(rid, str) and turn is not None:
                call = _int(_py(row.get("call_number"))) or run.call_number
                out[(run.index, turn)] = (call, rid)
    return out


# -- live: a session's tracing -----------------------------------------------------------------


_STREAM_DELTAS = frozenset(V.OUTPUT_DELTAS)


class SessionTracing:
    """A session's live trace: listens to its log and folds each record as it is kept.

    ``explicit``: asked for (``tracing=True``, a ``tracer_provider``, ``trace()``): spans go to
    the provider whatever it is. Otherwise (the default, when opentelemetry-api is installed)
    each call is traced only when an SDK is configured then; until then a record costs a
    dictionary lookup.
    """

    def __init__(
        self,
        log: EventLog,
        *,
        tracer_provider: Any = None,
        capture_content: bool | None = None,
        scrub: Callable[[str], str] | None = None,
        explicit: bool = False,
    ) -> None:
        self.provider = tracer_provider
        self.capture = capture_default(capture_content)
        self._scrub = scrub
        self._explicit = explicit or tracer_provider is not None
        self.builder: TraceBuilder | None = None
        self._off = False  # checked at a call's (or a run's) start
        self._broken = False
        # Records wait here for the fold, which runs on the session's event loop a moment
        # later (FOLD_DELAY_S): building spans never sits in a reply's or a tool's path.
        self._waiting: collections.deque[tuple[str, Mapping[str, Any], float, int]] = (
            collections.deque()
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        # (call, response id) whose first output delta went to the fold: the rest of a stream
        # costs a set lookup here (the builder keeps only a reply's first chunk)
        self._streamed: dict[tuple[int, str], None] = {}
        self._stop = log.listen(self._record)
        if self._explicit:
            self._begin()

    def _begin(self) -> bool:
        if self.builder is None:
            if not self._explicit and not configured(self.provider):
                return False
            self.builder = TraceBuilder(
                tracer_for(self.provider), capture_content=self.capture, scrub=self._scrub
            )
        return True

    def _record(self, direction: str, event: Mapping[str, Any], t_ms: float, call: int) -> None:
        etype = event.get("type")
        if etype not in TraceBuilder.HANDLERS:
            return  # nothing of it reaches a span: not even queued
        rid = event.get("response_id")
        if etype in _STREAM_DELTAS and isinstance(rid, str):  # only a stream's first output counts
            key = (call, rid)
            if key in self._streamed:
                return
            self._streamed[key] = None
            if len(self._streamed) > 256:
                del self._streamed[next(iter(self._streamed))]
        builder = self.builder
        if builder is None:
            starts = etype in ("call.start", RUN_STARTED)  # where a configured SDK is checked
            if not starts and self._off:
                return
            if self._broken or not self._begin():
                self._off = True
                return
            self._off = False
        self._waiting.append((direction, event, t_ms, call))
        if self._scheduled:
            return
        # (the non-raising form of get_running_loop: this runs once per record)
        loop: asyncio.AbstractEventLoop | None = asyncio._get_running_loop()  # noqa: SLF001
        here = loop is not None
        if loop is None:
            loop = self._loop
        if loop is None or loop.is_closed():
            self._drain()  # no loop to defer to (a script, a test): fold now
            return
        self._loop, self._scheduled = loop, True
        if here:
            loop.call_later(FOLD_DELAY_S, self._drain)
        else:
            loop.call_soon_threadsafe(loop.call_later, FOLD_DELAY_S, self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        builder = self.builder
        waiting = self._waiting
        while waiting:
            direction, event, t_ms, call = waiting.popleft()
            if builder is None:
                continue
            try:
                builder.feed(direction, event, t_ms, call)
            except Exception:  # a trace must never break a call: say so once, and stop
                _logger.exception("realtime_widget tracing failed; it is off for this session")
                self._broken = True
                self.builder = builder = None
                self._off = True

    def flush(self) -> None:
        """Fold what is waiting now (the fold otherwise runs a moment after each record)."""
        self._drain()

    def judged(self, runs: Runs, judged: Sequence[Mapping[str, Any]]) -> int:
        """Judge spans for rows just judged, linked to this session's live response spans."""
        self._drain()
        builder = self.builder
        if builder is None:
            return 0
        replies = _turn_replies(runs)
        grid = getattr(runs, "grid", "")
        with builder.lock:
            return judge_spans(
                builder.tracer,
                judged,
                run_context=lambda run: builder.runs.get((grid, run)),
                reply_context=lambda run, turn: (
                    builder.response_context(*replies[(run, turn)])
                    if turn is not None and (run, turn) in replies
                    else None
                ),
                capture_content=self.capture,
            )

    def close(self) -> None:
        """End what is open (the session closed) and stop listening."""
        self._stop()
        self._drain()
        if self.builder is not None:
            self.builder.finish()


def attach(
    log: EventLog,
    tracing: bool | None,
    tracer_provider: Any,
    capture_content: bool | None,
    scrub: Callable[[str], str] | None,
) -> SessionTracing | None:
    """A session's tracing, as its arguments ask.

    ``tracing=False`` none; ``True`` (or a ``tracer_provider``) on, the extra required; None (the
    default) on when opentelemetry-api is installed, each call traced once an SDK is configured.
    """
    if tracing is False:
        return None
    explicit = tracing is True or tracer_provider is not None
    if explicit:
        _trace()  # a missing extra is said now
    elif not available():
        return None
    return SessionTracing(
        log,
        tracer_provider=tracer_provider,
        capture_content=capture_content,
        scrub=scrub,
        explicit=explicit,
    )


# -- after the fact: a saved log, a saved set of runs ------------------------------------------


def export_log(log: EventLog, tracer_provider: Any = None, *, capture_content: bool | None) -> int:
    """``EventLog.to_otel``: the log's spans, with its own times."""
    builder = TraceBuilder(
        tracer_for(tracer_provider), capture_content=capture_default(capture_content)
    )
    builder.feed_records(log)
    builder.finish()
    _flush(tracer_provider)
    return builder.spans


def export_runs(runs: Runs, tracer_provider: Any = None, *, capture_content: bool | None) -> int:
    """``Runs.to_otel``: one trace per set of runs.

    ``run_script`` > ``experiment_run {variant}`` > the run's user turns, responses, tools and
    caller lines, and its judges' ``chat`` spans linked to the responses they scored.
    """
    trace = _trace()
    tracer = tracer_for(tracer_provider)
    capture = capture_default(capture_content)
    judged = [] if runs.judged is None else runs.judged.to_dict("records")
    times = [t for r in runs.runs for t in (r.started_ms, r.ended_ms) if t is not None]
    times += [t for j in judged for t in (_ms(j.get("started_ms")), _ms(j.get("ended_ms"))) if t]
    if not times:
        return 0
    root = tracer.start_span(
        "run_script",
        kind=trace.SpanKind.INTERNAL,
        attributes=_clean(
            {
                "gen_ai.operation.name": "run_script",
                NS + "runs": len(runs.runs),
                NS + "variants": list(runs.variant_names),
                NS + "conditions": list(runs.conditions),
                NS + "repeat": runs.repeat,
                NS + "script.fingerprint": getattr(runs.script, "fingerprint", None),
            }
        ),
        start_time=ns(min(times)),
    )
    made = 1
    root_ctx = trace.set_span_in_context(root)
    run_ctx: dict[int, Any] = {}
    replies: dict[tuple[int, int], Any] = {}
    turn_replies = _turn_replies(runs)
    for run in runs.runs:
        start = run.started_ms if run.started_ms is not None else min(times)
        span = tracer.start_span(
            run_span_name(run.variant),
            context=root_ctx,
            kind=trace.SpanKind.INTERNAL,
            attributes=_clean(
                {**run_attrs({**run.meta, "grid": None}, _str), NS + "call_number": run.call_number}
            ),
            start_time=ns(start),
        )
        made += 1
        run_ctx[run.index] = span.get_span_context()
        if run.events is not None:
            builder = TraceBuilder(
                tracer,
                capture_content=capture,
                parent=trace.set_span_in_context(span),
                session=run.session,
            )
            builder.feed_records(run.events)
            builder.finish()
            made += builder.spans
            for (r, turn), (call, rid) in turn_replies.items():
                if r == run.index and builder.response_context(call, rid) is not None:
                    replies[(r, turn)] = builder.response_context(call, rid)
        end = run.ended_ms if run.ended_ms is not None else start
        end_run_span(trace, span, max(end, start), run.status, run.error)
    made += judge_spans(
        tracer,
        judged,
        run_context=run_ctx.get,
        reply_context=lambda run, turn: replies.get((run, turn)) if turn is not None else None,
        capture_content=capture,
    )
    root.end(end_time=ns(max(times)))
    _flush(tracer_provider)
    return made
