"""ICE servers ahead of a click: the pages get the fetched list in a message (never in state),
on a page's ask, and again after each call, so a Connect click can start the call at once."""

from __future__ import annotations

from tests.helpers import seam
from tests.helpers.page import TURN, Service, browser, widget_on


def ice_messages(sent: list[dict]) -> list[dict]:
    return [m for m in sent if m["kind"] == "ice"]


def test_a_page_asking_gets_the_list_in_a_message_and_the_connect_uses_that_list() -> None:
    service = Service()
    w, sent = widget_on(service)
    try:
        browser(w, kind="request", page="A", action="prepare")
        seam.wait_idle(w)
        (ice,) = ice_messages(sent)
        assert ice["ice_servers"][1] == TURN and ice["page"] == "" and ice["ttl_ms"] > 0
        assert TURN["credential"] not in repr(w.get_state())  # a message, never state
        browser(w, kind="request", page="A", action="prepare")  # asked again: the same list
        seam.wait_idle(w)
        assert ice_messages(sent)[-1]["ice_servers"] == ice["ice_servers"]
        assert len([r for r in service.requests if r.method == "GET"]) == 1
        browser(w, kind="request", page="A", action="connect")
        seam.wait_idle(w)
        assert sent[-1]["kind"] == "connect" and sent[-1]["ice_servers"] == ice["ice_servers"]
    finally:
        w.close()


def test_after_a_call_the_next_list_is_fetched_and_sent() -> None:
    service = Service()
    w, sent = widget_on(service)
    try:
        w._repr_mimebundle_()  # shown in a page
        seam.wait_idle(w)
        w.connect()
        seam.wait_idle(w)
        n = len(ice_messages(sent))
        w.disconnect()
        seam.wait_idle(w)
        assert len(ice_messages(sent)) == n + 1
    finally:
        w.close()


def test_no_list_is_sent_while_a_call_is_live() -> None:
    service = Service()
    w, sent = widget_on(service)
    try:
        w.connect()
        seam.wait_idle(w)
        browser(w, kind="request", page="A", action="prepare")
        seam.wait_idle(w)
        assert ice_messages(sent) == []
    finally:
        w.close()
