"""A session's live trace: a call with a tool and a judged grid against the emulator, folded into
OpenTelemetry spans as the records arrive (the SDK's in-memory exporter), and the same log
exported afterwards gives the same spans."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from realtime_widget import Judge
from tests.conftest import SENTINEL_KEY
from tests.helpers.headless import MakeEmulator, Open, until


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def tree(spans: list[ReadableSpan]) -> list[tuple[int, str]]:
    """(depth, name) in start order, children under their parents."""
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


def everything(spans: list[ReadableSpan]) -> str:
    return "\n".join(s.to_json() for s in spans)


async def test_a_call_with_a_tool_is_one_trace_as_it_happens(
    session: Open, emu_with: MakeEmulator, spans: Any
) -> None:
    provider, exporter = spans
    emu = emu_with(api_key=SENTINEL_KEY)
    s = session(emu, api_key=SENTINEL_KEY, mic=False, tracer_provider=provider)

    @s.tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    await s.connect()
    reply = await s.ask("use get weather for Paris")
    assert reply.status == "completed"
    # the tool's output is answered by a second response; its sound plays out
    await until(lambda: len(s.events.of_type("response.done")) == 2)
    await until(lambda: len(s.events.of_type("speaker.stopped")) == 1)
    # live: the response and tool spans end while the call goes on (folded a moment after
    # their records)
    await until(lambda: len(exporter.get_finished_spans()) >= 4)
    live = {sp.name for sp in exporter.get_finished_spans()}
    assert {"execute_tool get_weather", "user_input"} <= live
    assert any(n.startswith("generate_live_content") for n in live)
    assert "realtime_session" not in live
    await s.aclose()

    got = list(exporter.get_finished_spans())
    shape = tree(got)
    assert shape[0] == (0, "realtime_session")
    names = [n for _, n in shape]
    assert names[1:] == [
        "user_input",
        "generate_live_content openai/gpt-4o-mini",
        "execute_tool get_weather",
        "generate_live_content openai/gpt-4o-mini",
    ]
    assert all(d == 1 for d, _ in shape[1:])
    call = next(sp for sp in got if sp.name == "realtime_session")
    assert call.attributes["gen_ai.provider.name"] == "inworld"
    assert call.attributes["realtime_widget.transport"] == "websocket"
    assert call.attributes["gen_ai.conversation.id"]
    tool = next(sp for sp in got if sp.name.startswith("execute_tool"))
    assert tool.attributes["gen_ai.tool.call.id"].startswith("call_")
    assert (
        tool.links
        and tool.attributes["gen_ai.conversation.id"] == call.attributes["gen_ai.conversation.id"]
    )
    # the trace's times are the log's own
    first = s.events.of_type("call.start")[0]["t_ms"]
    assert call.start_time == round(first * 1_000_000)
    heard = [
        sp for sp in got if sp.name.startswith("generate_live_content") and
        "realtime_widget.latency.to_first_output_ms" in sp.attributes
    ]  # fmt: skip
    turns = s.events.turns()
    assert heard[-1].attributes["realtime_widget.latency.to_first_output_ms"] == pytest.approx(
        turns["to_first_output_ms"].dropna().iloc[-1]
    )
    # no content by default, and never the key
    assert not any("gen_ai.output.messages" in sp.attributes for sp in got)
    assert SENTINEL_KEY not in everything(got)

    # the same log, exported after the fact: the same spans, the same times
    exporter.clear()
    assert s.events.to_otel(provider) == len(got)
    again = list(exporter.get_finished_spans())
    assert tree(again) == shape
    assert sorted((sp.name, sp.start_time, sp.end_time) for sp in again) == sorted(
        (sp.name, sp.start_time, sp.end_time) for sp in got
    )


async def test_a_judged_grid_hangs_runs_under_the_call_and_judges_link_to_turns(
    session: Open, spans: Any, tmp_path: Any
) -> None:
    provider, exporter = spans
    s = session(mic=False, tracer_provider=provider)

    @s.tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    await s.connect()
    runs = await s.run_script(
        ["use get weather for Paris", "thanks"],
        variants={"a": {}, "fast": {"speed": 1.2}},
        progress=False,
    )
    judged = await runs.judge(Judge("The agent mentions the weather.", cache=False))
    assert judged["started_ms"].notna().all()
    await s.aclose()
    got = list(exporter.get_finished_spans())
    shape = tree(got)
    assert shape[0] == (0, "realtime_session")
    runs_at = [(d, n) for d, n in shape if n.startswith("experiment_run")]
    assert runs_at == [(1, "experiment_run a"), (1, "experiment_run fast")]
    run_span = next(sp for sp in got if sp.name == "experiment_run fast")
    assert run_span.attributes["realtime_widget.run.variant"] == "fast"
    assert run_span.attributes["realtime_widget.run.repeat"] == 1
    assert isinstance(run_span.attributes["realtime_widget.run.seed"], int)
    by_id = {sp.context.span_id: sp for sp in got}
    in_run = [sp for sp in got if sp.parent and sp.parent.span_id == run_span.context.span_id]
    kinds = [sp.name.split(" ")[0] for sp in in_run]
    assert kinds.count("execute_tool") == 1 and kinds.count("generate_live_content") == 3
    judges = [sp for sp in got if sp.attributes.get("realtime_widget.role") == "judge"]
    assert len(judges) == 4
    for j in judges:
        assert j.name == "chat openai/gpt-4.1-mini"
        assert j.attributes["gen_ai.operation.name"] == "chat"
        assert by_id[j.parent.span_id].name.startswith("experiment_run")
        (link,) = j.links
        assert by_id[link.context.span_id].name.startswith("generate_live_content")
        assert j.events[0].name == "gen_ai.evaluation.result"

    # the saved set exports one trace: run_script > runs > their spans + judges
    runs.to_parquet(tmp_path / "set")
    from realtime_widget import Runs

    exporter.clear()
    back = Runs.read_parquet(tmp_path / "set")
    made = back.to_otel(provider)
    again = list(exporter.get_finished_spans())
    assert made == len(again)
    shape = tree(again)
    assert shape[0] == (0, "run_script")
    assert [(d, n) for d, n in shape if d == 1] == [
        (1, "experiment_run a"),
        (1, "experiment_run fast"),
    ]
    judges = [sp for sp in again if sp.attributes.get("realtime_widget.role") == "judge"]
    assert len(judges) == 4 and all(j.links for j in judges)
