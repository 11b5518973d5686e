"""Python tools: schemas from signatures, the call loop against a scripted front end, approval,
and the key kept out of every tool path."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Literal, Optional

import pytest
from pydantic import BaseModel
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from realtime_widget import RealtimeWidget
from realtime_widget._tools import Tool
from tests.conftest import SENTINEL_KEY
from tests.helpers.page import Service, browser, connect_fully, widget_on

T0 = 1_700_000_000_000.0

# -- schemas -----------------------------------------------------------------------------------


class Address(TypedDict):
    street: str
    city: str


class Order(BaseModel):
    item: str
    quantity: int = 1


def get_weather(city: str, unit: Literal["c", "f"] = "c", days: Optional[int] = None) -> dict:  # noqa: UP045 - Optional is what users write
    """Current weather for a city.

    Args:
        city: The city's name, e.g. Paris.
        unit: Celsius or Fahrenheit.
        days: How many days of forecast.
    """
    return {"city": city, "unit": unit}


def test_the_schema_comes_from_the_signature_and_docstring() -> None:
    tool = Tool(get_weather)
    schema = tool.schema()
    assert schema["name"] == "get_weather" and schema["type"] == "function"
    assert schema["description"] == "Current weather for a city."
    params = schema["parameters"]
    assert params["required"] == ["city"]
    props = params["properties"]
    assert props["city"] == {"type": "string", "description": "The city's name, e.g. Paris."}
    assert props["unit"]["enum"] == ["c", "f"] and props["unit"]["default"] == "c"
    assert props["unit"]["description"] == "Celsius or Fahrenheit."
    assert {"type": "integer"} in props["days"]["anyOf"] and {"type": "null"} in props["days"][
        "anyOf"
    ]
    assert params["additionalProperties"] is False


def test_lists_typed_dicts_and_pydantic_models() -> None:
    def ship(orders: list[Order], to: Address, tags: list[str] | None = None) -> str:
        """Ship orders.

        :param orders: what to ship
        :param to: where
        """
        return "ok"

    tool = Tool(ship)
    props = tool.parameters["properties"]
    assert props["orders"]["type"] == "array" and props["orders"]["description"] == "what to ship"
    defs = tool.parameters["$defs"]
    assert set(defs["Order"]["properties"]) == {"item", "quantity"}
    assert set(defs["Address"]["required"]) == {"street", "city"}
    kwargs = tool.validate(
        '{"orders": [{"item": "tea"}], "to": {"street": "1 Rue", "city": "Lyon"}}'
    )
    assert kwargs["orders"][0] == Order(item="tea", quantity=1)
    assert kwargs["to"] == {"street": "1 Rue", "city": "Lyon"} and kwargs["tags"] is None


def test_an_unsupported_annotation_is_refused_naming_the_parameter() -> None:
    def bad(city: str, sock: threading.Lock) -> None: ...

    with pytest.raises(
        TypeError, match=r"tool 'bad': parameter 'sock' has a type that has no JSON schema"
    ):
        Tool(bad)

    def star(*cities: str) -> None: ...

    with pytest.raises(TypeError, match=r"parameter 'cities' is \*args/\*\*kwargs"):
        Tool(star)
    with pytest.raises(ValueError, match="timeout must be"):
        Tool(get_weather, timeout=0)
    with pytest.raises(ValueError, match="a tool name must be"):
        Tool(get_weather, name="get weather!")


def test_arguments_are_validated_in_words_the_model_can_use() -> None:
    tool = Tool(get_weather)
    assert tool.validate('{"city": "Paris"}') == {"city": "Paris", "unit": "c", "days": None}
    with pytest.raises(ValueError, match=r"unit: Input should be 'c' or 'f'"):
        tool.validate({"city": "Paris", "unit": "k"})
    with pytest.raises(ValueError, match=r"city: Field required"):
        tool.validate("{}")
    with pytest.raises(ValueError, match="not valid JSON"):
        tool.validate("{city")
    with pytest.raises(ValueError, match="extra: Extra inputs are not permitted"):
        tool.validate({"city": "x", "extra": 1})


# -- registering ---------------------------------------------------------------------------------


def test_registering_composes_with_tools_set_by_hand_and_updates_a_live_session() -> None:
    w, sent = widget_on(Service())
    w.tools = [{"type": "web_search"}, {"type": "function", "name": "by_hand", "parameters": {}}]
    call = connect_fully(w, sent)
    n = len(sent)
    w.tool(get_weather)
    updates = [m for m in sent[n:] if m["kind"] == "send"]
    assert len(updates) == 1  # one partial session.update
    tools = updates[0]["events"][0]["session"]["tools"]
    assert [t.get("name", t["type"]) for t in tools] == ["web_search", "by_hand", "get_weather"]
    assert dict(w.tool_functions)["get_weather"].parameters["required"] == ["city"]
    with pytest.raises(TypeError):
        w.tool_functions["x"] = None  # type: ignore[index]
    w.tool(get_weather, description="Replaced")  # same name: replaced, not doubled
    assert [t.get("name", t["type"]) for t in w.tools] == ["web_search", "by_hand", "get_weather"]
    w.remove_tool("get_weather")
    assert [t.get("name", t["type"]) for t in w.tools] == ["web_search", "by_hand"]
    with pytest.raises(KeyError, match="no registered tool 'get_weather'"):
        w.remove_tool("get_weather")
    assert call == 1
    w.close()


# -- the loop --------------------------------------------------------------------------------------


class Conversation:
    """Scripted server events for one widget, numbered like a page would."""

    def __init__(self, w: RealtimeWidget, call: int) -> None:
        self.w, self.call, self.seq = w, call, 0

    def server(self, *events: dict) -> None:
        records = []
        for ev in events:
            records.append({"seq": self.seq, "dir": "server", "t_ms": T0 + self.seq, "event": ev})
            self.seq += 1
        browser(self.w, kind="events", call=self.call, page="p", records=records)

    def function_call(
        self, rid: str, call_id: str, name: str, args: dict, *, omit_name: bool = True
    ) -> None:
        item = {
            "id": f"item_{call_id}",
            "type": "function_call",
            "call_id": call_id,
            "name": name,
            "arguments": "",
        }
        self.server(
            {"type": "response.output_item.added", "response_id": rid, "item": item},
            {
                "type": "response.function_call_arguments.done",
                "response_id": rid,
                "item_id": item["id"],
                "call_id": call_id,
                "arguments": json.dumps(args),
                **({} if omit_name else {"name": name}),
            },
            {
                "type": "response.output_item.done",
                "response_id": rid,
                "item": {**item, "arguments": json.dumps(args)},
            },
        )

    def created(self, rid: str) -> None:
        self.server({"type": "response.created", "response": {"id": rid}})

    def done(self, rid: str) -> None:
        self.server({"type": "response.done", "response": {"id": rid, "status": "completed"}})


def outputs(sent: list[dict]) -> list[dict]:
    return [
        e
        for m in sent
        if m["kind"] == "send"
        for e in m["events"]
        if e["type"] in ("conversation.item.create", "response.create")
    ]


async def until(cond, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


@pytest.fixture
async def live():
    service = Service()
    w, sent = widget_on(service)  # built inside the running loop, as in a kernel
    w.connect()  # the worker hands its results to this loop: let it run them
    await until(lambda: sent and sent[-1]["kind"] == "connect")
    browser(w, kind="offer", call=1, page="p", sdp="v=0\r\n")
    await until(lambda: sent[-1]["kind"] == "answer")
    browser(w, kind="state", call=1, page="p", state="connected", detail="")
    yield w, sent, Conversation(w, 1)
    w.close()


async def test_a_call_runs_once_and_is_answered_after_its_response_is_done(live) -> None:
    w, sent, conv = live
    ran: list[tuple] = []

    @w.tool
    def weather(city: str, unit: Literal["c", "f"] = "c") -> dict:
        """Weather."""
        ran.append((city, unit, threading.current_thread().name))
        return {"city": city, "temp": 21}

    conv.created("r1")
    conv.function_call("r1", "c1", "weather", {"city": "Paris"})  # Inworld may omit the name
    await until(lambda: w.tool_calls and w.tool_calls[-1]["status"] == "ok")
    out = outputs(sent)
    assert out == [
        {
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": "c1",
                "output": '{"city": "Paris", "temp": 21}',
            },
        }
    ]  # no response.create while r1 is still active
    conv.done("r1")
    await until(lambda: len(outputs(sent)) == 2)
    assert outputs(sent)[-1] == {"type": "response.create"}
    conv.function_call("r1", "c1", "weather", {"city": "Paris"})  # a repeat of the same call
    conv.server(
        {
            "type": "conversation.item.done",
            "item": {
                "type": "function_call",
                "call_id": "c1",
                "name": "weather",
                "arguments": "{}",
            },
        }
    )
    await asyncio.sleep(0.05)
    assert len(ran) == 1 and ran[0][:2] == ("Paris", "c") and ran[0][2] != "MainThread"
    assert len(outputs(sent)) == 2
    types = [r["type"] for r in w.events if r["type"].startswith("tool.")]
    assert types == ["tool.started", "tool.finished"]
    finished = w.events.of_type("tool.finished")[0]["event"]
    assert finished["status"] == "ok" and finished["duration_ms"] >= 0


async def test_several_calls_in_one_response_run_together_and_answer_with_one_create(live) -> None:
    w, sent, conv = live

    @w.tool
    async def slow(n: int) -> int:
        """Sleep a bit."""
        await asyncio.sleep(0.3)
        return n * 2

    conv.created("r1")
    t0 = time.monotonic()
    for i in range(3):
        conv.function_call("r1", f"c{i}", "slow", {"n": i}, omit_name=False)
    conv.done("r1")
    await until(lambda: len(outputs(sent)) == 4)
    assert time.monotonic() - t0 < 0.8  # concurrent: not 3 x 0.3 s
    out = outputs(sent)
    assert sorted(e["item"]["output"] for e in out[:3]) == ["0", "2", "4"]
    assert out[3] == {"type": "response.create"}


async def test_an_async_tool_does_not_block_other_events(live) -> None:
    w, _, conv = live
    gate = asyncio.Event()

    @w.tool
    async def waits() -> str:
        """Waits for the test."""
        await gate.wait()
        return "done"

    seen: list[str] = []
    w.on("session.updated", lambda ev: seen.append("updated"))
    conv.created("r1")
    conv.function_call("r1", "c1", "waits", {})
    await until(lambda: w.tool_calls and w.tool_calls[-1]["status"] == "running")
    conv.server({"type": "session.updated", "session": {}})
    assert seen == ["updated"]  # delivered while the tool is still running
    gate.set()
    await until(lambda: w.tool_calls[-1]["status"] == "ok")


@pytest.mark.parametrize(
    ("name", "args", "status", "words"),
    [
        ("nope", {}, "unknown_tool", "unknown tool 'nope'; known: boom, sleepy"),
        (
            "boom",
            {"x": "not a number"},
            "invalid_arguments",
            "invalid arguments for boom: x: Input should be a valid integer, unable to parse string as an integer",
        ),
        ("boom", {"x": 1}, "error", "boom raised RuntimeError: bad key [redacted]"),
        ("sleepy", {}, "timeout", "sleepy did not finish within 0.1 s"),
    ],
)
async def test_every_failure_goes_back_to_the_model_and_the_conversation_goes_on(
    live, name, args, status, words
) -> None:
    w, sent, conv = live

    @w.tool
    def boom(x: int) -> None:
        """Fails."""
        raise RuntimeError(f"bad key {SENTINEL_KEY}")

    @w.tool(timeout=0.1)
    async def sleepy() -> None:
        """Too slow."""
        await asyncio.sleep(5)

    conv.created("r1")
    conv.function_call("r1", "c1", name, args)
    conv.done("r1")
    await until(lambda: len(outputs(sent)) == 2)
    item = outputs(sent)[0]["item"]
    assert json.loads(item["output"]) == {"error": words}
    assert outputs(sent)[1] == {"type": "response.create"}
    assert w.tool_calls[-1]["status"] == status and w.tool_calls[-1]["error"] == words
    everything = json.dumps(sent) + json.dumps(w.tool_calls) + w.events.to_pandas().to_csv()
    assert SENTINEL_KEY not in everything


async def test_approval_holds_the_call_until_approved_or_rejected(live) -> None:
    w, sent, conv = live
    ran: list[str] = []

    @w.tool(approve=True)
    def pay(amount: float) -> str:
        """Pay someone."""
        ran.append(f"paid {amount}")
        return "paid"

    conv.created("r1")
    conv.function_call("r1", "c1", "pay", {"amount": 5})
    conv.function_call("r1", "c2", "pay", {"amount": 500})
    conv.done("r1")
    await until(lambda: [c["status"] for c in w.tool_calls] == ["pending_approval"] * 2)
    await asyncio.sleep(0.05)
    assert ran == [] and outputs(sent) == []
    w.approve_tool_call("c1")
    browser(
        w, kind="request", page="p", action="reject", call_id="c2", reason="too much"
    )  # the view
    await until(lambda: len(outputs(sent)) == 3)
    assert ran == ["paid 5.0"]
    by_id = {e["item"]["call_id"]: e["item"]["output"] for e in outputs(sent)[:2]}
    assert by_id == {
        "c1": "paid",
        "c2": json.dumps({"error": "the user rejected this call: too much"}),
    }
    decisions = [r["event"]["decision"] for r in w.events.of_type("tool.approval")]
    assert sorted(decisions) == ["approved", "pending", "pending", "rejected"]
    with pytest.raises(ValueError, match="no tool call 'c1' is waiting for approval"):
        w.approve_tool_call("c1")


async def test_a_users_own_response_create_is_not_collided_with(live) -> None:
    w, sent, conv = live

    @w.tool
    def quick() -> str:
        """Quick."""
        return "ok"

    conv.created("r1")
    conv.function_call("r1", "c1", "quick", {})
    conv.done("r1")
    conv.created("r2")  # e.g. the user spoke: another response began before the output went
    await until(lambda: len(outputs(sent)) >= 1)
    await asyncio.sleep(0.05)
    assert [e["type"] for e in outputs(sent)] == ["conversation.item.create"]
    conv.done("r2")
    await until(lambda: len(outputs(sent)) == 2)
    assert outputs(sent)[-1] == {"type": "response.create"}


async def test_turns_show_tool_time_and_the_kernel_hop(live) -> None:
    w, sent, conv = live

    @w.tool
    async def fetch() -> str:
        """Fetch."""
        await asyncio.sleep(0.05)
        return "data"

    conv.created("r1")
    conv.function_call("r1", "c1", "fetch", {})
    conv.done("r1")
    await until(lambda: len(outputs(sent)) == 2)
    recv = w.events.of_type("response.function_call_arguments.done")[0]["t_ms"]
    # the page reports the output it put on the channel, 500 ms after it got the call (well
    # after the tool's 50 ms, however loaded the machine)
    browser(
        w,
        kind="events",
        call=conv.call,
        page="p",
        records=[{"seq": conv.seq, "dir": "client", "t_ms": recv + 500, "event": outputs(sent)[0]}],
    )
    row = w.events.turns().iloc[0]
    assert row["tool_calls"] == 1 and 45 <= row["tool_ms"] < 500
    assert row["tool_hop_ms"] == pytest.approx(500 - row["tool_ms"])
