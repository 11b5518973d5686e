"""OpenTelemetry traces from the event log (``_otel.py``): the span tree, names, attributes,
events and links on the GenAI conventions, content only when asked, never a secret; no work
without an SDK; the extra imported lazily; export over OTLP/HTTP to a receiver on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from realtime_widget import EventLog, _otel
from tests.conftest import SENTINEL_KEY

T0 = 1_764_000_000_000.0


@pytest.fixture
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    yield tp, exporter
    tp.shutdown()


def call_log(*, secret: str = "") -> EventLog:
    """A page call: spoken turn, a reply the user barges in on (cut, truncated), a tool held for
    approval, the reply after it, and a simulated caller's line."""
    log = EventLog(scrub=(lambda s: s.replace(secret, "[redacted]")) if secret else None)
    rows: list[tuple[str, dict[str, Any], float]] = [
        ("local", {"type": "call.start", "call": 1, "mic": True}, 0),
        (
            "local",
            {"type": "call.answered", "service_call_id": "rtc_abc", "auth_scheme": "Bearer"},
            40,
        ),
        (
            "client",
            {
                "type": "session.update",
                "session": {"model": "openai/gpt-4o-mini", "audio": {"output": {"voice": "Clive"}}},
            },
            100,
        ),
        (
            "server",
            {
                "type": "session.updated",
                "session": {
                    "id": "sess_1",
                    "model": "openai/gpt-4o-mini",
                    "audio": {"output": {"voice": "Clive"}},
                },
            },
            120,
        ),
        ("server", {"type": "input_audio_buffer.speech_started", "item_id": "item_u1"}, 1000),
        ("server", {"type": "input_audio_buffer.speech_stopped", "item_id": "item_u1"}, 1800),
        (
            "server",
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": "item_u1",
                "transcript": f"what is on the menu {secret}",
            },
            1850,
        ),
        (
            "server",
            {
                "type": "response.created",
                "response": {
                    "id": "resp_1",
                    "status": "in_progress",
                    "output_modalities": ["audio"],
                },
            },
            1900,
        ),
        (
            "server",
            {
                "type": "response.output_item.added",
                "response_id": "resp_1",
                "item": {"id": "item_a1", "type": "message"},
            },
            1950,
        ),
        ("server", {"type": "output_audio_buffer.started", "response_id": "resp_1"}, 2000),
        (
            "server",
            {
                "type": "response.output_audio_transcript.delta",
                "response_id": "resp_1",
                "item_id": "item_a1",
                "delta": "We have",
            },
            2010,
        ),
        ("local", {"type": "audio.audible", "response_id": "resp_1", "rms": 0.1}, 2050),
        (
            "server",
            {
                "type": "response.output_audio_transcript.delta",
                "response_id": "resp_1",
                "item_id": "item_a1",
                "delta": " soup",
            },
            2100,
        ),
        ("server", {"type": "input_audio_buffer.speech_started", "item_id": "item_u2"}, 2500),
        ("client", {"type": "response.cancel"}, 2510),
        (
            "client",
            {
                "type": "conversation.item.truncate",
                "item_id": "item_a1",
                "content_index": 0,
                "audio_end_ms": 450,
            },
            2520,
        ),
        (
            "server",
            {
                "type": "response.done",
                "response": {
                    "id": "resp_1",
                    "status": "cancelled",
                    "status_details": {"reason": "turn_detected"},
                    "output": [
                        {
                            "id": "item_a1",
                            "type": "message",
                            "content": [{"type": "output_audio", "transcript": "We have soup"}],
                        }
                    ],
                    "usage": {
                        "input_tokens": 30,
                        "output_tokens": 12,
                        "input_token_details": {"audio_tokens": 20, "text_tokens": 10},
                        "output_token_details": {"audio_tokens": 9, "text_tokens": 3},
                    },
                },
            },
            2530,
        ),
        ("server", {"type": "output_audio_buffer.cleared", "response_id": "resp_1"}, 2540),
        ("server", {"type": "input_audio_buffer.speech_stopped", "item_id": "item_u2"}, 3000),
        (
            "server",
            {"type": "response.created", "response": {"id": "resp_2", "status": "in_progress"}},
            3100,
        ),
        (
            "server",
            {
                "type": "response.function_call_arguments.done",
                "response_id": "resp_2",
                "call_id": "call_9",
                "name": "book",
                "arguments": '{"day": "friday"}',
            },
            3200,
        ),
        (
            "server",
            {
                "type": "response.done",
                "response": {
                    "id": "resp_2",
                    "status": "completed",
                    "output": [
                        {
                            "type": "function_call",
                            "call_id": "call_9",
                            "name": "book",
                            "arguments": '{"day": "friday"}',
                        }
                    ],
                },
            },
            3210,
        ),
        (
            "local",
            {
                "type": "tool.started",
                "call_id": "call_9",
                "name": "book",
                "arguments": '{"day": "friday"}',
                "response_id": "resp_2",
            },
            3220,
        ),
        (
            "local",
            {
                "type": "tool.approval",
                "call_id": "call_9",
                "name": "book",
                "decision": "pending",
                "reason": "",
            },
            3221,
        ),
        (
            "local",
            {
                "type": "tool.approval",
                "call_id": "call_9",
                "name": "book",
                "decision": "approved",
                "reason": "",
            },
            4221,
        ),
        (
            "local",
            {
                "type": "tool.finished",
                "call_id": "call_9",
                "name": "book",
                "status": "ok",
                "duration_ms": 5.0,
                "output_preview": f"booked {secret}",
                "error": "",
            },
            4230,
        ),
        (
            "client",
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": "call_9", "output": "booked"},
            },
            4231,
        ),
        ("client", {"type": "response.create"}, 4231),
        (
            "server",
            {
                "type": "response.created",
                "response": {
                    "id": "resp_3",
                    "status": "in_progress",
                    "output_modalities": ["text"],
                },
            },
            4300,
        ),
        (
            "server",
            {"type": "response.output_text.delta", "response_id": "resp_3", "delta": "Booked"},
            4400,
        ),
        (
            "server",
            {"type": "response.done", "response": {"id": "resp_3", "status": "completed"}},
            4500,
        ),
        (
            "local",
            {
                "type": "caller.turn",
                "run": 1,
                "turn": 2,
                "text": "thanks",
                "model": "openai/gpt-4.1-mini",
                "latency_ms": 120.0,
                "cached": False,
            },
            4700,
        ),
        ("local", {"type": "channel.close", "by": "local"}, 5000),
    ]
    log._extend((d, ev, T0 + t, T0 + t, 1) for d, ev, t in rows)
    return log


def tree(spans: list[ReadableSpan]) -> list[tuple[int, str]]:
    kids: dict[Any, list[ReadableSpan]] = {}
    for s in spans:
        kids.setdefault(s.parent.span_id if s.parent else None, []).append(s)
    out: list[tuple[int, str]] = []

    def walk(parent: Any, depth: int) -> None:
        for s in sorted(kids.get(parent, []), key=lambda s: (s.start_time, s.name)):
            out.append((depth, s.name))
            walk(s.context.span_id, depth + 1)

    walk(None, 0)
    return out


def ns(t: float) -> int:
    return round((T0 + t) * 1_000_000)


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def test_a_call_is_a_tree_of_gen_ai_spans_with_the_logs_times(provider: Any) -> None:
    tp, exporter = provider
    assert call_log().to_otel(tp) == 8
    spans = list(exporter.get_finished_spans())
    model = "generate_live_content openai/gpt-4o-mini"
    assert tree(spans) == [
        (0, "realtime_session"),
        (1, "user_input"),
        (1, model),
        (1, "user_input"),
        (1, model),
        (1, "execute_tool book"),
        (1, model),
        (1, "chat openai/gpt-4.1-mini"),
    ]
    (call,) = named(spans, "realtime_session")
    assert (call.start_time, call.end_time) == (ns(0), ns(5000))
    assert call.attributes["gen_ai.provider.name"] == "inworld"
    assert call.attributes["gen_ai.conversation.id"] == "rtc_abc"
    assert call.attributes["gen_ai.request.model"] == "openai/gpt-4o-mini"
    assert call.attributes["realtime_widget.voice"] == "Clive"
    assert call.attributes["realtime_widget.transport"] == "page"
    assert [e.name for e in call.events] == [
        "gen_ai.client.live_session.started",
        "gen_ai.client.live_session.ended",
    ]
    user1, _ = sorted(named(spans, "user_input"), key=lambda s: s.start_time)
    assert (user1.start_time, user1.end_time) == (ns(1000), ns(1800))
    assert [e.name for e in user1.events] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
    ]
    r1, r2, r3 = sorted(named(spans, model), key=lambda s: s.start_time)
    # a response starts where the user's turn ended, and ends when its sound stopped
    assert (r1.start_time, r1.end_time) == (ns(1800), ns(2540))
    a = r1.attributes
    assert a["gen_ai.operation.name"] == "generate_live_content"
    assert a["gen_ai.response.id"] == "resp_1"
    assert a["gen_ai.conversation.id"] == "rtc_abc"
    assert a["gen_ai.response.finish_reasons"] == ("cancelled", "turn_detected")
    assert a["gen_ai.usage.input_tokens"] == 30 and a["gen_ai.usage.output_tokens"] == 12
    assert a["gen_ai.usage.audio.input_tokens"] == 20
    assert a["gen_ai.usage.audio.output_tokens"] == 9
    assert a["realtime_widget.latency.to_first_delta_ms"] == pytest.approx(210)
    assert a["realtime_widget.latency.to_first_output_ms"] == pytest.approx(250)  # heard
    assert a["realtime_widget.barge_ins"] == 1
    events = [e.name for e in r1.events]
    for name in ("barge_in", "response.cancel", "truncation", "audio.stopped",
                 "gen_ai.output.first_chunk", "audio.first_audible"):  # fmt: skip
        assert name in events
    cut = next(e for e in r1.events if e.name == "truncation")
    assert cut.attributes["realtime_widget.audio_end_ms"] == 450
    assert r1.links[0].context.span_id == user1.context.span_id
    # the same latencies as the log's turns() (one owner of the rules)
    turns = call_log().turns()
    assert a["realtime_widget.latency.to_first_output_ms"] == turns["to_first_output_ms"][0]
    (tool,) = named(spans, "execute_tool book")
    t = tool.attributes
    assert t["gen_ai.operation.name"] == "execute_tool"
    assert t["gen_ai.tool.name"] == "book" and t["gen_ai.tool.call.id"] == "call_9"
    assert t["realtime_widget.tool.approval_wait_ms"] == pytest.approx(1000)
    assert (tool.start_time, tool.end_time) == (ns(3220), ns(4230))
    assert [e.name for e in tool.events] == ["approval.pending", "approval.approved"]
    assert tool.links[0].context.span_id == r2.context.span_id
    assert r3.attributes["realtime_widget.trigger"] == "tool_output" and not r3.links
    (caller,) = named(spans, "chat openai/gpt-4.1-mini")
    assert (caller.start_time, caller.end_time) == (ns(4580), ns(4700))
    assert caller.attributes["realtime_widget.role"] == "caller"
    assert caller.links[0].context.span_id == r3.context.span_id


def test_content_only_when_asked(provider: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    tp, exporter = provider
    call_log().to_otel(tp)
    text = "\n".join(s.to_json() for s in exporter.get_finished_spans())
    for word in ("soup", "menu", "booked", "friday", "thanks"):
        assert word not in text
    exporter.clear()
    monkeypatch.setenv(_otel.CAPTURE_ENV, "true")
    call_log().to_otel(tp)
    spans = list(exporter.get_finished_spans())
    r1 = next(s for s in spans if s.attributes.get("gen_ai.response.id") == "resp_1")
    out = json.loads(r1.attributes["gen_ai.output.messages"])
    assert out == [{"role": "assistant", "parts": [{"type": "text", "content": "We have soup"}]}]
    user = min(named(spans, "user_input"), key=lambda s: s.start_time)
    assert user.attributes["realtime_widget.transcript"].startswith("what is on the menu")
    tool = named(spans, "execute_tool book")[0]
    assert tool.attributes["gen_ai.tool.call.arguments"] == '{"day": "friday"}'
    exporter.clear()
    call_log().to_otel(tp, capture_content=False)  # the argument wins over the switch
    assert "soup" not in "\n".join(s.to_json() for s in exporter.get_finished_spans())


def test_no_secret_in_any_span_even_with_content(provider: Any) -> None:
    tp, exporter = provider
    log = call_log(secret=SENTINEL_KEY)
    # live: the session's tracer hears the events before the log's scrubber, and scrubs
    live = _otel.SessionTracing(
        EventLog(scrub=log._scrub), tracer_provider=tp, capture_content=True,
        scrub=lambda s: s.replace(SENTINEL_KEY, "[redacted]"),
    )  # fmt: skip
    assert live.builder is not None
    raw = call_log()
    for rec in raw:
        ev = json.loads(json.dumps(rec["event"]).replace("menu", f"menu {SENTINEL_KEY}"))
        live.builder.feed(rec["direction"], ev, rec["t_ms"], rec["call_number"])
    live.close()
    log.to_otel(tp, capture_content=True)
    spans = list(exporter.get_finished_spans())
    assert len(spans) == 16
    assert SENTINEL_KEY not in "\n".join(s.to_json() for s in spans)


def test_a_live_session_log_is_folded_as_records_are_kept(provider: Any) -> None:
    tp, exporter = provider
    log = EventLog()
    tracing = _otel.attach(log, None, tp, None, None)
    assert tracing is not None
    for rec in call_log():
        log._append(rec["direction"], rec["event"], t_ms=rec["t_ms"], t_kernel_ms=rec["t_ms"],
                   call_number=1)  # fmt: skip
        if rec["event"]["type"] == "tool.finished":
            done = {s.name for s in exporter.get_finished_spans()}
            assert "execute_tool book" in done and "realtime_session" not in done
    tracing.close()
    assert len(exporter.get_finished_spans()) == 8
    log._append("local", {"type": "call.start"}, t_ms=T0, t_kernel_ms=T0, call_number=2)
    assert len(exporter.get_finished_spans()) == 8  # closed: no longer listening


def test_without_an_sdk_a_session_does_no_tracing_work(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    log = EventLog()
    tracing = _otel.attach(log, None, None, None, None)
    assert tracing is not None and tracing.builder is None
    for rec in call_log():
        log._append(rec["direction"], rec["event"], t_ms=rec["t_ms"], t_kernel_ms=rec["t_ms"])
    assert tracing.builder is None  # the proxy: nothing configured, nothing built
    assert _otel.attach(log, False, None, None, None) is None
    # asked for explicitly, it goes to the provider whatever it is
    assert _otel.attach(EventLog(), True, None, None, None).builder is not None  # type: ignore[union-attr]


def test_the_core_imports_no_opentelemetry_and_a_missing_extra_is_named() -> None:
    code = (
        "import sys, realtime_widget\n"
        "from realtime_widget import EventLog\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'imported'\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith('opentelemetry'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from realtime_widget import _otel\n"
        "assert _otel.attach(EventLog(), None, None, None, None) is None\n"
        "try:\n"
        "    EventLog().to_otel()\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 'pip install "realtime-widget[otel]"' in out.stdout
    assert "opentelemetry-api" in out.stdout


def test_runs_read_back_export_one_trace(provider: Any, tmp_path: Any) -> None:
    pytest.importorskip("pyarrow")
    from realtime_widget.experiments._runs import Run, Runs

    tp, exporter = provider
    log = call_log()
    runs = Runs(["hi"], {"a": {}}, 1)  # type: ignore[arg-type]
    run = Run("a", 1, 1, 7, {}, call_number=1, status="completed",
              started_ms=T0 + 900, ended_ms=T0 + 4600)  # fmt: skip
    run.events = log
    run.rows = [{"variant": "a", "repeat": 1, "run": 1, "turn": 1, "response_id": "resp_1",
                 "call_number": 1}]  # fmt: skip
    runs.runs.append(run)
    import pandas as pd

    from realtime_widget.evaluate._judge import JUDGE_COLUMNS, judged_frame

    row = dict.fromkeys(JUDGE_COLUMNS)
    row.update(variant="a", repeat=1, run=1, turn=1, judge="soup", per="turn", score=4,
               passed=True, model="openai/gpt-4.1-mini", cached=False, latency_ms=90.0,
               started_ms=T0 + 6000, ended_ms=T0 + 6090)  # fmt: skip
    runs.judged = judged_frame(pd, [row])
    made = runs.to_otel(tp)
    spans = list(exporter.get_finished_spans())
    assert made == len(spans)
    shape = tree(spans)
    assert shape[:2] == [(0, "run_script"), (1, "experiment_run a")]
    (judge,) = [s for s in spans if s.attributes.get("realtime_widget.role") == "judge"]
    assert (
        judge.parent.span_id
        == next(s for s in spans if s.name == "experiment_run a").context.span_id
    )
    r1 = next(s for s in spans if s.attributes.get("gen_ai.response.id") == "resp_1")
    assert judge.links[0].context.span_id == r1.context.span_id
    ev = judge.events[0]
    assert ev.name == "gen_ai.evaluation.result"
    assert ev.attributes["gen_ai.evaluation.score.value"] == 4.0
    assert ev.attributes["gen_ai.evaluation.score.label"] == "pass"
    assert (judge.start_time, judge.end_time) == (ns(6000), ns(6090))
    run_span = next(s for s in spans if s.name == "experiment_run a")
    assert run_span.attributes["realtime_widget.run.seed"] == 7


class _Receiver(BaseHTTPRequestHandler):
    got: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append(body if self.path == "/v1/traces" else b"")
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_otlp_http_export_reaches_a_receiver_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from realtime_widget import tracing

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    _Receiver.got = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        tp = tracing.otlp(url, set_global=False, headers={"x-backend-key": SENTINEL_KEY})
        assert call_log().to_otel(tp) == 8  # flushed on the way out
        tp.shutdown()
    finally:
        server.shutdown()
        server.server_close()
    assert _Receiver.got and all(_Receiver.got)
    names: list[str] = []
    service = set()
    for body in _Receiver.got:
        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        for rs in req.resource_spans:
            service |= {a.value.string_value for a in rs.resource.attributes
                        if a.key == "service.name"}  # fmt: skip
            for ss in rs.scope_spans:
                assert ss.scope.name == "realtime_widget"
                names += [s.name for s in ss.spans]
        assert SENTINEL_KEY.encode() not in body  # the backend's key is a header, never a span
    assert service == {"realtime-widget"}
    assert sorted(names) == sorted([
        "realtime_session", "user_input", "user_input", "execute_tool book",
        "chat openai/gpt-4.1-mini", *["generate_live_content openai/gpt-4o-mini"] * 3,
    ])  # fmt: skip
