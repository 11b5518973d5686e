"""The kernel's HTTP client: every failure becomes a safe, actionable ProviderError."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from realtime_widget._provider import Provider, ProviderError, Secret, normalize_ice_servers
from tests.conftest import SENTINEL_KEY

OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
ANSWER = "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
BASE = "http://127.0.0.1:8"


def provider(handler, **kw) -> Provider:
    return Provider(BASE, Secret(SENTINEL_KEY), transport=httpx.MockTransport(handler), **kw)


def test_ice_servers_and_sdp_exchange_send_auth_and_content_type() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/realtime/ice-servers":
            return httpx.Response(200, json={"ice_servers": [{"urls": "stun:127.0.0.1:3478"}]})
        assert request.url.path == "/v1/realtime/calls"
        return httpx.Response(201, text=ANSWER, headers={"Location": "/v1/realtime/calls/c1"})

    p = provider(handler)
    assert p.ice_servers() == [{"urls": ["stun:127.0.0.1:3478"]}]
    assert p.exchange_sdp(OFFER) == ANSWER
    get, post = seen
    assert get.method == "GET" and get.headers["authorization"] == f"Bearer {SENTINEL_KEY}"
    assert post.method == "POST" and post.headers["content-type"] == "application/sdp"
    assert post.content.decode() == OFFER


def test_auth_scheme_is_configurable() -> None:
    auth: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        auth.append(request.headers["authorization"])
        return httpx.Response(200, json={})

    provider(handler, auth_scheme="Basic").ice_servers()
    assert auth == [f"Basic {SENTINEL_KEY}"]


def test_ice_server_shapes() -> None:
    assert normalize_ice_servers({}) == []
    assert normalize_ice_servers({"ice_servers": None}) == []
    got = normalize_ice_servers(
        {
            "ice_servers": [
                {"urls": ["turn:a", "turn:b"], "username": "u", "credential": "c"},
                {"bad": 1},
            ]
        }
    )
    assert got == [{"urls": ["turn:a", "turn:b"], "username": "u", "credential": "c"}]


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (401, {"error": {"message": "bad key"}}, "refused the API key (HTTP 401)"),
        (403, "forbidden", "refused the API key (HTTP 403)"),
        (429, {"error": {"message": "slow down"}}, "rate-limiting this key (HTTP 429)"),
        (500, "boom", "failed with HTTP 500"),
        (503, {"error": {"message": "overloaded"}}, "The service said: overloaded"),
        (
            400,
            {"error": {"message": "bad offer"}},
            "rejected with HTTP 400. The service said: bad offer",
        ),
    ],
)
def test_http_failures_are_explained(status, body, words) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, dict):
            return httpx.Response(status, json=body)
        return httpx.Response(status, text=body)

    with pytest.raises(ProviderError) as info:
        provider(handler).exchange_sdp(OFFER)
    assert words in info.value.message
    assert info.value.status == status


def test_retry_after_is_reported() -> None:
    p = provider(lambda r: httpx.Response(429, headers={"retry-after": "7"}))
    with pytest.raises(ProviderError, match=r"after 7 s"):
        p.ice_servers()


def test_body_preview_is_bounded_and_key_echo_is_redacted() -> None:
    body = f"invalid key {SENTINEL_KEY} " + "x" * 1000
    p = provider(lambda r: httpx.Response(500, text=body))
    with pytest.raises(ProviderError) as info:
        p.exchange_sdp(OFFER)
    assert SENTINEL_KEY not in info.value.message and "[redacted]" in info.value.message
    assert len(info.value.message) < 400


def test_an_answer_that_is_not_sdp() -> None:
    p = provider(lambda r: httpx.Response(200, text="<html>captive portal</html>"))
    with pytest.raises(ProviderError, match="not an SDP answer"):
        p.exchange_sdp(OFFER)


def test_ice_servers_not_json() -> None:
    p = provider(lambda r: httpx.Response(200, text="nope"))
    with pytest.raises(ProviderError, match="did not return JSON"):
        p.ice_servers()


def test_no_key() -> None:
    p = Provider(BASE, Secret(""), transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    with pytest.raises(ProviderError, match="No API key"):
        p.ice_servers()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_refused_connection_on_loopback() -> None:
    p = Provider(f"http://127.0.0.1:{_free_port()}", Secret(SENTINEL_KEY), timeout=2)
    with pytest.raises(ProviderError) as info:
        p.ice_servers()
    assert "Could not reach http://127.0.0.1:" in info.value.message
    assert "Emulator" in info.value.message


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback server that accepts and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                continue

    th = threading.Thread(target=accept, daemon=True)
    th.start()
    yield srv.getsockname()[1]
    stop.set()
    th.join()
    for c in conns:
        c.close()
    srv.close()


def test_timeout_on_loopback(silent_server: int) -> None:
    p = Provider(f"http://127.0.0.1:{silent_server}", Secret(SENTINEL_KEY), timeout=0.3)
    with pytest.raises(ProviderError, match=r"timed out after 0\.3 s"):
        p.exchange_sdp(OFFER)


def test_secret_never_shows() -> None:
    s = Secret(SENTINEL_KEY)
    assert SENTINEL_KEY not in repr(s) and SENTINEL_KEY not in str(s) and SENTINEL_KEY not in f"{s}"
    p = provider(lambda r: httpx.Response(200))
    assert SENTINEL_KEY not in repr(p) and SENTINEL_KEY not in json.dumps(vars(p), default=repr)
