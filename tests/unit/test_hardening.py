"""What a hostile or unlucky user finds: secrets in every path, broken browser messages, page
writes to Python's traits, malformed service events, leaks, per-call state and several pages.
Each test here failed before the fix it covers."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from realtime_widget import RealtimeWidget
from realtime_widget._provider import ProviderError
from tests.conftest import SENTINEL_KEY
from tests.helpers import seam
from tests.helpers.page import Service, browser, connect_fully, widget_on

T0 = 1_700_000_000_000.0


@pytest.fixture
def rig():
    service = Service()
    w, sent = widget_on(service)
    yield w, service, sent
    w.close()


def batch(call: int, *events: tuple[str, dict], seq0: int = 0, page: str = "p") -> dict:
    return {
        "kind": "events",
        "call": call,
        "page": page,
        "records": [
            {"seq": seq0 + i, "dir": d, "t_ms": T0 + seq0 + i, "event": ev}
            for i, (d, ev) in enumerate(events)
        ],
    }


def everything_kept(w: RealtimeWidget, tmp_path: Path) -> str:
    """Every place a secret could be kept or shown, as one text."""
    out = tmp_path / "log.jsonl"
    w.events.to_jsonl(out)
    df = w.events.to_pandas()
    return "\n".join(
        [w.error, repr(w), out.read_text(), df.to_csv(), json.dumps(w.get_state(), default=str)]
    )


def refusals(w: RealtimeWidget) -> list[dict]:
    return [r["event"] for r in w.events.of_type("message.refused")]


# -- secrets -------------------------------------------------------------------------------


def test_a_callback_that_raises_with_the_key_leaks_it_nowhere(rig, tmp_path, capsys) -> None:
    w, _, sent = rig
    call = connect_fully(w, sent)

    @w.on("response.done")
    def leaky(event: dict) -> None:
        raise RuntimeError(f"bad auth {SENTINEL_KEY} / {SENTINEL_KEY!r}")

    browser(w, **batch(call, ("server", {"type": "response.done", "response": {"id": "r"}})))
    assert "RuntimeError" in w.error and "[redacted]" in w.error
    assert w.events.of_type("callback.error")
    assert SENTINEL_KEY not in everything_kept(w, tmp_path)
    assert SENTINEL_KEY not in capsys.readouterr().err


@pytest.mark.parametrize(
    "body",
    [
        # the key echoed with every character \u-escaped, and with a JSON "\/"
        '{"error": {"message": "key ' + "".join(f"\\u{ord(c):04x}" for c in SENTINEL_KEY) + '"}}',
        '{"error": {"message": "key ' + SENTINEL_KEY.replace("-", "\\u002d") + '"}}',
        '{"message": "key ' + SENTINEL_KEY[:4] + "\\/" + SENTINEL_KEY[4:].replace("/", "") + '"}',
    ],
)
def test_a_provider_error_body_echoing_the_key_is_scrubbed_after_decoding(
    body: str, tmp_path
) -> None:
    key = SENTINEL_KEY[:4] + "/" + SENTINEL_KEY[4:] if "\\/" in body else SENTINEL_KEY

    def service(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text=body, headers={"content-type": "application/json"})

    w = RealtimeWidget(api_key=key, base_url="http://127.0.0.1:8")
    seam.use_service(w, httpx.MockTransport(service), key=key)
    seam.set_post(w, lambda m: None)
    w.connect()
    seam.wait_idle(w)
    assert w.status == "failed" and "refused the API key" in w.error
    assert key not in everything_kept(w, tmp_path)
    with pytest.raises(ProviderError) as raised:  # the exception itself, too
        seam.provider(w).ice_servers()
    assert key not in str(raised.value) and "[redacted]" in str(raised.value)
    w.close()


def test_the_browsers_own_records_are_scrubbed(rig, tmp_path) -> None:
    w, _, sent = rig
    call = connect_fully(w, sent)
    escaped = json.dumps(SENTINEL_KEY)[1:-1].replace("-", "\\u002d")
    browser(
        w,
        **batch(
            call,
            ("local", {"type": "call.failed", "detail": f"refused {SENTINEL_KEY}"}),
            ("local", {"type": "parse_error", "error": "x", "raw": f'{{"k": "{escaped}"'}),
            ("local", {"type": "mic.error", "name": "E", "message": repr(SENTINEL_KEY)}),
        ),
    )
    kept = everything_kept(w, tmp_path)
    assert SENTINEL_KEY not in kept and escaped not in kept
    assert w.events.of_type("parse_error")[0]["event"]["raw"].startswith('{"k": "[redacted]')


def test_the_key_never_goes_to_the_browser(rig) -> None:
    w, _, sent = rig
    call = connect_fully(w, sent)
    w.send_text(f"my key is {SENTINEL_KEY}")
    browser(w, kind="state", call=call, state="failed", detail=f"boom {SENTINEL_KEY}")
    assert SENTINEL_KEY not in json.dumps(sent)
    assert SENTINEL_KEY not in w.error


# -- hostile or broken browser messages ------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        {"kind": "events", "call": "1", "page": "p", "records": []},
        {"kind": "events", "call": 10**30, "page": "p", "records": []},
        {"kind": "events", "call": 1.5, "page": "p", "records": []},
        {"kind": "events", "call": 1, "page": "p", "records": {"not": "a list"}},
        {"kind": "teleport", "call": 1, "page": "p"},
        {"kind": "request", "page": "p", "action": "format_disk"},
        {"kind": "state", "call": 1, "page": "p", "state": "exploded", "detail": ""},
        ["not", "an", "object"],
    ],
)
def test_a_broken_message_is_refused_in_words_and_the_next_batch_lands(rig, content) -> None:
    w, _, sent = rig
    call = connect_fully(w, sent)
    before = len(w.events)
    seam.from_page(w, content, [])
    assert w.status == "connected"
    assert len(refusals(w)) == 1 and refusals(w)[0]["reason"]
    browser(w, **batch(call, ("server", {"type": "session.updated", "session": {"a": 1}})))
    assert w.events[-1]["type"] == "session.updated" and len(w.events) == before + 2


def test_an_absurd_time_is_replaced_and_frames_keep_working(rig) -> None:
    w, _, sent = rig
    call = connect_fully(w, sent)
    msg = batch(call, ("server", {"type": "a"}), ("server", {"type": "b"}))
    msg["records"][0]["t_ms"] = 1e300
    msg["records"][1]["t_ms"] = float("nan")
    browser(w, **msg)
    assert "t_ms" in refusals(w)[0]["reason"]
    w.events._append("server", {"type": "direct"}, t_ms=1e300, t_kernel_ms=T0)  # the log alone
    df = w.events.to_pandas()
    assert list(df["type"].iloc[-3:]) == ["a", "b", "direct"]
    assert df["time"].iloc[-3:-1].notna().all()  # the kernel's receive time stood in
    assert df["time"].isna().iloc[-1]  # kept as unknown, not a crash
    w.events.turns()
    w.events.to_polars()


def test_a_forged_huge_seq_does_not_switch_gap_detection_off(rig) -> None:
    w, _, sent = rig
    call = connect_fully(w, sent)
    browser(w, **batch(call, ("server", {"type": "a"}), seq0=0))
    browser(w, **batch(call, ("server", {"type": "forged"}), seq0=10**11))
    browser(w, **batch(call, ("server", {"type": "b"}), seq0=2))
    browser(w, **batch(call, ("server", {"type": "c"}), seq0=7))  # 3..6 lost on the way
    gaps = [r["event"] for r in w.events.of_type("log.gap")]
    assert gaps[-1] == {"type": "log.gap", "page": "p", "expected_seq": 3, "got_seq": 7}
    browser(w, **batch(call, ("server", {"type": "d"}), seq0=10**13))  # beyond any count
    assert "seq" in refusals(w)[-1]["reason"]


def test_a_record_that_is_not_an_event_is_kept_as_invalid(rig) -> None:
    w, _, sent = rig
    call = connect_fully(w, sent)
    msg = batch(call, ("server", {"type": "ok"}))
    msg["records"] += [{"seq": 1, "dir": "sideways", "t_ms": T0, "event": {}}, 42]
    msg["records"].append({"seq": 2, "dir": "server", "t_ms": T0, "event": "text"})
    browser(w, **msg)
    # the two dropped records leave a hole in the numbering, and the log says so
    assert [r["type"] for r in w.events][-3:] == ["ok", "log.gap", "local.invalid"]
    assert "2 record(s)" in refusals(w)[0]["reason"]


# -- trait writes from a page ----------------------------------------------------------------


def test_a_page_cannot_set_the_traits_python_owns(rig) -> None:
    w, _, sent = rig
    connect_fully(w, sent)
    echoed: list = []
    w.send_state = lambda key=None: echoed.append(key)  # type: ignore[method-assign]
    w.set_state({"status": "disconnected", "error": "pwned", "mic": False, "muted": True})
    assert w.status == "connected" and w.error == "" and w.mic is True
    assert w.muted is True  # the Mute button's trait is the page's to set
    assert echoed == [["error", "mic", "status"]]  # every page is shown Python's values again
    assert w.events.of_type("state.refused")[0]["event"]["names"] == ["error", "mic", "status"]
    assert not any(m["kind"] == "disconnect" for m in sent)  # the call (and mic) stay as they were


# -- malformed service events ----------------------------------------------------------------


def test_malformed_service_events_break_no_callback_and_no_analysis(rig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    w, _, sent = rig
    call = connect_fully(w, sent)
    seen: list[str] = []
    w.on("*", lambda ev: seen.append(ev["type"]))
    bad = [
        ("server", {"type": "response.created", "response": "not a dict"}),
        ("server", {"type": "response.done", "response": ["x"]}),
        ("server", {"type": "conversation.item.added", "item": 7}),
        ("server", {"type": "response.done", "response": {"id": "r", "status_details": "x"}}),
        ("server", {"type": "response.done", "response": {"status_details": {"error": 3}}}),
        ("server", {"type": "session.updated", "session": "nope"}),
        ("server", {"type": "error", "error": "plain words"}),
        ("client", {"type": "conversation.item.create", "item": "text"}),
        ("server", {"type": "response.output_text.delta", "response_id": ["r"]}),
        ("server", {"type": "after"}),
    ]
    browser(w, **batch(call, *bad))
    assert seen[-1] == "after" and len(seen) == 9  # every server event reached its callbacks
    assert w.error == ""
    df = w.events.turns()
    assert len(df) == 1
    w.events.latency_summary()
    w.events.plot_timeline()
    w.events.to_pandas()


# -- memory and leftovers ----------------------------------------------------------------------


def test_a_closed_panel_lets_go_of_the_widget() -> None:
    w = RealtimeWidget(api_key="k")

    def hooks() -> tuple[int, int]:
        observers = seam.trait_observers(w)
        return observers, sum(len(v) for v in seam.inbox(w).callbacks.values())

    before = hooks()
    panels = [w.controls() for _ in range(5)]
    assert hooks()[0] > before[0] and hooks()[1] > before[1]
    for panel in panels:
        panel.close()
    assert hooks() == before
    w.voice = "Ashley"  # no closed panel hears it
    assert all(p.voice.value != "Ashley" for p in panels)
    w.close()


def test_events_queued_for_a_call_that_failed_are_dropped_with_a_record(rig) -> None:
    w, service, sent = rig
    service.ice_status = 500
    w.send_text("meant for the first call")
    w.connect()
    seam.wait_idle(w)
    assert w.status == "failed"
    dropped = w.events.of_type("pending.dropped")
    assert dropped and dropped[0]["event"]["events"][0]["type"] == "conversation.item.create"
    service.ice_status = 200
    w.connect()
    seam.wait_idle(w)
    assert sent[-1]["kind"] == "connect" and sent[-1]["queued"] == []


# -- per-call state ------------------------------------------------------------------------------


def test_stop_after_a_reconnect_sends_no_cancel_for_the_old_calls_response(rig) -> None:
    w, _, sent = rig
    call = connect_fully(w, sent)
    browser(w, **batch(call, ("server", {"type": "response.created", "response": {"id": "r1"}})))
    browser(w, **batch(call, ("server", {"type": "output_audio_buffer.started"}), seq0=1))
    w.disconnect()
    call2 = connect_fully(w, sent)
    assert call2 == call + 1
    # a late event of the old call must not make the new call think something is in flight
    browser(
        w, **batch(call, ("server", {"type": "response.created", "response": {"id": "r9"}}), seq0=2)
    )
    n = len(sent)
    w.cancel_response()
    assert sent[n:] == []


# -- several pages ---------------------------------------------------------------------------------


def test_before_any_offer_one_page_giving_up_does_not_fail_the_call(rig) -> None:
    w, _, _ = rig
    w.connect()  # from Python: every page showing the widget tries
    seam.wait_idle(w)
    for page in ("A", "B"):
        browser(w, **batch(1, ("local", {"type": "call.start", "call": 1}), page=page))
    browser(w, kind="state", call=1, page="B", state="failed", detail="B: no peer connection")
    assert w.status == "connecting" and w.error == ""
    browser(w, kind="offer", call=1, page="A", sdp="v=0\r\n")
    seam.wait_idle(w)
    browser(w, kind="state", call=1, page="A", state="connected", detail="")
    assert w.status == "connected"


def test_the_only_page_trying_still_fails_the_call(rig) -> None:
    w, _, _ = rig
    w.connect()
    seam.wait_idle(w)
    browser(w, **batch(1, ("local", {"type": "call.start", "call": 1}), page="A"))
    browser(w, kind="state", call=1, page="A", state="failed", detail="A failed")
    assert w.status == "failed" and w.error == "A failed"


def test_a_page_that_does_not_hold_the_call_cannot_end_it(rig) -> None:
    w, _, _ = rig
    browser(w, kind="request", page="A", action="connect")
    seam.wait_idle(w)
    browser(w, kind="offer", call=1, page="A", sdp="v=0\r\n")
    seam.wait_idle(w)
    browser(w, kind="state", call=1, page="A", state="connected", detail="")
    browser(w, kind="request", page="B", action="disconnect")
    browser(w, kind="state", call=1, page="B", state="failed", detail="B says so")
    assert w.status == "connected"
    assert [r["kind"] for r in refusals(w)] == ["request", "state"]
    browser(w, kind="request", page="A", action="disconnect")
    assert w.status == "disconnected"
