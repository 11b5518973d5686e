"""A widget on a fake service and a fake page: the kernel's side of a call, tested without a
browser. ``Service`` answers the ICE and SDP requests; ``browser()`` posts what a page would."""

from __future__ import annotations

import httpx

from realtime_widget import RealtimeWidget
from tests.conftest import SENTINEL_KEY
from tests.helpers import seam

ANSWER = "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
TURN = {"urls": ["turn:127.0.0.1:3478"], "username": "turn-user-77", "credential": "turn-cred-88"}


class Service:
    """A scripted realtime service behind httpx.MockTransport."""

    def __init__(self) -> None:
        self.calls_status = 201
        self.ice_status = 200
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("ice-servers"):
            if self.ice_status != 200:
                return httpx.Response(self.ice_status, json={"error": {"message": "nope"}})
            return httpx.Response(
                200, json={"ice_servers": [{"urls": "stun:127.0.0.1:3478"}, TURN]}
            )
        if self.calls_status >= 300:
            return httpx.Response(self.calls_status, json={"error": {"message": "refused"}})
        return httpx.Response(201, text=ANSWER)


def widget_on(service: Service) -> tuple[RealtimeWidget, list[dict]]:
    """A widget talking to ``service``, with what it sends to the browser captured."""
    w = RealtimeWidget(api_key=SENTINEL_KEY, base_url="http://127.0.0.1:8")
    seam.use_service(w, httpx.MockTransport(service), key=SENTINEL_KEY)
    sent: list[dict] = []
    seam.set_post(w, sent.append)
    return w, sent


def browser(w: RealtimeWidget, **content) -> None:
    seam.from_page(w, content, [])


def records(call: int, *items: tuple[str, dict], t0: float = 1_700_000_000_000.0) -> dict:
    return {
        "kind": "events",
        "call": call,
        "records": [
            {"seq": i, "dir": d, "t_ms": t0 + i, "event": ev} for i, (d, ev) in enumerate(items)
        ],
    }


def connect_fully(w: RealtimeWidget, sent: list[dict]) -> int:
    w.connect()
    seam.wait_idle(w)
    call = sent[-1]["call"]
    browser(w, kind="offer", call=call, sdp="v=0\r\n")
    seam.wait_idle(w)
    browser(w, kind="state", call=call, state="connected", detail="")
    return call
