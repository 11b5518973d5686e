"""The kernel on the call: the service's call id, hang-up (disconnect, the page gone, kernel
exit), the sideband's wiring (with a fake sideband: events, routing, fallback, one record per
event across both paths), and the auth fallback in the log. No network: httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from realtime_widget import EventLog, RealtimeWidget, _delivery
from realtime_widget import _call_control as CC
from realtime_widget._call_control import Cells, PageWatch
from realtime_widget._delivery import MidCellDeliveryError, NoPageError
from realtime_widget._sideband import NEEDS_EXTRA, SidebandUnavailable
from realtime_widget._widget import NO_PAGE_WORDS
from tests.conftest import SENTINEL_KEY
from tests.helpers import seam
from tests.helpers.page import ANSWER, browser, connect_fully, records

CALL_ID = "3f1c2a9e-0b7d-4c55-9a61-2d8e4f7b1c03"


class CallControlService:
    """A service with call control: the call id in ``Location``, and the hang-up endpoint."""

    def __init__(self, *, hangup_status: int = 200, basic_only: bool = False) -> None:
        self.hangup_status = hangup_status
        self.basic_only = basic_only
        self.requests: list[httpx.Request] = []

    def hangups(self) -> list[str]:
        return [r.url.path for r in self.requests if r.url.path.endswith("/hangup")]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.basic_only and not request.headers["authorization"].startswith("Basic "):
            return httpx.Response(401, json={"error": {"message": "use Basic"}})
        path = request.url.path
        if path.endswith("ice-servers"):
            return httpx.Response(200, json={"ice_servers": [{"urls": "stun:127.0.0.1:3478"}]})
        if path.endswith("/hangup"):
            if self.hangup_status != 200:
                return httpx.Response(self.hangup_status, json={"error": {"message": "gone"}})
            return httpx.Response(200, json={})
        return httpx.Response(
            201, text=ANSWER, headers={"Location": f"/v1/realtime/calls/{CALL_ID}"}
        )


class FakeSideband:
    """Stands in for ``_sideband.Sideband``: what the widget sends is kept, events and state
    changes are driven by the test."""

    made: list[FakeSideband] = []

    def __init__(self, url: str, headers: dict[str, str], *, on_event: Any, on_state: Any):
        self.url, self.headers = url, headers
        self.on_event, self.on_state = on_event, on_state
        self.state = "idle"
        self.sent: list[dict[str, Any]] = []
        self.queued: list[dict[str, Any]] = []  # accepted, not written (a drop in between)
        self.refuse: str | None = None  # a reason: the handshake fails with it
        self.closed = False
        FakeSideband.made.append(self)

    async def start(self) -> bool:
        self._report("connecting", "")
        if self.refuse is not None:
            self._report("failed", self.refuse)
            return False
        self._report("open", "")
        return True

    def _report(self, state: str, reason: str) -> None:
        self.state = state
        self.on_state(state, reason)

    @property
    def open(self) -> bool:
        return self.state == "open"

    def send(self, events: list[dict[str, Any]]) -> bool:
        if self.state != "open":
            return False
        self.sent.extend(events)
        return True

    def unsent(self) -> list[dict[str, Any]]:
        out, self.queued = self.queued, []
        return out

    async def close(self) -> None:
        self.closed = True
        if self.state not in ("closed", "failed"):
            self._report("closed", "closed by the kernel")

    def deliver(self, event: dict[str, Any], t_ms: float = 1_700_000_000_500.0) -> None:
        self.on_event(event, t_ms)


def on_service(service: Any, **kwargs: Any) -> tuple[RealtimeWidget, list[dict]]:
    kwargs.setdefault("api_key", SENTINEL_KEY)
    w = RealtimeWidget(base_url="http://127.0.0.1:8", **kwargs)
    seam.use_service(w, httpx.MockTransport(service), key=SENTINEL_KEY)
    sent: list[dict] = []
    seam.set_post(w, sent.append)
    return w, sent


def types(w: RealtimeWidget) -> list[str]:
    return [r["type"] for r in w.events]


def local(w: RealtimeWidget, kind: str) -> list[dict[str, Any]]:
    return [r["event"] for r in w.events.of_type(kind, direction="local")]


async def settle(rounds: int = 5) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


# -- the call id ----------------------------------------------------------------------------


def test_the_service_call_id_is_kept_per_call_logged_and_exported(tmp_path: Path) -> None:
    service = CallControlService()
    w, sent = on_service(service, sideband=False)
    try:
        assert w.service_call_id is None
        call = connect_fully(w, sent)
        assert w.service_call_id == CALL_ID
        answered = local(w, "call.answered")
        assert answered == [
            {"type": "call.answered", "service_call_id": CALL_ID, "auth_scheme": "Bearer"}
        ]
        assert w.events.of_type("call.answered")[0]["call_number"] == call
        out = w.events.to_jsonl(tmp_path / "log.jsonl")
        assert CALL_ID in out.read_text()
        # a function call's call_id is something else: the widget's name cannot be mistaken
        assert not hasattr(w, "call_id")
    finally:
        w.close()


def test_a_service_without_an_id_gets_the_data_channel_only(rig_plain) -> None:
    w, sent = rig_plain
    connect_fully(w, sent)
    assert w.service_call_id is None
    assert not local(w, "call.answered") and not local(w, "sideband.failed")
    w.disconnect()
    seam.wait_idle(w)
    assert not local(w, "call.hung_up") and not local(w, "call.hangup_failed")


@pytest.fixture
def rig_plain():
    from tests.helpers.page import Service, widget_on

    w, sent = widget_on(Service())
    yield w, sent
    w.close()


# -- hang-up ------------------------------------------------------------------------------


def test_disconnect_hangs_up_on_the_worker_thread() -> None:
    service = CallControlService()
    w, sent = on_service(service, sideband=False)
    try:
        connect_fully(w, sent)
        w.disconnect()
        seam.wait_idle(w)
        assert service.hangups() == [f"/v1/realtime/calls/{CALL_ID}/hangup"]
        assert local(w, "call.hung_up") == [
            {"type": "call.hung_up", "service_call_id": CALL_ID, "reason": "disconnect"}
        ]
        w.disconnect()  # once only
        seam.wait_idle(w)
        assert len(service.hangups()) == 1
    finally:
        w.close()


def test_a_failed_hang_up_is_logged_never_raised() -> None:
    service = CallControlService(hangup_status=500)
    w, sent = on_service(service, sideband=False)
    try:
        connect_fully(w, sent)
        w.disconnect()  # no exception
        seam.wait_idle(w)
        failed = local(w, "call.hangup_failed")
        assert len(failed) == 1 and failed[0]["reason"] == "disconnect"
        assert "HTTP 500" in failed[0]["error"] and SENTINEL_KEY not in json.dumps(failed)
        assert w.status == "disconnected" and w.error == ""
    finally:
        w.close()


def test_the_kernel_exit_hangs_up_synchronously() -> None:
    service = CallControlService()
    w, sent = on_service(service, sideband=False)
    try:
        connect_fully(w, sent)
        CC._hang_up_at_exit()  # the atexit hook: every live widget's call
        assert service.hangups() == [f"/v1/realtime/calls/{CALL_ID}/hangup"]
        assert local(w, "call.hung_up")[0]["reason"] == "kernel_exit"
    finally:
        w.close()
    assert len(service.hangups()) == 1  # close() found it hung up already


def test_close_hangs_up_before_the_worker_stops() -> None:
    service = CallControlService()
    w, sent = on_service(service, sideband=False)
    connect_fully(w, sent)
    w.close()
    assert len(service.hangups()) == 1


def test_a_page_that_ends_the_call_gets_it_hung_up_at_the_service() -> None:
    service = CallControlService()
    w, sent = on_service(service, sideband=False)
    try:
        call = connect_fully(w, sent)
        browser(w, kind="state", call=call, state="disconnected", detail="")
        seam.wait_idle(w)
        assert local(w, "call.hung_up")[0]["reason"] == "call_ended"
    finally:
        w.close()


def test_the_auth_fallback_is_logged_and_kept() -> None:
    service = CallControlService(basic_only=True)
    w, sent = on_service(service, sideband=False)
    try:
        connect_fully(w, sent)
        assert local(w, "auth.fallback") == [
            {
                "type": "auth.fallback",
                "refused": "Bearer",
                "used": "Basic",
                "path": "/v1/realtime/ice-servers",
            }
        ]
        assert local(w, "call.answered")[0]["auth_scheme"] == "Basic"
        w.disconnect()
        seam.wait_idle(w)
        assert local(w, "call.hung_up")  # the hang-up used the scheme that worked
        assert service.requests[-1].headers["authorization"].startswith("Basic ")
    finally:
        w.close()


# -- the page watch -----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeCells(Cells):
    def __init__(self, running: bool = False) -> None:
        super().__init__()
        self.is_running = running

    def running(self) -> bool:
        return self.is_running


def watch_with(cells: Cells, mid_cell: bool | None = None) -> tuple[PageWatch, Clock, list[int]]:
    clock, gone = Clock(), []
    watch = PageWatch(
        lambda: gone.append(1),
        cells=cells,
        mid_cell=lambda: mid_cell,
        grace_s=5.0,
        tick_s=0.5,
        clock=clock,
    )
    watch.arm("page-a", None)
    return watch, clock, gone


def run_for(watch: PageWatch, clock: Clock, seconds: float, heard_every: float | None = None):
    t = 0.0
    while t < seconds - 1e-9:
        clock.now += watch.tick_s
        t += watch.tick_s
        if heard_every is not None and abs(t / heard_every - round(t / heard_every)) < 1e-9:
            watch.heard("page-a")
        watch.tick()


def test_a_silent_page_is_given_up_after_the_grace_period() -> None:
    watch, clock, gone = watch_with(FakeCells())
    run_for(watch, clock, 4.5)
    assert not gone
    run_for(watch, clock, 0.5)
    assert gone == [1] and watch.page is None  # once: the watch stops


def test_a_reporting_page_is_never_given_up_and_other_pages_do_not_count() -> None:
    watch, clock, gone = watch_with(FakeCells())
    run_for(watch, clock, 60, heard_every=1.0)  # stats, every second
    assert not gone
    for _ in range(12):  # another page showing the widget is not the one holding the call
        clock.now += 0.5
        watch.heard("page-b")
        watch.tick()
    assert gone == [1]


def test_a_long_await_in_marimo_never_hangs_up_a_live_call() -> None:
    # marimo: a cell runs (awaiting a reply over the sideband), and the page's messages wait
    # for it to end; the loop keeps ticking on time. The page looks silent; it is not gone.
    cells = FakeCells(running=True)
    watch, clock, gone = watch_with(cells, mid_cell=False)
    run_for(watch, clock, 120)
    assert not gone and watch.silent_s == 0
    # the cell ends, its held messages arrive: the page is alive
    cells.is_running = False
    clock.now += 0.01
    watch.heard("page-a")
    run_for(watch, clock, 3, heard_every=1.0)
    assert not gone
    # ... and a page that really went away is given up after the grace period, counted from the
    # end of the cell
    cells.is_running = False
    run_for(watch, clock, 5.5)
    assert gone == [1]


def test_an_unknown_host_counts_no_silence_while_a_cell_runs() -> None:
    watch, clock, gone = watch_with(FakeCells(running=True), mid_cell=None)
    run_for(watch, clock, 30)
    assert not gone


def test_where_messages_arrive_mid_cell_the_silence_counts_in_a_cell_too() -> None:
    watch, clock, gone = watch_with(FakeCells(running=True), mid_cell=True)
    run_for(watch, clock, 5)
    assert gone == [1]


def test_a_blocked_loop_is_not_silence() -> None:
    watch, clock, gone = watch_with(FakeCells())
    clock.now += 30  # a cell computed for 30 s: nothing could be heard
    watch.tick()
    assert not gone
    run_for(watch, clock, 4.5)
    assert not gone


def test_marimo_cells_are_seen_through_its_execution_context(monkeypatch) -> None:
    class Ctx:
        execution_context: object | None = None

    ctx = Ctx()

    class Mod:
        @staticmethod
        def get_context() -> Ctx:
            return ctx

    monkeypatch.setitem(sys.modules, "marimo._runtime.context", Mod)
    cells = Cells()
    assert not cells.running()
    ctx.execution_context = object()
    assert cells.running()


def test_the_widget_hangs_up_when_its_page_is_gone() -> None:
    service = CallControlService()
    w, sent = on_service(service, sideband=False)
    try:
        clock = Clock()
        seam.control(w).watch._clock = clock
        seam.control(w).watch._cells = FakeCells()
        call = connect_fully(w, sent)  # the page "" holds it
        assert seam.control(w).watch.page == ""
        browser(w, **records(call, ("local", {"type": "stats"})))
        for _ in range(10):
            clock.now += 0.5
            seam.control(w).watch.tick()
        seam.wait_idle(w)
        assert w.status == "disconnected"
        assert local(w, "page.gone")[0]["silent_s"] == 5.0
        assert local(w, "call.hung_up")[0]["reason"] == "page_gone"
        assert len(service.hangups()) == 1
    finally:
        w.close()


# -- a call no page takes up (a notebook executed with no front end) ------------------------


@pytest.fixture
def no_page(monkeypatch):
    """A widget whose view no page shows: nothing answers its connect or its probes."""
    monkeypatch.setattr(_delivery, "PROBE_TIMEOUT_S", 0.2)
    w, _ = on_service(CallControlService(), sideband=False)
    yield w
    w.close()


async def test_an_awaited_call_no_page_takes_up_fails_in_words_naming_realtime_session(
    no_page, monkeypatch
) -> None:
    w = no_page
    monkeypatch.setattr(_delivery, "ipykernel_version", lambda: (7, 4, 0))  # delivers mid-cell
    w.connect()
    assert w.status == "connecting"
    with pytest.raises(NoPageError, match="RealtimeSession") as err:
        await w.ready(timeout=30)
    assert isinstance(err.value, MidCellDeliveryError)  # what hosts that hold messages raise
    assert "ipykernel" not in str(err.value)  # not the kernel's fault
    # the call failed in the same words, at once (no 5 s watch to wait for)
    assert w.status == "failed" and w.error == str(err.value) == NO_PAGE_WORDS
    assert local(w, "call.failed")[-1]["detail"] == NO_PAGE_WORDS
    assert seam.control(w).nobody.page is None


async def test_on_an_older_kernel_an_unanswered_probe_proves_nothing(no_page, monkeypatch) -> None:
    w = no_page
    monkeypatch.setattr(_delivery, "ipykernel_version", lambda: (7, 3, 0))
    w.connect()
    with pytest.raises(MidCellDeliveryError) as err:
        await w.ready(timeout=30)
    assert not isinstance(err.value, NoPageError)
    words = str(err.value)
    assert "ipykernel >= 7.4" in words and "RealtimeSession" in words  # both ways out
    assert w.status == "connecting"  # a page may yet take it up, between cells


@pytest.mark.parametrize(("version", "gives_up"), [((7, 4, 0), True), ((7, 3, 0), False)])
async def test_the_no_page_watch_counts_an_awaiting_cell_where_a_page_could_be_heard(
    no_page, monkeypatch, version, gives_up
) -> None:
    w = no_page
    monkeypatch.setattr(_delivery, "ipykernel_version", lambda: version)
    clock = Clock()
    nobody = seam.control(w).nobody
    nobody._clock, nobody._cells = clock, FakeCells(running=True)  # a cell awaits
    w.connect()
    assert nobody.page == ""
    for _ in range(10):
        clock.now += 0.5
        nobody.tick()
    if gives_up:
        assert w.status == "failed" and w.error == NO_PAGE_WORDS
    else:  # the host may be holding the page's messages until the cell ends
        assert w.status == "connecting" and nobody.silent_s == 0


# -- the sideband -------------------------------------------------------------------------


@pytest.fixture
def fake_sidebands(monkeypatch):
    FakeSideband.made = []
    monkeypatch.setattr(CC, "Sideband", FakeSideband)
    return FakeSideband.made


async def live_with_sideband(
    fake_sidebands: list[FakeSideband], **kwargs: Any
) -> tuple[RealtimeWidget, list[dict], FakeSideband, int]:
    service = CallControlService()
    w, sent = on_service(service, **kwargs)
    w.connect()
    await asyncio.to_thread(seam.wait_idle, w)
    await settle()
    call = sent[-1]["call"]
    browser(w, kind="offer", call=call, sdp="v=0\r\n")
    await asyncio.to_thread(seam.wait_idle, w)
    await settle()
    browser(w, kind="state", call=call, state="connected", detail="")
    await settle()
    return w, sent, fake_sidebands[-1], call


async def test_the_sideband_opens_with_the_call_id_and_the_scheme_that_worked(
    fake_sidebands,
) -> None:
    w, _, sb, _ = await live_with_sideband(fake_sidebands)
    try:
        assert sb.url == f"ws://127.0.0.1:8/v1/realtime?call_id={CALL_ID}"
        assert sb.headers == {"Authorization": f"Bearer {SENTINEL_KEY}"}
        assert w.sideband and w.host_info["sideband"] is True
        assert local(w, "sideband.open") == [{"type": "sideband.open", "reason": ""}]
        assert SENTINEL_KEY not in repr(seam.control(w).sideband)
    finally:
        w.close()
    await settle()  # the close runs on the loop
    assert sb.closed and w.host_info["sideband"] is False


async def test_sideband_events_resolve_waiters_and_each_is_logged_once(fake_sidebands) -> None:
    w, _, sb, call = await live_with_sideband(fake_sidebands)
    try:
        heard: list[str] = []
        w.on("response.done", lambda ev: heard.append(ev["event_id"]))
        waiter = w.wait_for("response.done")
        done = {"type": "response.done", "event_id": "ev_9", "response": {"id": "r1"}}
        sb.deliver(done, t_ms=1_700_000_000_500.0)
        assert await waiter == done  # no page message needed, no probe
        rec = w.events.of_type("response.done")[0]
        assert rec["via"] == "sideband" and rec["t_ms"] == rec["t_sideband_ms"]
        # the page's copy arrives later: it completes the record, nothing is heard twice
        page_t = 1_700_000_000_520.0
        browser(w, **records(call, ("server", done), t0=page_t))
        recs = w.events.of_type("response.done")
        assert len(recs) == 1 and recs[0]["via"] == "both"
        assert recs[0]["t_ms"] == page_t and recs[0]["t_sideband_ms"] == 1_700_000_000_500.0
        assert heard == ["ev_9"]
        # the page first, then the sideband: one record, both clocks
        created = {"type": "response.created", "event_id": "ev_10", "response": {"id": "r2"}}
        browser(w, **records(call, ("server", created), t0=page_t + 100))
        sb.deliver(created, t_ms=1_700_000_000_700.0)
        recs = w.events.of_type("response.created")
        assert len(recs) == 1 and recs[0]["via"] == "both"
        assert recs[0]["t_ms"] == page_t + 100 and recs[0]["t_sideband_ms"] == 1_700_000_000_700.0
        # an event only the sideband saw stays marked so
        sb.deliver({"type": "response.output_text.delta", "event_id": "ev_11", "delta": "x"})
        only = w.events.of_type("response.output_text.delta")
        assert len(only) == 1 and only[0]["via"] == "sideband"
    finally:
        w.close()


async def test_one_cell_ask_needs_no_page_with_the_sideband(fake_sidebands) -> None:
    w, sent, sb, _ = await live_with_sideband(fake_sidebands)
    try:
        seam.delivery(w).mid_cell = False  # as marimo: the page's messages never reach a cell
        reply = w.ask("Which dishes are vegetarian?")
        await settle()
        create = sb.sent[-1]
        ask_id = create["response"]["metadata"]["rtw_ask"]
        for ev in (
            {"type": "response.created", "event_id": "e1", "response": {"id": "r1", "metadata": {"rtw_ask": ask_id}}},
            {"type": "response.output_text.delta", "event_id": "e2", "response_id": "r1", "delta": "The curry"},
            {"type": "response.done", "event_id": "e3", "response": {"id": "r1", "status": "completed"}},
        ):  # fmt: skip
            sb.deliver(ev)
        result = await asyncio.wait_for(reply.wait(), 2)
        assert result.text == "The curry" and result.status == "completed"
        # the question went on the sideband, not through the page; the page was shown it
        assert [e["type"] for e in sb.sent[-2:]] == ["conversation.item.create", "response.create"]
        assert not [m for m in sent if m["kind"] == "send"]
        shown = [m for m in sent if m["kind"] == "shown"]
        assert shown and shown[-1]["events"] == sb.sent[-2:]
        client = w.events.of_type("conversation.item.create", direction="client")
        assert len(client) == 1 and client[0]["via"] == "sideband"
        # a spoken ask still needs the page (its clip starts and ends there)
        from realtime_widget._delivery import MidCellDeliveryError

        with pytest.raises(MidCellDeliveryError):
            await seam.delivery(w).ensure()
    finally:
        w.close()


async def test_the_tool_loop_answers_over_the_sideband(fake_sidebands) -> None:
    w, sent, sb, _ = await live_with_sideband(fake_sidebands)
    try:

        @w.tool
        def get_weather(city: str) -> dict:
            """The weather in a city."""
            return {"city": city, "sky": "clear"}

        await settle()
        sb.sent.clear()
        item = {"type": "function_call", "id": "fc1", "call_id": "call_7", "name": "get_weather",
                "arguments": '{"city": "Paris"}'}  # fmt: skip
        sb.deliver({"type": "response.created", "event_id": "t1", "response": {"id": "r1"}})
        sb.deliver(
            {
                "type": "response.output_item.done",
                "event_id": "t2",
                "response_id": "r1",
                "item": item,
            }
        )
        sb.deliver({"type": "response.done", "event_id": "t3", "response": {"id": "r1"}})  # fmt: skip
        for _ in range(100):
            await asyncio.sleep(0.01)
            if any(e["type"] == "response.create" for e in sb.sent):
                break
        outputs = [e for e in sb.sent if e["type"] == "conversation.item.create"]
        assert outputs and outputs[0]["item"]["call_id"] == "call_7"
        assert json.loads(outputs[0]["item"]["output"]) == {"city": "Paris", "sky": "clear"}
        assert [e["type"] for e in sb.sent] == ["conversation.item.create", "response.create"]
        assert not [m for m in sent if m["kind"] == "send"]
    finally:
        w.close()


async def test_a_refused_sideband_falls_back_to_the_data_channel(
    fake_sidebands, monkeypatch
) -> None:
    real = FakeSideband.__init__

    def refused(self: FakeSideband, *a: Any, **k: Any) -> None:
        real(self, *a, **k)
        self.refuse = "refused at the handshake: HTTP 404"

    monkeypatch.setattr(FakeSideband, "__init__", refused)
    w, sent, _, _ = await live_with_sideband(fake_sidebands)
    try:
        assert local(w, "sideband.failed") == [
            {"type": "sideband.failed", "reason": "refused at the handshake: HTTP 404"}
        ]
        assert w.error == "" and not w.sideband  # "auto": logged, not shown
        w.send_text("Hello")
        assert sent[-1]["kind"] == "send"  # through the page, as without a sideband
    finally:
        w.close()


async def test_sideband_true_shows_a_failure_in_error(fake_sidebands, monkeypatch) -> None:
    real = FakeSideband.__init__

    def refused(self: FakeSideband, *a: Any, **k: Any) -> None:
        real(self, *a, **k)
        self.refuse = "closed early (code 1011)"

    monkeypatch.setattr(FakeSideband, "__init__", refused)
    w, _, _, _ = await live_with_sideband(fake_sidebands, sideband=True)
    try:
        assert "sideband failed (closed early (code 1011))" in w.error
        assert w.status == "connected"  # the call goes on
    finally:
        w.close()


async def test_a_drop_hands_unsent_events_to_the_page_logged_once(fake_sidebands) -> None:
    w, sent, sb, call = await live_with_sideband(fake_sidebands)
    try:
        w.send_text("First")
        # the next one is accepted but never written: the sideband then fails for good
        sb.queued = [sb.sent.pop(), sb.sent.pop()][::-1]
        sb._report("reconnecting", "dropped (code 1011)")
        sb._report("failed", "dropped again after a reconnect (code 1011)")
        assert local(w, "sideband.reconnecting") and local(w, "sideband.failed")
        assert (
            sent[-1]["kind"] == "send"
            and sent[-1]["events"][0]["item"]["content"][0]["text"] == "First"
        )
        # the page sends them and logs them: those records complete the kernel's, not repeat
        page_t = 1_700_000_001_000.0
        browser(w, **records(call, *[("client", e) for e in sent[-1]["events"]], t0=page_t))
        creates = w.events.of_type("conversation.item.create", direction="client")
        assert len(creates) == 1 and creates[0]["via"] == "page" and creates[0]["t_ms"] == page_t
        assert not w.sideband
        w.send_text("Second")
        assert sent[-1]["kind"] == "send"
    finally:
        w.close()


async def test_a_service_closing_the_sideband_ended_the_call(fake_sidebands) -> None:
    service = CallControlService()
    w, _ = on_service(service)
    FakeSideband.made = fake_sidebands
    try:
        w.connect()
        await asyncio.to_thread(seam.wait_idle, w)
        await settle()
        browser(w, kind="offer", call=1, sdp="v=0\r\n")
        await asyncio.to_thread(seam.wait_idle, w)
        await settle()
        browser(w, kind="state", call=1, state="connected", detail="")
        fake_sidebands[-1]._report("closed", "call ended")
        w.disconnect()
        await asyncio.to_thread(seam.wait_idle, w)
        assert service.hangups() == []  # the service ended it already
        assert local(w, "sideband.closed") == [{"type": "sideband.closed", "reason": "call ended"}]
    finally:
        w.close()


async def test_without_websockets_auto_logs_the_extra_once(monkeypatch) -> None:
    def missing(*_a: Any, **_k: Any) -> Any:
        raise SidebandUnavailable(NEEDS_EXTRA)

    monkeypatch.setattr(CC, "Sideband", missing)
    service = CallControlService()
    w, _ = on_service(service)
    try:
        for call in (1, 2):
            w.connect()
            await asyncio.to_thread(seam.wait_idle, w)
            await settle()
            browser(w, kind="offer", call=call, sdp="v=0\r\n")
            await asyncio.to_thread(seam.wait_idle, w)
            await settle()
            w.disconnect()
        failed = local(w, "sideband.failed")
        assert len(failed) == 1 and "realtime-widget[sideband]" in failed[0]["reason"]
    finally:
        w.close()


def test_sideband_true_without_websockets_raises_at_construction(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "websockets.asyncio.client", None)
    with pytest.raises(SidebandUnavailable, match=r"realtime-widget\[sideband\]"):
        RealtimeWidget(api_key="k", sideband=True)
    with pytest.raises(ValueError, match="sideband must be 'auto', True or False"):
        RealtimeWidget(api_key="k", sideband="yes")


async def test_the_key_is_nowhere_new(fake_sidebands, tmp_path: Path) -> None:
    w, sent, sb, _ = await live_with_sideband(fake_sidebands, log_path=tmp_path / "s.jsonl")
    try:
        w.send_text("Hi")
        sb.deliver({"type": "response.done", "event_id": "k1", "response": {"id": "r"}})
        w.disconnect()
        await asyncio.to_thread(seam.wait_idle, w)
        await settle()
        assert sb.headers["Authorization"].endswith(SENTINEL_KEY)  # where it must be, only
        texts = {
            "messages to the page": json.dumps(sent),
            "log file": (tmp_path / "s.jsonl").read_text(),
            "log": json.dumps(list(w.events)),
            "state": json.dumps(w.get_state(), default=str),
            "reprs": repr(w) + repr(seam.control(w).sideband) + repr(seam.provider(w)),
            "error": w.error,
        }
        for where, text in texts.items():
            assert SENTINEL_KEY not in text, where
        assert len(EventLog.read_jsonl(tmp_path / "s.jsonl")) == len(w.events)
    finally:
        w.close()


# -- the log's order across the two paths ---------------------------------------------------


def page_batch(call: int, seq0: int, *events: dict[str, Any], t0: float) -> dict[str, Any]:
    """The page's ``events`` message: its records numbered on from ``seq0``."""
    return {
        "kind": "events",
        "call": call,
        "records": [
            {"seq": seq0 + i, "dir": "server", "t_ms": t0 + i, "event": ev}
            for i, ev in enumerate(events)
        ],
    }


def delta(n: int) -> dict[str, Any]:
    return {"type": "response.output_text.delta", "event_id": f"d{n}", "delta": f"w{n} "}


def server_order(w: RealtimeWidget) -> list[tuple[str, str | None]]:
    return [(r["event"]["event_id"], r.get("via")) for r in w.events if r["direction"] == "server"]


async def test_a_sideband_opened_mid_response_keeps_the_services_order(fake_sidebands) -> None:
    """The page carried d1 and d2 before the sideband opened, and is behind: the sideband's d3
    and d4 wait for it, so the log reads d1..d5 and each event is heard once."""
    w, _, sb, call = await live_with_sideband(fake_sidebands)
    try:
        heard: list[str] = []
        w.on("response.output_text.delta", lambda ev: heard.append(ev["event_id"]))
        browser(w, **page_batch(call, 0, delta(1), t0=1_700_000_000_100.0))
        sb.on_state("open", "reconnected")  # (re)opened: what it sends now waits for the page
        sb.deliver(delta(3), t_ms=1_700_000_000_300.0)
        sb.deliver(delta(4), t_ms=1_700_000_000_310.0)
        assert server_order(w) == [("d1", "page")]  # held: the page is behind
        browser(
            w, **page_batch(call, 1, delta(2), delta(3), delta(4), delta(5), t0=1_700_000_000_400.0)
        )
        assert server_order(w) == [
            ("d1", "page"), ("d2", "page"), ("d3", "both"), ("d4", "both"), ("d5", "page"),
        ]  # fmt: skip
        d4 = w.events.of_type("response.output_text.delta")[3]
        assert d4["t_sideband_ms"] == 1_700_000_000_310.0 and d4["t_ms"] == 1_700_000_000_402.0
        assert heard == ["d1", "d2", "d3", "d4", "d5"]
        # in step now: the sideband's next event goes in at once
        sb.deliver(delta(6), t_ms=1_700_000_000_500.0)
        assert server_order(w)[-1] == ("d6", "sideband") and heard[-1] == "d6"
    finally:
        w.close()


async def test_held_events_go_in_when_the_page_never_catches_up(fake_sidebands) -> None:
    """As on marimo during a cell: no page message comes, so the held events go in, in order,
    once the hold is over, and a waiter on them resolves."""
    from realtime_widget._inbox import SIDEBAND_HOLD_MS

    w, _, sb, _call = await live_with_sideband(fake_sidebands)
    try:
        waiter = w.wait_for("response.done", timeout=5)
        sb.deliver(delta(1))
        sb.deliver({"type": "response.done", "event_id": "e9", "response": {"id": "r1"}})
        assert server_order(w) == []
        await asyncio.sleep(SIDEBAND_HOLD_MS / 1000 + 0.05)
        assert server_order(w) == [("d1", "sideband"), ("e9", "sideband")]
        assert (await waiter)["event_id"] == "e9"
    finally:
        w.close()


async def test_a_page_ahead_of_the_sideband_ends_the_hold_at_once(fake_sidebands) -> None:
    w, _, sb, call = await live_with_sideband(fake_sidebands)
    try:
        await asyncio.sleep(0.3)  # the first open's hold is over
        sb.on_state("open", "reconnected")
        browser(w, **page_batch(call, 0, delta(1), delta(2), t0=1_700_000_000_100.0))
        sb.deliver(delta(1), t_ms=1_700_000_000_200.0)  # the page had it: nothing older to wait for
        sb.deliver(delta(3), t_ms=1_700_000_000_210.0)
        assert server_order(w) == [("d1", "both"), ("d2", "page"), ("d3", "sideband")]
    finally:
        w.close()


async def test_an_event_the_page_lost_goes_in_before_the_one_it_caught_up_with(
    fake_sidebands,
) -> None:
    w, _, sb, call = await live_with_sideband(fake_sidebands)
    try:
        sb.deliver(delta(1), t_ms=1_700_000_000_100.0)
        sb.deliver(delta(2), t_ms=1_700_000_000_110.0)
        browser(w, **page_batch(call, 0, delta(2), t0=1_700_000_000_200.0))  # d1 never came
        assert server_order(w) == [("d1", "sideband"), ("d2", "both")]
    finally:
        w.close()


async def test_a_reopen_during_a_hold_keeps_what_it_held_waiting(fake_sidebands) -> None:
    """The sideband drops and reopens while its first events wait: they go on waiting, in
    order, for the page that is still behind."""
    w, _, sb, call = await live_with_sideband(fake_sidebands)
    try:
        browser(w, **page_batch(call, 0, delta(1), t0=1_700_000_000_100.0))
        sb.on_state("open", "reconnected")
        sb.deliver(delta(3), t_ms=1_700_000_000_300.0)
        sb.on_state("reconnecting", "dropped")
        sb.on_state("open", "reconnected")
        sb.deliver(delta(4), t_ms=1_700_000_000_320.0)
        assert server_order(w) == [("d1", "page")]
        browser(w, **page_batch(call, 1, delta(2), delta(3), delta(4), t0=1_700_000_000_400.0))
        assert [e for e, _ in server_order(w)] == ["d1", "d2", "d3", "d4"]
    finally:
        w.close()


async def test_what_the_sideband_holds_goes_in_before_the_kernels_next_client_event(
    fake_sidebands,
) -> None:
    w, _, sb, _call = await live_with_sideband(fake_sidebands)
    try:
        sb.deliver(delta(1), t_ms=1_700_000_000_300.0)  # held: the first events after the open
        w.send_text("And dessert?")  # on the sideband, logged by the kernel
        types = [(r["direction"], r["event"]["type"]) for r in w.events][-3:]
        assert types == [
            ("server", "response.output_text.delta"),
            ("client", "conversation.item.create"),
            ("client", "response.create"),
        ]
    finally:
        w.close()
