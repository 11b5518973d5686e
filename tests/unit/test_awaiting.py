"""Awaiting in one cell: ask / wait_for / ready, the host probe, and the clear error where the
page's messages cannot reach an awaiting cell. The page answers on another thread, as comm
handlers on a kernel subshell do."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from realtime_widget import _delivery
from realtime_widget._delivery import MidCellDeliveryError
from realtime_widget._pending import Pending
from tests.conftest import pretend_live
from tests.helpers import seam
from tests.helpers.fake_page import FakePage, wait_until
from tests.helpers.page import Service, widget_on


@pytest.fixture
def w():
    widget, _ = widget_on(Service())
    yield widget
    widget.close()


@pytest.fixture
def fast_probe(monkeypatch):
    monkeypatch.setattr(_delivery, "PROBE_TIMEOUT_S", 0.2)


async def test_ask_is_awaited_in_one_cell_with_messages_on_another_thread(w) -> None:
    page = FakePage(w, threaded=True, reply_text="Sunny and warm")
    pretend_live(w)
    main = threading.get_ident()
    reply = await w.ask("What's the weather?")
    assert reply.text == "Sunny and warm" == reply.transcript
    assert reply.status == "completed" and reply.response_id == "resp_1"
    # the turn's felt latency, from the widget's own tracker: response.create -> first delta
    created = next(r for r in w.events.of_type("response.create"))
    first = next(r for r in w.events.of_type("response.output_audio_transcript.delta"))
    assert reply.latency_ms == pytest.approx(first["t_ms"] - created["t_ms"])
    assert reply.events[0]["type"] == "response.created"
    assert reply.events[-1]["type"] == "response.done"
    # the typed question carried its ask id, so the reply was matched by it
    sent = page.sent[-1]["events"]
    assert sent[0]["item"]["content"][0]["text"] == "What's the weather?"
    assert sent[1]["response"]["metadata"] == {"rtw_ask": reply.ask_id}
    # the probe found mid-cell delivery and buffers both ways, and said so
    assert w.host_info["mid_cell"] is True
    assert w.host_info["buffers_to_browser"] is True and w.host_info["buffers_to_kernel"] is True
    assert w.host_info["round_trip_ms"] >= 0
    result = w.events.of_type("probe.result")[-1]["event"]
    assert result["mid_cell"] is True and result["buffers"] == {
        "to_browser": True,
        "to_kernel": True,
    }
    assert threading.get_ident() == main


def test_a_reply_fills_in_for_the_next_cell_without_await(w) -> None:
    FakePage(w, reply_text="Hello there")
    pretend_live(w)
    r = w.ask("Hi")
    # the page's messages arrive between cells: nothing awaited, the handle is complete
    assert r.done and r.text == "Hello there" and r.status == "completed"
    assert r.latency_ms is not None
    assert "completed" in repr(r) and "Hello there" in repr(r)


async def test_awaiting_where_messages_cannot_arrive_raises_words_not_a_hang(w, fast_probe) -> None:
    page = FakePage(w, answer_probes=False)
    pretend_live(w)
    r = w.ask("Anyone?")
    started = time.monotonic()
    with pytest.raises(MidCellDeliveryError) as err:
        await r
    assert time.monotonic() - started < 2
    words = str(err.value)
    for part in ("ipykernel >= 7.4", "commsOverSubshells", "JupyterLab >= 4.4", "next"):
        assert part in words, part
    assert w.host_info["mid_cell"] is None  # not proven yet: the page may just be slow
    # the page's answer comes only after the cell gave up: now it is known, and the next
    # await fails at once, without another probe
    page.deliver(page.held_probes[-1], [])
    assert w.host_info["mid_cell"] is False
    probes = len(page.binary)
    with pytest.raises(MidCellDeliveryError):
        await w.wait_for("response.done")
    assert len(page.binary) == probes
    # and the next-cell path still works: the handle fills in when the reply arrives
    page.reply_text = "Yes"
    page.serve(w.call_number, page.sent[-1]["events"])
    assert r.done and r.text == "Yes"


async def test_kernels_before_ipykernel_7_fail_at_once(w, monkeypatch) -> None:
    page = FakePage(w)
    pretend_live(w)
    monkeypatch.setattr(_delivery, "ipykernel_version", lambda: (6, 29, 5))
    with pytest.raises(MidCellDeliveryError, match=r"ipykernel 6\.29\.5"):
        await w.wait_for("session.updated")
    assert page.binary == [] and w.host_info["mid_cell"] is False


async def test_wait_for_takes_the_next_matching_event(w) -> None:
    page = FakePage(w, threaded=True)
    pretend_live(w)
    waiter = w.wait_for("response.done", where=lambda ev: ev["response"]["status"] == "failed")
    page.records(
        1,
        ("server", {"type": "response.done", "response": {"id": "a", "status": "completed"}}),
        ("server", {"type": "response.created", "response": {"id": "b"}}),
        ("server", {"type": "response.done", "response": {"id": "b", "status": "failed"}}),
    )
    event = await waiter
    assert event["response"]["id"] == "b"
    assert waiter.event == event  # and it stays on the handle
    with pytest.raises(TimeoutError, match=r"no 'error' server event arrived within 0\.1 s"):
        await w.wait_for("error", timeout=0.1)


async def test_a_failing_where_reaches_the_awaiter(w) -> None:
    page = FakePage(w, threaded=True)
    pretend_live(w)
    waiter = w.wait_for("*", where=lambda ev: ev["missing"])
    page.records(1, ("server", {"type": "x"}))
    with pytest.raises(KeyError):
        await waiter


async def test_ready_resolves_on_the_calls_first_session_updated(w) -> None:
    page = FakePage(w, threaded=True)
    with pytest.raises(RuntimeError, match="connect"):
        w.ready()
    pretend_live(w)
    handle = w.ready(timeout=2)
    page.records(1, ("server", {"type": "session.updated", "session": {"voice": "Clive"}}))
    assert await handle == {"voice": "Clive"}
    # already ready: at once, no waiting
    assert await w.ready() == {"voice": "Clive"}


async def test_a_call_that_ends_fails_what_waits_on_it(w) -> None:
    FakePage(w, threaded=True)
    pretend_live(w)
    r = w.ask("Still there?")
    waiter = w.wait_for("response.done")

    def hang_up() -> None:
        time.sleep(0.05)
        seam.signalling(w).fail(1, "The peer connection failed.")

    threading.Thread(target=hang_up).start()
    with pytest.raises(ConnectionError, match="peer connection failed"):
        await r
    assert r.error and "peer connection failed" in r.error
    with pytest.raises(ConnectionError):
        await waiter


def test_ask_needs_a_call_and_a_question(w) -> None:
    FakePage(w)
    with pytest.raises(RuntimeError, match="connect"):
        w.ask("hi")
    pretend_live(w)
    with pytest.raises(TypeError, match="one question"):
        w.ask()
    with pytest.raises(ValueError, match="non-empty"):
        w.ask("  ")


async def test_pending_wakes_its_awaiters_from_any_thread() -> None:
    class Thing(Pending):
        pass

    thing = Thing(None)
    loop = asyncio.get_running_loop()
    woke_on: list[int] = []

    async def waiter() -> None:
        await thing.wait(2)
        woke_on.append(threading.get_ident())

    tasks = [asyncio.create_task(waiter()) for _ in range(3)]
    await asyncio.sleep(0.01)
    t = threading.Thread(target=thing._finish)
    t.start()
    t.join()
    await asyncio.gather(*tasks)
    assert woke_on == [threading.get_ident()] * 3  # resolved on the loop's own thread
    assert loop.is_running() and thing.done
    assert await thing is thing  # finished: at once


def test_replies_are_matched_by_order_when_the_service_drops_metadata(w) -> None:
    page = FakePage(w)
    pretend_live(w)
    r = w.ask("One")
    events = page.sent[-1]["events"]
    page.records(
        1,
        *[("client", ev) for ev in events],
        ("server", {"type": "response.created", "response": {"id": "r9"}}),
        ("server", {"type": "response.output_text.delta", "response_id": "r9", "delta": "Uno"}),
        ("server", {"type": "response.done", "response": {"id": "r9", "status": "completed"}}),
    )
    wait_until(lambda: r.done)
    assert r.response_id == "r9" and r.text == "Uno" and r.transcript == ""
