"""Call control as Inworld documents it: UUID call ids, the JSON and multipart create-call forms,
hang-up, the sideband WebSocket and its knobs, the auth-scheme knob, CORS for third-party
clients."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx
import pytest
from aiortc import RTCSessionDescription

from realtime_widget._sideband import Sideband, sideband_url
from realtime_widget.emulator import Emulator
from tests.helpers.emu_checks import FAST, Connect, user_text
from tests.helpers.emu_client import RealtimeClient
from tests.helpers.protocol_checks import check_stream

pytestmark = pytest.mark.netns

# Passes the quick shape check, but aiortc cannot apply it: requests that fail before any peer
# connection starts use it.
HOLLOW_OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"
)
TEXT_ONLY = {"type": "response.create", "response": {"output_modalities": ["text"]}}


def auth(emu: Emulator, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {emu.api_key}"}


def call_id_of(response: httpx.Response) -> str:
    location = response.headers["Location"]
    assert location.startswith("/v1/realtime/calls/")
    call_id = location.rsplit("/", 1)[-1]
    assert str(uuid.UUID(call_id)) == call_id  # a canonical UUID
    return call_id


async def offer(client: RealtimeClient) -> str:
    client.pc.addTransceiver("audio", direction="recvonly")
    await client.pc.setLocalDescription(await client.pc.createOffer())
    return str(client.pc.localDescription.sdp)


async def finish(client: RealtimeClient, response: httpx.Response, answer: str) -> None:
    assert response.status_code == 201, response.text
    client.call_id = call_id_of(response)
    await client.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await client.wait_for("session.created", timeout=10)


@pytest.fixture
async def clients() -> AsyncIterator[list[RealtimeClient]]:
    made: list[RealtimeClient] = []
    yield made
    for client in made:
        await client.close()
    for client in made:
        check_stream(client.events)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def sideband_at(emu: Emulator, call_id: str) -> str:
    return f"{emu.base_url.replace('http://', 'ws://')}/v1/realtime?call_id={call_id}"


class SidebandEvents:
    """A plain aiohttp WebSocket on a call's sideband, keeping what it receives."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.events.append(json.loads(message.data))
        self.closed.set()

    async def wait_for(self, type: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("type") == type:
                    return event
            await asyncio.sleep(0.005)
        raise AssertionError(f"no {type!r} on the sideband; saw {[e['type'] for e in self.events]}")

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(event))


async def open_sideband(
    http: aiohttp.ClientSession, emu: Emulator, call_id: str, scheme: str = "Bearer"
) -> SidebandEvents:
    ws = await http.ws_connect(sideband_at(emu, call_id), headers=auth(emu, scheme))
    return SidebandEvents(ws)


async def handshake_status(http: aiohttp.ClientSession, url: str, **headers: str) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await http.ws_connect(url, headers=headers)
    return info.value.status


# --- creating calls ------------------------------------------------------------------------------


async def test_every_form_answers_201_with_a_uuid_location(
    emulator: Emulator, clients: list[RealtimeClient]
) -> None:
    async with httpx.AsyncClient(base_url=emulator.base_url, headers=auth(emulator)) as web:
        raw = RealtimeClient(emulator.base_url, emulator.api_key, mic=False)
        clients.append(raw)
        sdp = await offer(raw)
        response = await web.post(
            "/v1/realtime/calls", content=sdp, headers={"Content-Type": "application/sdp"}
        )
        await finish(raw, response, response.text)

        as_json = RealtimeClient(emulator.base_url, emulator.api_key, mic=False)
        clients.append(as_json)
        response = await web.post("/v1/realtime/calls", json={"sdp": await offer(as_json)})
        body = response.json()
        assert set(body) == {"id", "sdp", "ice_servers"} and body["ice_servers"] == []
        assert body["id"] == call_id_of(response)
        await finish(as_json, response, body["sdp"])

        # The OpenAI Agents SDK's form: multipart with sdp and a JSON session; answered as SDP.
        form = RealtimeClient(emulator.base_url, emulator.api_key, mic=False)
        clients.append(form)
        fields = {"sdp": await offer(form), "session": json.dumps({"instructions": "Hi."})}
        response = await web.post(
            "/v1/realtime/calls", files={k: (None, v) for k, v in fields.items()}
        )
        assert response.headers["content-type"].startswith("application/sdp")
        await finish(form, response, response.text)
    ids = [c.call_id for c in clients]
    assert len(set(ids)) == 3
    assert [c["id"] for c in emulator.calls] == ids
    assert (
        next(c for c in emulator.calls if c["id"] == form.call_id)["session"]["instructions"]
        == "Hi."
    )


async def test_the_json_session_applies_before_the_first_event(
    emulator: Emulator, clients: list[RealtimeClient]
) -> None:
    client = RealtimeClient(emulator.base_url, emulator.api_key, mic=False)
    clients.append(client)
    session = {
        "type": "realtime",
        "instructions": "Answer in one word.",
        "audio": {"input": {"turn_detection": None}},
    }
    async with httpx.AsyncClient(base_url=emulator.base_url, headers=auth(emulator)) as web:
        response = await web.post(
            "/v1/realtime/calls", json={"sdp": await offer(client), "session": session}
        )
    await finish(client, response, response.json()["sdp"])
    first = client.events[0]
    assert first["type"] == "session.created"  # no session.updated needed
    assert first["session"]["instructions"] == "Answer in one word."
    assert first["session"]["audio"]["input"]["turn_detection"] is None
    assert client.of_type("session.updated") == []


def test_a_bad_json_session_is_refused_naming_the_field(emulator: Emulator) -> None:
    url = f"{emulator.base_url}/v1/realtime/calls"
    bad = {"sdp": HOLLOW_OFFER, "session": {"temperature": "hot"}}
    response = httpx.post(url, json=bad, headers=auth(emulator))
    assert response.status_code == 400, response.text
    assert "temperature" in (response.json()["error"]["param"] or "")
    missing = httpx.post(url, json={"session": {}}, headers=auth(emulator))
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "sdp"
    assert emulator.calls == []  # nothing was left behind


# --- hang-up -------------------------------------------------------------------------------------


async def test_hangup_ends_the_call_and_says_when_and_why(
    emulator: Emulator, connect: Connect, http: aiohttp.ClientSession
) -> None:
    client = await connect(mic=False)
    sideband = await open_sideband(http, emulator, str(client.call_id))
    before = time.time()
    async with httpx.AsyncClient(base_url=emulator.base_url, headers=auth(emulator)) as web:
        response = await web.post(f"/v1/realtime/calls/{client.call_id}/hangup")
        assert response.status_code == 200
        again = await web.post(f"/v1/realtime/calls/{client.call_id}/hangup")
        assert again.status_code == 200  # hanging up an ended call is harmless
    snap = next(c for c in emulator.calls if c["id"] == client.call_id)
    assert snap["state"] == "closed" and snap["end_reason"] == "hangup"
    assert before <= snap["ended_at"] <= time.time()
    await asyncio.wait_for(sideband.closed.wait(), 5)  # the sideband ends with the call
    assert sideband.ws.close_code == 1000
    await asyncio.wait_for(client.channel_closed.wait(), 5)


# --- the sideband --------------------------------------------------------------------------------


async def test_the_sideband_gets_every_event_the_channel_gets(
    emulator: Emulator, connect: Connect, http: aiohttp.ClientSession
) -> None:
    client = await connect(mic=False)
    sideband = await open_sideband(http, emulator, str(client.call_id))
    await asyncio.sleep(0.05)  # the upgrade is registered on the emulator's loop
    start = len(client.events)
    client.send(user_text("Hello there"))
    client.send(TEXT_ONLY)
    await client.wait_for("response.done", timeout=10)
    await sideband.wait_for("response.done")
    await asyncio.sleep(0.05)
    on_channel = [e["event_id"] for e in client.events[start:]]
    assert [e["event_id"] for e in sideband.events] == on_channel
    assert sideband.events == client.events[start:]
    assert next(c for c in emulator.calls if c["id"] == client.call_id)["sidebands"] == 1


async def test_client_events_are_taken_from_the_sideband(
    emulator: Emulator, connect: Connect, http: aiohttp.ClientSession
) -> None:
    client = await connect(mic=False)
    first = await open_sideband(http, emulator, str(client.call_id))
    second = await open_sideband(http, emulator, str(client.call_id))
    await first.send({**user_text("From the kernel"), "event_id": "kernel_1"})
    await first.send({**TEXT_ONLY, "event_id": "kernel_2"})
    done = await client.wait_for("response.done", timeout=10)  # the page hears it too
    assert (await first.wait_for("response.done"))["event_id"] == done["event_id"]
    assert (await second.wait_for("response.done"))["event_id"] == done["event_id"]
    snap = next(c for c in emulator.calls if c["id"] == client.call_id)
    assert [e["event_id"] for e in snap["events_in"]][-2:] == ["kernel_1", "kernel_2"]
    # A bad client event on the sideband is answered with an error, on both paths.
    await second.send({"type": "no.such.event", "event_id": "kernel_3"})
    error = await client.wait_for("error", where=lambda e: e["error"]["event_id"] == "kernel_3")
    assert error in second.events or (await second.wait_for("error")) == error


async def test_the_sideband_refuses_unknown_calls_and_missing_keys(
    emulator: Emulator, connect: Connect, http: aiohttp.ClientSession
) -> None:
    client = await connect(mic=False)
    url = sideband_at(emulator, str(client.call_id))
    assert await handshake_status(http, url) == 401
    assert await handshake_status(http, url, Authorization="Bearer wrong") == 401
    unknown = sideband_at(emulator, str(uuid.uuid4()))
    assert await handshake_status(http, unknown, **auth(emulator)) == 404
    no_id = sideband_at(emulator, "").replace("?call_id=", "")
    assert await handshake_status(http, no_id, **auth(emulator)) == 400


async def test_the_sideband_knobs_refuse_and_drop(
    emulator: Emulator, connect: Connect, http: aiohttp.ClientSession
) -> None:
    client = await connect(mic=False)
    url = sideband_at(emulator, str(client.call_id))
    emulator.configure(sideband="refuse")
    assert await handshake_status(http, url, **auth(emulator)) == 403
    emulator.configure(sideband="absent")
    assert await handshake_status(http, url, **auth(emulator)) == 404
    emulator.configure(sideband="accept", sideband_drop_after=3)
    sideband = await open_sideband(http, emulator, str(client.call_id))
    await asyncio.sleep(0.05)
    client.send(user_text("Hello there"))
    client.send(TEXT_ONLY)
    await client.wait_for("response.done", timeout=10)
    await asyncio.wait_for(sideband.closed.wait(), 5)
    assert sideband.ws.close_code == 1011
    assert len(sideband.events) == 3
    snap = next(c for c in emulator.calls if c["id"] == client.call_id)
    assert "sideband closed after 3 events" in snap["faults"] and snap["sidebands"] == 0
    assert snap["state"] == "open"  # the call itself goes on
    emulator.configure(sideband_drop_after=0)  # closed as soon as it opens: an early close
    early = await open_sideband(http, emulator, str(client.call_id))
    await asyncio.wait_for(early.closed.wait(), 5)
    assert early.ws.close_code == 1011, repr(early.ws.exception())
    assert early.events == []


# --- auth schemes and CORS -----------------------------------------------------------------------


@pytest.fixture
def basic_only() -> Iterator[Emulator]:
    with Emulator(auth_schemes="Basic", **FAST) as emu:
        yield emu


async def test_the_auth_scheme_knob(basic_only: Emulator, http: aiohttp.ClientSession) -> None:
    url = f"{basic_only.base_url}/v1/realtime/calls"
    sdp = {"Content-Type": "application/sdp"}
    bearer = httpx.post(url, content=HOLLOW_OFFER, headers={**auth(basic_only), **sdp})
    assert bearer.status_code == 401
    assert "Authorization: Basic <key>" in bearer.json()["error"]["message"]
    assert basic_only.api_key not in bearer.text
    basic = httpx.post(url, content=HOLLOW_OFFER, headers={**auth(basic_only, "Basic"), **sdp})
    assert basic.status_code == 400  # past auth: the hollow offer itself is refused
    client = RealtimeClient(basic_only.base_url, basic_only.api_key, mic=False)
    try:
        async with httpx.AsyncClient(headers=auth(basic_only, "Basic")) as web:
            response = await web.post(url, content=await offer(client), headers=sdp)
        await finish(client, response, response.text)
        sideband_url_ = sideband_at(basic_only, str(client.call_id))
        assert await handshake_status(http, sideband_url_, **auth(basic_only)) == 401
        sideband = await open_sideband(http, basic_only, str(client.call_id), "Basic")
        await sideband.ws.close()
    finally:
        await client.close()
    assert Emulator(auth_schemes=("bearer",)).knobs.auth_schemes == ("Bearer",)
    with pytest.raises(ValueError, match="auth_schemes"):
        Emulator(auth_schemes="Token")


def test_a_preflight_for_the_agents_sdk_headers_passes(emulator: Emulator) -> None:
    asked = "authorization, content-type, openai-beta, x-stainless-os, x-openai-agents-sdk"
    for path in ("/v1/realtime/calls", "/v1/realtime/calls/x/hangup", "/v1/realtime/ice-servers"):
        response = httpx.options(
            emulator.base_url + path,
            headers={
                "Origin": "http://127.0.0.1:9999",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": asked,
            },
        )
        assert response.status_code == 204
        allowed = {
            h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")
        }
        assert {h.strip() for h in asked.split(",")} <= allowed
        assert response.headers["Access-Control-Allow-Origin"] == "*"
    odd = httpx.options(
        f"{emulator.base_url}/v1/realtime/calls",
        headers={"Access-Control-Request-Headers": "x-ok, bad header, x(y)"},
    )
    assert odd.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type, x-ok"


# --- the kernel's sideband client against the emulator -------------------------------------------


async def test_the_kernel_sideband_client_on_a_live_call(
    emulator: Emulator, connect: Connect
) -> None:
    client = await connect(mic=False)
    heard: list[tuple[dict[str, Any], float]] = []
    states: list[tuple[str, str]] = []
    url = sideband_url(emulator.base_url, str(client.call_id))
    assert url.startswith("ws://127.0.0.1:")
    sideband = Sideband(
        url,
        auth(emulator),
        on_event=lambda event, t: heard.append((event, t)),
        on_state=lambda state, reason: states.append((state, reason)),
    )
    await sideband.start()
    assert states[-1][0] == "open"
    assert sideband.send([user_text("Over the sideband"), TEXT_ONLY])
    done = await client.wait_for("response.done", timeout=10)
    for _ in range(200):
        if any(e["event_id"] == done["event_id"] for e, _ in heard):
            break
        await asyncio.sleep(0.01)
    assert done["event_id"] in [e["event_id"] for e, _ in heard]
    now_ms = time.time() * 1000
    assert all(now_ms - 10_000 < t <= now_ms for _, t in heard)  # the kernel's receive clock
    async with httpx.AsyncClient(base_url=emulator.base_url, headers=auth(emulator)) as web:
        await web.post(f"/v1/realtime/calls/{client.call_id}/hangup")
    for _ in range(200):
        if states[-1][0] == "closed":
            break
        await asyncio.sleep(0.01)
    assert states[-1] == ("closed", "call ended")  # the call's end is not a failure
    assert "failed" not in [s for s, _ in states]
    await sideband.close()
