"""The widget's kernel half, driven by a scripted browser (custom messages) and a mock service."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from realtime_widget import RealtimeWidget
from tests.conftest import SENTINEL_KEY
from tests.helpers import seam
from tests.helpers.page import ANSWER, TURN, Service, browser, connect_fully, records, widget_on


@pytest.fixture
def rig():
    service = Service()
    w, sent = widget_on(service)
    yield w, service, sent
    w.close()


def test_connect_is_non_blocking_and_signals_in_order(rig) -> None:
    w, service, sent = rig
    w.send_event({"type": "response.create"})  # before connect: queued, sent after session.update
    w.connect()
    assert w.status == "connecting"
    seam.wait_idle(w)
    connect = sent[0]
    assert connect["kind"] == "connect" and connect["call"] == 1
    assert connect["session_update"] == {"type": "session.update", "session": w.session_config()}
    assert connect["queued"] == [{"type": "response.create"}]
    assert connect["ice_servers"][1] == TURN
    browser(w, kind="offer", call=1, sdp="v=0\r\noffer")
    seam.wait_idle(w)
    assert sent[1] == {"kind": "answer", "call": 1, "page": "", "sdp": ANSWER}
    assert service.requests[1].content == b"v=0\r\noffer"
    browser(w, kind="state", call=1, state="connected", detail="")
    assert w.status == "connected" and w.error == ""


def test_turn_credentials_never_enter_widget_state(rig) -> None:
    w, _, sent = rig
    connect_fully(w, sent)
    state = json.dumps(w.get_state(), default=str)
    for secret in (SENTINEL_KEY, TURN["username"], TURN["credential"]):
        assert secret not in state
        assert secret not in repr(w)
    assert "turn-cred-88" in json.dumps(sent[0])  # only inside the connect message


@pytest.mark.parametrize(
    ("where", "status", "words"),
    [
        ("ice", 401, "refused the API key"),
        ("calls", 429, "rate-limiting"),
        ("calls", 503, "HTTP 503"),
    ],
)
def test_service_failures_fail_the_call_and_allow_reconnect(rig, where, status, words) -> None:
    w, service, sent = rig
    setattr(service, f"{where}_status", status)
    w.connect()
    seam.wait_idle(w)
    if where == "calls":
        browser(w, kind="offer", call=1, sdp="v=0\r\n")
        seam.wait_idle(w)
        assert sent[-1]["kind"] == "signal_error" and words in sent[-1]["message"]
    assert w.status == "failed" and words in w.error
    assert SENTINEL_KEY not in w.error
    if where == "ice":  # the browser never heard of this call: the kernel logs the failure
        assert w.events.of_type("call.failed")[0]["event"]["detail"] == w.error
    else:  # the browser got signal_error; it logs the failure and reports it back, once
        browser(w, **records(1, ("local", {"type": "call.failed", "detail": sent[-1]["message"]})))
        browser(w, kind="state", call=1, state="failed", detail=sent[-1]["message"])
        assert len(w.events.of_type("call.failed")) == 1 and w.status == "failed"
    # and the widget is ready to try again
    setattr(service, f"{where}_status", 201 if where == "calls" else 200)
    connect_fully(w, sent)
    assert w.status == "connected" and w.error == "" and w.call_number == 2


def test_no_key_fails_with_advice(monkeypatch) -> None:
    w = RealtimeWidget(base_url="http://127.0.0.1:8")
    seam.set_post(w, lambda m: pytest.fail("nothing may be sent without a key"))
    w.connect()
    assert w.status == "failed" and "INWORLD_API_KEY" in w.error and "Emulator" in w.error


def test_events_are_logged_and_dispatched(rig) -> None:
    w, _, sent = rig
    call = connect_fully(w, sent)
    got: list[str] = []
    w.on("response.done", lambda ev: got.append("done:" + ev["response"]["id"]))

    @w.on("*")
    def every(ev: dict) -> None:
        got.append(ev["type"])

    browser(
        w,
        **records(
            call,
            ("client", {"type": "session.update", "session": {"type": "realtime"}}),
            ("server", {"type": "session.updated", "session": {"type": "realtime", "model": "m"}}),
            ("server", {"type": "response.done", "response": {"id": "r1", "status": "completed"}}),
            ("local", {"type": "channel.open"}),
            ("server", {"type": "inworld.unknown.thing", "x": 1}),
        ),
    )
    assert len(w.events) == 5
    assert [r["direction"] for r in w.events] == ["client", "server", "server", "local", "server"]
    assert got == ["session.updated", "done:r1", "response.done", "inworld.unknown.thing"]
    assert w.server_session == {"type": "realtime", "model": "m"}
    assert w.events[0]["t_ms"] == 1_700_000_000_000.0 and w.events[0]["t_kernel_ms"] > 0


def test_a_failing_callback_is_reported_not_fatal(rig) -> None:
    w, _, sent = rig
    call = connect_fully(w, sent)
    w.on("response.done", lambda ev: ev["nope"])
    browser(w, **records(call, ("server", {"type": "response.done", "response": {}})))
    browser(w, **records(call, ("server", {"type": "response.created", "response": {}})))
    assert "KeyError" in w.error and w.status == "connected"
    assert [r["type"] for r in w.events] == ["response.done", "callback.error", "response.created"]


def test_send_text_and_friends(rig) -> None:
    w, _, sent = rig
    call = connect_fully(w, sent)
    sent.clear()
    w.send_text("Hello!")
    w.create_response(instructions="Shout", conversation="none")
    w.cancel_response()  # nothing in flight: nothing to send
    browser(w, **records(call, ("server", {"type": "response.created", "response": {"id": "r1"}})))
    w.cancel_response()
    assert [m["kind"] for m in sent] == ["send"] * 3 and all(m["call"] == call for m in sent)
    assert sent[0]["events"] == [
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hello!"}],
            },
        },
        {"type": "response.create"},
    ]
    assert sent[1]["events"] == [
        {"type": "response.create", "response": {"instructions": "Shout", "conversation": "none"}}
    ]
    assert sent[2]["events"] == [{"type": "response.cancel"}, {"type": "output_audio_buffer.clear"}]
    w.cancel_response("resp_1", clear_audio=False)
    assert sent[3]["events"] == [{"type": "response.cancel", "response_id": "resp_1"}]
    # generation done but its audio still playing: only the audio is cleared
    browser(
        w,
        **records(
            call,
            ("server", {"type": "output_audio_buffer.started", "response_id": "r1"}),
            ("server", {"type": "response.done", "response": {"id": "r1"}}),
        ),
    )
    w.cancel_response()
    assert sent[4]["events"] == [{"type": "output_audio_buffer.clear"}]
    browser(
        w, **records(call, ("server", {"type": "output_audio_buffer.cleared", "response_id": "r1"}))
    )
    w.cancel_response()
    assert len(sent) == 5


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"no": "type"}, ValueError),
        ("response.create", TypeError),
        ({"type": "x", "v": object()}, ValueError),
    ],
)
def test_bad_client_events_are_refused(rig, event, error) -> None:
    w, _, _ = rig
    with pytest.raises(error):
        w.send_event(event)
    with pytest.raises(ValueError, match="non-empty"):
        w.send_text("  ")


def test_view_requests_use_the_python_path(rig) -> None:
    w, _, sent = rig
    browser(w, kind="request", action="connect")
    seam.wait_idle(w)
    assert sent[-1]["kind"] == "connect"
    browser(w, kind="offer", call=1, sdp="v=0\r\n")
    seam.wait_idle(w)
    browser(w, kind="state", call=1, state="connected")
    browser(w, kind="request", action="send_text", text="hi")
    assert sent[-1]["events"][0]["item"]["content"][0]["text"] == "hi"
    browser(w, kind="request", action="disconnect")
    assert sent[-1] == {"kind": "disconnect", "call": 1, "page": ""} and w.status == "disconnected"


def test_stale_messages_from_an_old_call_are_ignored_but_logged(rig) -> None:
    w, _, sent = rig
    connect_fully(w, sent)
    w.disconnect()
    connect_fully(w, sent)
    browser(w, kind="state", call=1, state="failed", detail="old call died")
    assert w.status == "connected" and w.error == ""
    browser(w, **records(1, ("server", {"type": "response.done", "response": {}})))
    assert w.events[-1]["call_number"] == 1


def test_browser_failure_and_mic_warning(rig) -> None:
    w, _, sent = rig
    call = connect_fully(w, sent)
    browser(
        w,
        kind="state",
        call=call,
        state="connected",
        detail="Microphone unavailable (NotAllowedError)",
    )
    assert w.status == "connected" and "Microphone" in w.error
    browser(w, **records(call, ("server", {"type": "session.created"})))
    browser(
        w,
        **records(
            call,
            ("local", {"type": "call.failed", "detail": "The data channel closed unexpectedly"}),
        ),
    )
    browser(
        w, kind="state", call=call, state="failed", detail="The data channel closed unexpectedly"
    )
    assert w.status == "failed" and "data channel" in w.error
    # the log keeps everything, and the failure once (as the browser recorded it)
    assert [r["type"] for r in w.events] == ["session.created", "call.failed"]


def test_disconnect_then_late_connected_state_does_not_revive(rig) -> None:
    w, _, sent = rig
    w.connect()
    seam.wait_idle(w)
    w.disconnect()
    browser(w, kind="state", call=1, state="connected")
    assert w.status == "disconnected"
    assert sent[-1] == {"kind": "disconnect", "call": 1, "page": ""}


def test_log_path_appends_each_batch(rig, tmp_path) -> None:
    path = tmp_path / "s.jsonl"
    w = RealtimeWidget(api_key="k", base_url="http://127.0.0.1:8", log_path=path)
    browser(w, **records(0, ("server", {"type": "session.created"})))
    assert len(path.read_text().splitlines()) == 1  # on disk before anything else happens
    browser(w, **records(0, ("server", {"type": "a"}), ("server", {"type": "b"})))
    assert [json.loads(x)["type"] for x in path.read_text().splitlines()] == [
        "session.created",
        "a",
        "b",
    ]
    w.close()


class SlowService(Service):
    """A service whose ICE-server answer waits until the test releases it."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("ice-servers"):
            assert self.release.wait(5)
        return super().__call__(request)


@pytest.fixture
def slow_rig():
    service = SlowService()
    w, sent = widget_on(service)
    yield w, service, sent
    service.release.set()
    w.close()


def test_events_sent_while_the_ice_list_is_fetched_ride_in_the_connect_message(slow_rig) -> None:
    w, service, sent = slow_rig
    w.connect()
    w.send_text("Hello")  # connecting, but the browser has no call yet
    w.voice = "Sarah"
    assert sent == []  # nothing may reach the browser before its `connect`
    service.release.set()
    seam.wait_idle(w)
    assert [m["kind"] for m in sent] == ["connect"]
    assert [e["type"] for e in sent[0]["queued"]] == [
        "conversation.item.create",
        "response.create",
        "session.update",
    ]
    w.send_event({"type": "response.cancel"})
    assert sent[-1] == {
        "kind": "send",
        "call": 1,
        "page": "",
        "events": [{"type": "response.cancel"}],
    }


def test_hanging_up_during_the_ice_fetch_never_starts_the_browser(slow_rig) -> None:
    w, service, sent = slow_rig
    w.connect()
    w.disconnect()
    service.release.set()
    seam.wait_idle(w)
    assert sent == [] and w.status == "disconnected"
    # an offer for a call that is over is answered with a hang-up, not an SDP exchange
    browser(w, kind="offer", call=1, sdp="v=0\r\n")
    assert sent == [{"kind": "disconnect", "call": 1, "page": ""}]
    assert len(service.requests) == 1  # only the ICE fetch: no POST /calls


def test_a_late_failure_does_not_override_a_hang_up(rig) -> None:
    w, _, sent = rig
    call = connect_fully(w, sent)
    w.disconnect()
    seam.signalling(w).fail(call, "ICE connection failed")
    browser(w, kind="state", call=call, state="failed", detail="late")
    assert w.status == "disconnected" and w.error == ""


def test_an_unexpected_error_in_the_worker_fails_the_call(rig) -> None:
    w, _, _ = rig

    def broken() -> list:
        raise RuntimeError(f"boom with {SENTINEL_KEY}")

    seam.provider(w).ice_servers = broken  # type: ignore[method-assign]
    w.connect()
    seam.wait_idle(w)
    assert w.status == "failed" and "Unexpected RuntimeError" in w.error
    assert SENTINEL_KEY not in w.error


@pytest.mark.parametrize("bad", [SENTINEL_KEY + "\nX", "key-with-\u00e9", "a\x00b"])
def test_a_malformed_key_is_refused_without_quoting_it(bad) -> None:
    with pytest.raises(
        ValueError, match=r"The API key \(api_key, or INWORLD_API_KEY\) contains characters"
    ) as info:
        RealtimeWidget(api_key=bad, base_url="http://127.0.0.1:8")
    assert bad.strip() not in str(info.value)


def test_key_is_stripped_and_redacted_in_escaped_forms() -> None:
    from realtime_widget._provider import redact

    w = RealtimeWidget(api_key=f"  {SENTINEL_KEY}\r\n", base_url="http://127.0.0.1:8")
    assert seam.api_key(w).reveal() == SENTINEL_KEY
    tricky = SENTINEL_KEY + "\t\u00e9"
    text = f"{tricky!r} and {tricky.encode('unicode_escape').decode()}"
    assert "[redacted]" in redact(text, [tricky]) and "SENTINEL" not in redact(text, [tricky])


def test_a_gap_in_the_browsers_numbering_is_logged(rig) -> None:
    w, _, sent = rig
    call = connect_fully(w, sent)
    rec = lambda seq, t: {"seq": seq, "dir": "server", "t_ms": 1.0, "event": {"type": t}}  # noqa: E731
    batch = lambda page, *recs: browser(w, kind="events", call=call, page=page, records=list(recs))  # noqa: E731
    batch("p1", rec(0, "a"), rec(1, "b"))
    batch("p1", rec(4, "c"))  # 2 and 3 never arrived
    batch("p2", rec(0, "d"), rec(1, "e"))  # another front end counts on its own: no gap
    batch("p1", rec(4, "c-again"))  # a repeat is not a gap either
    assert [r["type"] for r in w.events] == ["a", "b", "log.gap", "c", "d", "e", "c-again"]
    assert w.events[2]["event"] == {
        "type": "log.gap",
        "page": "p1",
        "expected_seq": 2,
        "got_seq": 4,
    }


async def test_inside_a_kernel_worker_results_run_on_the_event_loop() -> None:
    """In a kernel (a running asyncio loop) the HTTP work happens on a worker thread, and
    what follows from it (traits, messages) on the loop's own thread."""
    import asyncio

    w, _ = widget_on(Service())
    threads: list[str] = []

    def post(message: dict) -> None:
        threads.append(threading.current_thread().name)

    seam.set_post(w, post)
    w.connect()
    await asyncio.get_running_loop().run_in_executor(None, seam.wait_idle, w)
    for _ in range(50):  # let the loop run what the worker handed it
        if threads:
            break
        await asyncio.sleep(0.01)
    assert threads == ["MainThread"]

    def boom(call: int, servers: list) -> None:
        raise RuntimeError("bug")

    w.disconnect()
    seam.signalling(w)._start_call = boom  # type: ignore[method-assign]
    w.connect()
    await asyncio.get_running_loop().run_in_executor(None, seam.wait_idle, w)
    for _ in range(50):
        if w.status == "failed":
            break
        await asyncio.sleep(0.01)
    assert w.status == "failed" and "Unexpected RuntimeError" in w.error  # not stuck connecting
    w.close()


def test_one_page_holds_the_call_when_several_show_the_widget(rig) -> None:
    w, _, sent = rig
    # a click in page A: the connect message is for A alone
    browser(w, kind="request", page="A", action="connect")
    seam.wait_idle(w)
    assert sent[-1]["kind"] == "connect" and sent[-1]["page"] == "A"
    browser(w, kind="offer", call=1, page="A", sdp="v=0\r\n")
    seam.wait_idle(w)
    assert sent[-1] == {"kind": "answer", "call": 1, "page": "A", "sdp": ANSWER}
    browser(w, kind="state", call=1, page="B", state="failed", detail="B has no such call")
    assert w.status == "connecting" and w.error == ""  # another page's word does not count
    browser(w, kind="state", call=1, page="A", state="connected", detail="")
    w.send_text("hi")
    assert sent[-1]["page"] == "A"
    w.disconnect()
    assert sent[-1] == {"kind": "disconnect", "call": 1, "page": "A"}


def test_from_python_the_first_page_to_offer_holds_the_call(rig) -> None:
    w, service, sent = rig
    w.connect()
    seam.wait_idle(w)
    assert sent[-1]["page"] == ""  # any page may take it
    browser(w, kind="offer", call=1, page="B", sdp="v=0\r\nB")
    browser(w, kind="offer", call=1, page="A", sdp="v=0\r\nA")  # a second tab, too late
    seam.wait_idle(w)
    assert {"kind": "disconnect", "call": 1, "page": "A"} in sent
    assert [m for m in sent if m["kind"] == "answer"] == [
        {"kind": "answer", "call": 1, "page": "B", "sdp": ANSWER}
    ]
    assert [r.content for r in service.requests if r.method == "POST"] == [
        b"v=0\r\nB"
    ]  # one call at the service


def test_ice_servers_are_fetched_when_the_widget_is_shown_and_serve_one_call(rig) -> None:
    w, service, sent = rig
    w._repr_mimebundle_()  # shown in a page
    seam.wait_idle(w)
    gets = lambda: [r for r in service.requests if r.method == "GET"]  # noqa: E731
    assert len(gets()) == 1
    w.connect()
    seam.wait_idle(w)
    assert sent[-1]["kind"] == "connect" and len(gets()) == 1  # the fetched list, no wait
    assert sent[-1]["ice_servers"][1]["credential"] == TURN["credential"]
    w.disconnect()
    w.connect()  # each fetched list serves one call: the next one fetches afresh
    seam.wait_idle(w)
    assert len(gets()) == 2


def test_a_failed_fetch_ahead_of_time_is_reported_by_the_connect_itself(rig) -> None:
    w, service, _ = rig
    service.ice_status = 503
    w._repr_mimebundle_()
    seam.wait_idle(w)
    assert w.status == "disconnected" and w.error == ""  # quiet until the user connects
    w.connect()
    seam.wait_idle(w)
    assert w.status == "failed" and "HTTP 503" in w.error
