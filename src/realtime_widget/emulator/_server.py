"""The HTTP side.

ICE servers, the SDP exchange that creates calls, call control (hang-up and the sideband WebSocket),
and an inspection route.

A browser-facing service: the ``/v1/realtime/*`` routes answer CORS preflights (allowing the
headers the preflight asks for, as a client such as the OpenAI Agents SDK adds its own) and carry
``Access-Control-Allow-Origin`` (a page on another origin may POST its offer directly, with the
key in ``Authorization``). Bounded: request bodies (``MAX_BODY_BYTES``), live calls (the
``max_calls`` knob) and calls that never connect (``connect_timeout_s``).

Call control follows Inworld's documentation: ``POST /v1/realtime/calls`` answers ``201`` with
``Location: /v1/realtime/calls/<uuid>`` for a raw SDP offer, a JSON ``{"sdp", "session"}`` body
(answered ``{"id", "sdp", "ice_servers"}``) or a multipart form with the same fields; the
session of either form applies before the call's first event. ``POST .../{call_id}/hangup`` ends
the call. ``GET /v1/realtime?call_id=<id>`` upgrades to the call's sideband: every server event
of the call goes to the data channel and to every sideband, and client events are taken from
either, handled in arrival order.

The WebSocket transport (``_socket.py``): ``GET /api/v1/realtime/session?key=<session id>&
protocol=realtime`` (Inworld's path) or ``GET /v1/realtime?model=<model>`` (OpenAI's; a
``call_id`` instead makes it the sideband) upgrades to a session whose events and audio both ride
the socket. Its handshake is refused as a call would be: 401 (the ``auth_schemes`` knob),
``reject_calls_status``, 429 over ``max_calls`` (WebSocket sessions and WebRTC calls count
together). Closing the socket ends the session; it has no call control.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import re
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from ._call import EmulatedCall
from ._chat import ChatResponder, ChatRoutes
from ._errors import ClientError
from ._knobs import Knobs
from ._loopback import install_loopback_candidates
from ._responder import Responder, Transcriber
from ._session_state import merge_session, validate_session_update
from ._socket import SocketChannel

log = logging.getLogger(__name__)

KEEP_FINISHED_CALLS = 100
CLOSE_TIMEOUT_S = 1.0  # how long a WebSocket's closing handshake may wait for the client
MAX_BODY_BYTES = 256 * 1024  # an SDP offer is a few KB
MAX_SESSION_MESSAGE_BYTES = 16 * 1024 * 1024  # an append may hold seconds of audio (OpenAI: 15 MiB)
CORS_PREFIX = "/v1/realtime/"
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",  # the key travels in Authorization, never in cookies
    "Access-Control-Expose-Headers": "Location",  # the call id of a new call
}
PREFLIGHT_HEADERS = {
    **CORS_HEADERS,
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
}
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")  # an HTTP token
SIDEBAND_PATH = "/v1/realtime"  # also OpenAI's WebSocket transport, told apart by its query
SESSION_PATH = "/api/v1/realtime/session"  # Inworld's WebSocket transport
_SOCKET_ENDS = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)
OFFER_FORMS = ("application/sdp", "application/json", "multipart/form-data")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(
    status: int, code: str, message: str, type: str | None = None, param: str | None = None
) -> web.Response:
    kind = type or ("server_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"type": kind, "code": code, "message": message, "param": param}}
    return web.json_response(body, status=status)


def allowed_headers(requested: str) -> str:
    """``Access-Control-Allow-Headers`` for a preflight.

    The two every client needs, plus each well-formed header name the preflight asked for.
    """
    names = ["Authorization", "Content-Type"]
    seen = {n.lower() for n in names}
    for name in (part.strip() for part in requested.split(",")):
        if _HEADER_NAME.match(name) and name.lower() not in seen:
            seen.add(name.lower())
            names.append(name)
    return ", ".join(names)


class _Sideband:
    """One sideband socket: an ordered outbox the call's ``emit`` feeds without waiting."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()  # None: the call ended
        self.sent = 0
        # Set by the feeder: (code, reason) to close with. The handler, the socket's one
        # reader, closes it, so the close handshake completes (aiohttp drops the transport at
        # once when another task closes a socket that is being read).
        self.ending: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()


def offer_problem(sdp: str) -> str | None:
    """Why ``sdp`` cannot be a browser's offer for a realtime call, or None if it looks right."""
    if not sdp.lstrip().startswith("v=0"):
        return "The request body is not an SDP offer (it must start with 'v=0')."
    media = [line for line in sdp.splitlines() if line.startswith("m=")]
    if not any(line.startswith("m=audio ") for line in media):
        return "The SDP offer has no audio m-line: the call needs the microphone track."
    if not any(line.startswith("m=application ") and "SCTP" in line for line in media):
        return "The SDP offer has no data channel m-line: create the 'oai-events' channel first."
    return None


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name, "" or "0.0.0.0"-like wildcards resolve to more than loopback


def warn_if_exposed(host: str) -> bool:
    """Warn, in the log and on stderr, when the emulator listens beyond this machine."""
    if is_loopback(host):
        return False
    message = (
        f"realtime emulator: listening on {host!r}, which is NOT a loopback address: other "
        "machines can reach it and anyone holding its API key can open calls. Bind 127.0.0.1 "
        "unless you mean to serve a network."
    )
    log.warning(message)
    print(f"WARNING: {message}", file=sys.stderr, flush=True)
    return True


class EmulatorServer:
    """Owns the aiohttp app and the calls; lives entirely on the emulator's event loop."""

    def __init__(
        self,
        api_key: str,
        knobs: Callable[[], Knobs],
        responder: Responder,
        transcriber: Transcriber | None,
        keep_finished_calls: int = KEEP_FINISHED_CALLS,
        chat_responder: ChatResponder | None = None,
    ) -> None:
        self._api_key = api_key
        self._knobs = knobs
        self._responder = responder
        self._transcriber = transcriber
        # Live calls, plus the most recent ``keep_finished_calls`` finished ones (for
        # snapshots); older finished calls are dropped so a long-running emulator stays bounded.
        self.calls: dict[str, EmulatedCall] = {}
        self._keep_finished = keep_finished_calls
        self._finished: deque[str] = deque()  # ids of the finished calls kept, oldest first
        self._accepting = 0  # offers being applied: not registered yet, but counted as live
        self._runner: web.AppRunner | None = None
        self.chat = ChatRoutes(self._unauthorized, knobs, chat_responder)
        self._sidebands: dict[str, list[_Sideband]] = {}  # call id -> its open sidebands
        self._sideband_tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"EmulatorServer(calls={len(self.calls)})"

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self, host: str, port: int) -> int:
        install_loopback_candidates()
        warn_if_exposed(host)
        app = web.Application(
            middlewares=[self._cors, self._errors_as_json], client_max_size=MAX_BODY_BYTES
        )
        app.router.add_get("/v1/realtime/ice-servers", self._ice_servers)
        app.router.add_post("/v1/realtime/calls", self._create_call)
        app.router.add_post("/v1/realtime/calls/{call_id}/hangup", self._hangup)
        app.router.add_get(SIDEBAND_PATH, self._realtime_socket)
        app.router.add_get(SESSION_PATH, self._inworld_session)
        for path in (
            "/v1/realtime/ice-servers",
            "/v1/realtime/calls",
            "/v1/realtime/calls/{call_id}/hangup",
        ):
            app.router.add_route("OPTIONS", path, self._preflight)
        app.router.add_get("/emulator/calls", self._list_calls)
        self.chat.add_to(app)  # POST /v1/chat/completions, /v1/audio/speech
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        bound: Any = self._runner.addresses[0]
        return int(bound[1])

    async def shutdown(self) -> None:
        live = list(self.calls.values())  # closing a call may prune self.calls
        await asyncio.gather(*(call.close("emulator stopped") for call in live))
        if self._sideband_tasks:  # each sends what is queued, then closes its socket
            await asyncio.wait(self._sideband_tasks, timeout=2)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def snapshots(self) -> list[dict[str, Any]]:
        return [call.snapshot() for call in self.calls.values()]

    # --- call bookkeeping ----------------------------------------------------------------
    def live_calls(self) -> int:
        return self._accepting + sum(1 for c in self.calls.values() if not c.finished)

    def _register(self, call: EmulatedCall) -> None:
        self.calls[call.id] = call
        call.on_closed = self._call_finished
        if call.finished:  # it ended before it was registered
            self._call_finished(call)
            return
        timeout = self._knobs().connect_timeout_s
        asyncio.get_running_loop().call_later(timeout, self._expire_unconnected, call, timeout)

    def _expire_unconnected(self, call: EmulatedCall, timeout: float) -> None:
        """A call still "connecting" after ``connect_timeout_s`` never will: end it."""
        if call.finished or call.state != "connecting":
            return
        call.state = "failed"
        call.faults.append(f"peer connection not connected within {timeout:g} s")
        call.spawn_detached(call.close("connect timeout"))

    def _call_finished(self, call: EmulatedCall) -> None:
        """Keep the newest finished calls; drop the oldest beyond the limit (never a live one)."""
        for sideband in self._sidebands.pop(call.id, []):
            sideband.outbox.put_nowait(None)  # after the events already queued
        if self.calls.get(call.id) is not call or call.id in self._finished:
            return
        self._finished.append(call.id)
        while len(self._finished) > self._keep_finished:
            self.calls.pop(self._finished.popleft(), None)

    # --- middleware and auth -------------------------------------------------------------
    @web.middleware
    async def _cors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.path.startswith(CORS_PREFIX):
            for name, value in CORS_HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    async def _preflight(self, request: web.Request) -> web.Response:
        # No auth: a browser sends its preflight without the Authorization header it asks for.
        asked = request.headers.get("Access-Control-Request-Headers", "")
        headers = {**PREFLIGHT_HEADERS, "Access-Control-Allow-Headers": allowed_headers(asked)}
        headers["Vary"] = "Access-Control-Request-Headers"
        return web.Response(status=204, headers=headers)

    @web.middleware
    async def _errors_as_json(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            return json_error(exc.status, "http_error", exc.reason)
        except Exception:
            log.exception("emulator: %s %s failed", request.method, request.path)
            return json_error(500, "internal_error", "Internal emulator error.")

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        accepted = self._knobs().auth_schemes
        if scheme.lower() in {s.lower() for s in accepted} and hmac.compare_digest(
            token.strip().encode(), self._api_key.encode()
        ):
            return None
        forms = " or ".join(f"'Authorization: {s} <key>'" for s in accepted)
        return json_error(
            401,
            "invalid_api_key",
            f"Missing or wrong API key: send {forms} with the emulator's key.",
        )

    # --- routes --------------------------------------------------------------------------
    async def _ice_servers(self, request: web.Request) -> web.Response:
        # A loopback service needs no STUN/TURN (host candidates always reach it): the list is
        # empty unless the ice_servers knob sets one.
        servers = [dict(s) for s in self._knobs().ice_servers]
        return self._unauthorized(request) or web.json_response({"ice_servers": servers})

    async def _list_calls(self, request: web.Request) -> web.Response:
        return self._unauthorized(request) or web.json_response(self.snapshots())

    async def _hangup(self, request: web.Request) -> web.Response:
        denied = self._unauthorized(request)
        if denied:
            return denied
        call = self.calls.get(request.match_info["call_id"])
        if call is None or call.transport != "webrtc":  # a WebSocket session has no call id
            return json_error(404, "call_not_found", "No such call.")
        await call.close("hangup")
        return web.json_response({})

    async def _create_call(self, request: web.Request) -> web.Response:
        denied = self._unauthorized(request)
        if denied:
            return denied
        knobs = self._knobs()
        rejected = self._rejected(knobs)
        if rejected is not None:
            return rejected
        form = request.content_type
        if form not in OFFER_FORMS:
            return json_error(
                400,
                "invalid_content_type",
                "Send the SDP offer with Content-Type: application/sdp, or {sdp, session} as "
                "application/json or multipart/form-data.",
            )
        offer = await self._read_offer(request, form)
        if isinstance(offer, web.Response):
            return offer
        sdp, session = offer
        problem = offer_problem(sdp)
        if problem:
            return json_error(400, "invalid_offer", problem)
        too_many = self._too_many_calls(knobs)
        if too_many is not None:
            return too_many
        call = EmulatedCall(self._knobs, self._responder, self._transcriber)
        if session is not None:  # before accept: session.created already carries it
            try:
                update = validate_session_update(call.session, session)
            except ClientError as err:
                await call.close("bad session")
                return json_error(400, err.code, err.message, param=err.param)
            call.session = merge_session(call.session, update)
            call.turns.session_changed()
        self._accepting += 1
        try:
            answer = await call.accept(sdp)
        except Exception as exc:  # aiortc rejects offers with many kinds of exceptions
            log.info("emulator: rejecting an SDP offer: %r", exc)
            await call.close("bad offer")
            return json_error(400, "invalid_offer", f"The SDP offer could not be applied: {exc}")
        finally:
            self._accepting -= 1
        self._register(call)
        if knobs.answer_delay_ms:
            await asyncio.sleep(knobs.answer_delay_ms / 1000)
        location = {"Location": f"/v1/realtime/calls/{call.id}"}
        if form == "application/json":
            servers = [dict(s) for s in knobs.ice_servers]
            body = {"id": call.id, "sdp": answer, "ice_servers": servers}
            return web.json_response(body, status=201, headers=location)
        return web.Response(
            status=201, text=answer, content_type="application/sdp", headers=location
        )

    def _too_many_calls(self, knobs: Knobs) -> web.Response | None:
        if knobs.max_calls is None or self.live_calls() < knobs.max_calls:
            return None
        return json_error(
            429,
            "too_many_calls",
            f"The emulator already has {knobs.max_calls} live calls and WebSocket sessions (its "
            "max_calls knob): hang one up (POST /v1/realtime/calls/<call_id>/hangup, or close "
            "a session's socket) or raise max_calls.",
        )

    def _rejected(self, knobs: Knobs) -> web.Response | None:
        status = knobs.reject_calls_status
        if status is None:
            return None
        return json_error(
            status,
            "emulated_rejection",
            f"Call rejected by the emulator's reject_calls_status={status}.",
        )

    async def _read_offer(self, request: web.Request, form: str) -> tuple[str, Any] | web.Response:
        """The offer's SDP and its session (None when it has none), or the error answer."""
        too_large = json_error(
            413,
            "request_too_large",
            f"The request body is larger than {MAX_BODY_BYTES // 1024} KB: an SDP offer is a few "
            "KB. Send only the offer's SDP text.",
        )
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return too_large
        try:
            if form == "multipart/form-data":
                fields: dict[str, Any] = dict(await request.post())
            else:
                text = await request.text()
        except web.HTTPRequestEntityTooLarge:  # a chunked body with no Content-Length
            return too_large
        except UnicodeDecodeError:
            return json_error(400, "invalid_offer", "The SDP offer is not valid UTF-8 text.")
        except ValueError:
            return json_error(400, "invalid_offer", "The multipart form could not be read.")
        if form == "application/sdp":
            return text, None
        if form == "application/json":
            try:
                fields = json.loads(text)
            except ValueError as exc:
                return json_error(400, "invalid_json", f"The request body is not JSON: {exc}")
            if not isinstance(fields, dict):
                return json_error(400, "invalid_json", 'Send a JSON object {"sdp", "session"}.')
        sdp, session = fields.get("sdp"), fields.get("session")
        if isinstance(sdp, web.FileField):
            sdp = sdp.file.read().decode("utf-8", "replace")
        if not isinstance(sdp, str):
            return json_error(
                400, "missing_sdp", "The request has no 'sdp' field (a string).", param="sdp"
            )
        if form == "multipart/form-data" and isinstance(session, str):
            try:
                session = json.loads(session)
            except ValueError as exc:
                return json_error(
                    400, "invalid_json", f"The 'session' field is not JSON: {exc}", param="session"
                )
        if session is not None and not isinstance(session, dict):
            return json_error(
                400, "invalid_type", "'session' must be a JSON object.", param="session"
            )
        return sdp, session

    # --- WebSocket sessions ---------------------------------------------------------------
    async def _realtime_socket(self, request: web.Request) -> web.StreamResponse:
        """``/v1/realtime``: a call's sideband, or OpenAI's WebSocket transport.

        A call's sideband with ``?call_id=``, OpenAI's WebSocket transport with ``?model=``.
        """
        denied = self._unauthorized(request)
        if denied:
            return denied
        if request.query.get("call_id"):
            return await self._sideband(request, request.query["call_id"])
        model = request.query.get("model", "")
        if not model:
            return json_error(
                400,
                "missing_call_id",
                "Open a WebSocket session at /v1/realtime?model=<model>, or a call's sideband at "
                "/v1/realtime?call_id=<id> (the id from the Location header of POST "
                "/v1/realtime/calls). Inworld's own WebSocket path is "
                f"{SESSION_PATH}?key=<session id>&protocol=realtime.",
                param="call_id",
            )
        return await self._socket_session(request, None, model)

    async def _inworld_session(self, request: web.Request) -> web.StreamResponse:
        """Inworld's WebSocket transport: ``?key=<session id>&protocol=realtime``."""
        denied = self._unauthorized(request)
        if denied:
            return denied
        key, protocol = request.query.get("key", ""), request.query.get("protocol", "")
        if not key or protocol != "realtime":
            missing = "key" if not key else "protocol"
            return json_error(
                400,
                f"missing_{missing}" if not request.query.get(missing) else "invalid_value",
                f"Open the session at {SESSION_PATH}?key=<session id>&protocol=realtime: both "
                "query parameters are required, 'key' is a session id of your choosing (a UUID; "
                "not the API key, which goes in Authorization) and 'protocol' is 'realtime'.",
                param=missing,
            )
        return await self._socket_session(request, key, None)

    async def _socket_session(
        self, request: web.Request, key: str | None, model: str | None
    ) -> web.StreamResponse:
        knobs = self._knobs()
        refused = self._rejected(knobs) or self._too_many_calls(knobs)
        if refused is not None:
            return refused
        # a client that never answers the closing handshake (its loop busy in a cell) is let go
        # after CLOSE_TIMEOUT_S, so stopping the emulator never waits on it for long
        ws = web.WebSocketResponse(max_msg_size=MAX_SESSION_MESSAGE_BYTES, timeout=CLOSE_TIMEOUT_S)
        if not ws.can_prepare(request).ok:
            return json_error(
                400,
                "websocket_required",
                "The realtime session is a WebSocket: send an Upgrade request.",
            )
        call = EmulatedCall(
            self._knobs, self._responder, self._transcriber, transport="websocket", key=key
        )
        if model is not None:  # OpenAI's ?model= sets the session's model
            try:
                update = validate_session_update(call.session, {"model": model})
            except ClientError as err:
                await call.close("bad model")
                return json_error(400, err.code, err.message, param="model")
            call.session = merge_session(call.session, update)
        self._register(call)  # counted against max_calls from here
        try:
            if knobs.answer_delay_ms:
                await asyncio.sleep(knobs.answer_delay_ms / 1000)
            await ws.prepare(request)
        except BaseException:
            await call.close("handshake failed")
            raise
        channel = SocketChannel()
        call.open_socket(channel)  # session.created goes first
        ending: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        writer = asyncio.get_running_loop().create_task(self._write(call, ws, channel, ending))
        self._sideband_tasks.add(writer)
        writer.add_done_callback(self._sideband_tasks.discard)
        try:
            await self._read(ws, ending, call.client_message)
        finally:
            writer.cancel()
            await call.close("websocket closed")
        return ws

    async def _read(
        self,
        ws: web.WebSocketResponse,
        ending: asyncio.Future[tuple[int, bytes]],
        deliver: Callable[[str | bytes], None],
    ) -> None:
        """Hand every client message to ``deliver`` until the socket is to close.

        That is when the client closes, or when ``ending`` gives the code and reason to close
        with. The one reader closes, so the close handshake completes: aiohttp drops the
        transport at once when another task closes a socket that is being read.
        """
        while True:
            receive = asyncio.ensure_future(ws.receive())
            either: set[asyncio.Future[Any]] = {receive, ending}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not receive.done():
                receive.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receive
                code, reason = ending.result()
                await ws.close(code=code, message=reason)
                return
            message = receive.result()
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                deliver(message.data)
            elif message.type in _SOCKET_ENDS:
                return

    async def _write(
        self,
        call: EmulatedCall,
        ws: web.WebSocketResponse,
        channel: SocketChannel,
        ending: asyncio.Future[tuple[int, bytes]],
    ) -> None:
        """Send a session's events in order; on its end marker, have the reader close."""
        try:
            while True:
                text = await channel.outbox.get()
                if text is None:
                    ending.set_result((channel.close_code, channel.close_reason.encode()))
                    return
                await ws.send_str(text)
        except (ConnectionError, RuntimeError):  # the client went away first
            if not ending.done():
                ending.set_result((1000, b""))
        finally:
            channel.readyState = "closed"

    # --- the sideband ----------------------------------------------------------------------
    async def _sideband(self, request: web.Request, call_id: str) -> web.StreamResponse:
        mode = self._knobs().sideband
        call = self.calls.get(call_id)
        if call is not None and call.transport != "webrtc":
            call = None  # call control is for WebRTC calls only
        if mode == "absent" or call is None or call.finished:
            return json_error(404, "call_not_found", "No live call with this call_id.")
        if mode == "refuse":
            return json_error(
                403, "sideband_refused", "The sideband is refused (the emulator's sideband knob)."
            )
        ws = web.WebSocketResponse(max_msg_size=MAX_BODY_BYTES, timeout=CLOSE_TIMEOUT_S)
        if not ws.can_prepare(request).ok:
            return json_error(
                400, "websocket_required", "The sideband is a WebSocket: send an Upgrade request."
            )
        await ws.prepare(request)
        sideband = _Sideband(ws)
        self._sidebands.setdefault(call.id, []).append(sideband)
        call.sidebands.append(sideband.outbox.put_nowait)
        feeder = asyncio.get_running_loop().create_task(self._feed(call, sideband))
        self._sideband_tasks.add(feeder)
        feeder.add_done_callback(self._sideband_tasks.discard)
        try:
            await self._read(ws, sideband.ending, call.receive)
        finally:
            self._forget(call, sideband)
            feeder.cancel()
        return ws

    def _forget(self, call: EmulatedCall, sideband: _Sideband) -> None:
        if sideband.outbox.put_nowait in call.sidebands:
            call.sidebands.remove(sideband.outbox.put_nowait)
        open_ones = self._sidebands.get(call.id, [])
        if sideband in open_ones:
            open_ones.remove(sideband)

    async def _feed(self, call: EmulatedCall, sideband: _Sideband) -> None:
        """Send the sideband its events in order.

        Close it when the call ends or the ``sideband_drop_after`` knob says so.
        """
        ws = sideband.ws
        try:
            while True:
                drop = self._knobs().sideband_drop_after
                if drop is not None and sideband.sent >= drop:
                    self._forget(call, sideband)
                    call.faults.append(f"sideband closed after {sideband.sent} events")
                    sideband.ending.set_result((1011, b"sideband_drop_after knob"))
                    return
                text = await sideband.outbox.get()
                if text is None:
                    sideband.ending.set_result((1000, b"call ended"))
                    return
                await ws.send_str(text)
                sideband.sent += 1
        except (ConnectionError, RuntimeError):  # the client went away first
            self._forget(call, sideband)
