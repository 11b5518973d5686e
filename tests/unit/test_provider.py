"""The kernel's HTTP client: every failure becomes a safe, actionable ProviderError."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from realtime_widget._provider import (
    NO_KEY_MESSAGE,
    AuthFallback,
    Provider,
    ProviderError,
    Secret,
    normalize_ice_servers,
)
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


# --- the call id, the JSON form, auth fallback, hang-up ------------------------------------------

UUID = "0b6f2b1e-7c5d-4a8e-9f1a-2d3c4b5a6e7f"


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"Location": f"/v1/realtime/calls/{UUID}"}, None, UUID),
        ({"Location": f"https://api.example/v1/realtime/calls/{UUID}/"}, None, UUID),
        ({"Location": "/v1/realtime/calls/rtc_abc123"}, None, "rtc_abc123"),  # OpenAI's shape
        ({"Location": "/v1/realtime/calls/a%2Fb"}, None, "a/b"),  # opaque, quoted
        ({}, {"id": UUID, "sdp": ANSWER}, UUID),
        (
            {"Location": f"/v1/realtime/calls/{UUID}"},
            {"id": "x", "sdp": ANSWER},
            UUID,
        ),  # Location first
        ({}, {"sdp": ANSWER}, None),
        ({}, None, None),
        ({"Location": "/v1/realtime/calls/"}, {"id": 7, "sdp": ANSWER}, None),
    ],
)
def test_the_call_id_comes_from_location_or_the_json_body(headers, body, expected) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(201, text=ANSWER, headers=headers)
        return httpx.Response(201, json=body, headers=headers)

    p = provider(handler)
    if body is None:
        answer = p.create_call(OFFER)
    else:
        answer = p.create_call(OFFER, session={"instructions": "x"})
    assert answer.service_call_id == expected
    assert answer.sdp == ANSWER and answer.auth_scheme == "Bearer"


def test_exchange_sdp_keeps_the_whole_answer() -> None:
    p = provider(lambda r: httpx.Response(201, text=ANSWER, headers={"Location": f"/calls/{UUID}"}))
    assert p.exchange_sdp(OFFER) == ANSWER  # the page's flow is unchanged
    assert p.last_call is not None and p.last_call.service_call_id == UUID


def test_the_json_form_sends_the_session_and_keeps_its_turn_secrets() -> None:
    seen: list[httpx.Request] = []
    turn = {"urls": ["turn:127.0.0.1"], "username": "u-secret", "credential": "c-secret"}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            201,
            json={"id": UUID, "sdp": ANSWER, "ice_servers": [turn]},
            headers={"Location": f"/v1/realtime/calls/{UUID}"},
        )

    p = provider(handler)
    answer = p.create_call(OFFER, session={"instructions": "Be brief."})
    assert seen[0].headers["content-type"] == "application/json"
    assert json.loads(seen[0].content) == {"sdp": OFFER, "session": {"instructions": "Be brief."}}
    assert answer.ice_servers == [turn]
    assert {"u-secret", "c-secret"} <= set(p.secrets())


def test_a_json_answer_without_sdp_is_refused() -> None:
    p = provider(lambda r: httpx.Response(201, json={"id": UUID}))
    with pytest.raises(ProviderError, match="not an SDP answer"):
        p.create_call(OFFER, session={})


def only(scheme: str, seen: list[str]):
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"].split()[0])
        if request.headers["authorization"] != f"{scheme} {SENTINEL_KEY}":
            return httpx.Response(401, json={"error": {"message": f"bad {SENTINEL_KEY}"}})
        if request.url.path.endswith("/ice-servers"):
            return httpx.Response(200, json={"ice_servers": []})
        return httpx.Response(201, text=ANSWER, headers={"Location": f"/calls/{UUID}"})

    return handler


@pytest.mark.parametrize(("configured", "accepted"), [("Bearer", "Basic"), ("Basic", "Bearer")])
def test_a_401_is_retried_once_with_the_other_scheme_and_remembered(configured, accepted) -> None:
    seen: list[str] = []
    fallbacks: list[AuthFallback] = []
    p = provider(only(accepted, seen), auth_scheme=configured, on_auth_fallback=fallbacks.append)
    answer = p.create_call(OFFER)
    assert answer.auth_scheme == accepted and answer.service_call_id == UUID
    assert seen == [configured, accepted]
    assert fallbacks == [AuthFallback(configured, accepted, "/v1/realtime/calls")]
    assert fallbacks[0].record() == {
        "type": "auth.fallback",
        "refused": configured,
        "used": accepted,
        "path": "/v1/realtime/calls",
    }
    assert p.auth_fallback == fallbacks[0]
    p.ice_servers()
    p.create_call(OFFER)
    assert seen[2:] == [accepted, accepted]  # kept for the session: no more 401s
    assert len(fallbacks) == 1
    assert p.auth_headers() == {"Authorization": f"{accepted} {SENTINEL_KEY}"}


def test_no_fallback_when_the_configured_scheme_works() -> None:
    seen: list[str] = []
    fallbacks: list[AuthFallback] = []
    p = provider(only("Bearer", seen), on_auth_fallback=fallbacks.append)
    p.create_call(OFFER)
    assert seen == ["Bearer"] and fallbacks == [] and p.auth_fallback is None


def test_both_schemes_refused_says_so_without_the_key() -> None:
    seen: list[str] = []
    p = provider(only("Token", seen))
    with pytest.raises(ProviderError) as info:
        p.create_call(OFFER)
    assert seen == ["Bearer", "Basic"]  # once each, no loop
    message = info.value.message
    assert info.value.status == 401 and "'Bearer' and 'Basic'" in message
    assert SENTINEL_KEY not in message and SENTINEL_KEY not in repr(info.value)
    assert p.auth_scheme == "Bearer"  # nothing worked: nothing changes


def test_a_403_is_not_retried() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"].split()[0])
        return httpx.Response(403, text="forbidden")

    with pytest.raises(ProviderError, match="HTTP 403"):
        provider(handler).create_call(OFFER)
    assert seen == ["Bearer"]


def test_a_failing_fallback_listener_does_not_fail_the_call() -> None:
    def boom(fallback: AuthFallback) -> None:
        raise RuntimeError("listener bug")

    p = provider(only("Basic", []), on_auth_fallback=boom)
    assert p.create_call(OFFER).auth_scheme == "Basic"


def test_hangup_returns_none_or_the_reason_and_never_raises() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if "missing" in request.url.path:
            return httpx.Response(404, json={"error": {"message": f"no call ({SENTINEL_KEY})"}})
        return httpx.Response(200, json={})

    p = provider(handler)
    assert p.hangup(UUID) is None
    assert seen[0].method == "POST"
    assert seen[0].url.path == f"/v1/realtime/calls/{UUID}/hangup"
    assert seen[0].headers["authorization"] == f"Bearer {SENTINEL_KEY}"
    reason = p.hangup("missing/odd id")
    assert reason is not None and "HTTP 404" in reason and SENTINEL_KEY not in reason
    assert seen[1].url.raw_path.endswith(b"/calls/missing%2Fodd%20id/hangup")
    unreachable = Provider(f"http://127.0.0.1:{_free_port()}", Secret(SENTINEL_KEY), timeout=1)
    reason = unreachable.hangup(UUID)
    assert reason is not None and "Could not reach" in reason
    assert Provider(BASE, Secret("")).hangup(UUID) == NO_KEY_MESSAGE


def test_the_sideband_url_follows_the_base_url() -> None:
    assert provider(lambda r: httpx.Response(200)).sideband_url(UUID) == (
        f"ws://127.0.0.1:8/v1/realtime?call_id={UUID}"
    )
    secure = Provider("https://api.inworld.ai/", Secret(SENTINEL_KEY))
    assert secure.sideband_url("rtc_1") == "wss://api.inworld.ai/v1/realtime?call_id=rtc_1"
