"""The HTTP side: ICE servers, the SDP exchange that creates calls, and an inspection route.

A browser-facing service: the ``/v1/realtime/*`` routes answer CORS preflights and carry
``Access-Control-Allow-Origin`` (a page on another origin may POST its offer directly, with the
key in ``Authorization``). Bounded: request bodies (``MAX_BODY_BYTES``), live calls (the
``max_calls`` knob) and calls that never connect (``connect_timeout_s``).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ._call import EmulatedCall
from ._knobs import Knobs
from ._loopback import install_loopback_candidates
from ._responder import Responder, Transcriber

log = logging.getLogger(__name__)

KEEP_FINISHED_CALLS = 100
MAX_BODY_BYTES = 256 * 1024  # an SDP offer is a few KB
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

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, code: str, message: str, type: str | None = None) -> web.Response:
    kind = type or ("server_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"type": kind, "code": code, "message": message, "param": None}}
    return web.json_response(body, status=status)


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
        for path in (
            "/v1/realtime/ice-servers",
            "/v1/realtime/calls",
            "/v1/realtime/calls/{call_id}/hangup",
        ):
            app.router.add_route("OPTIONS", path, self._preflight)
        app.router.add_get("/emulator/calls", self._list_calls)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        bound: Any = self._runner.addresses[0]
        return int(bound[1])

    async def shutdown(self) -> None:
        live = list(self.calls.values())  # closing a call may prune self.calls
        await asyncio.gather(*(call.close("emulator stopped") for call in live))
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
        return web.Response(status=204, headers=PREFLIGHT_HEADERS)

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
        if scheme.lower() in ("bearer", "basic") and hmac.compare_digest(
            token.strip().encode(), self._api_key.encode()
        ):
            return None
        return json_error(
            401,
            "invalid_api_key",
            "Missing or wrong API key: send 'Authorization: Bearer <key>' with the emulator's key.",
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
        if call is None:
            return json_error(404, "call_not_found", "No such call.")
        await call.close("hangup")
        return web.json_response({})

    async def _create_call(self, request: web.Request) -> web.Response:
        denied = self._unauthorized(request)
        if denied:
            return denied
        knobs = self._knobs()
        if knobs.reject_calls_status is not None:
            return json_error(
                knobs.reject_calls_status,
                "emulated_rejection",
                f"Call rejected by the emulator's reject_calls_status={knobs.reject_calls_status}.",
            )
        if request.content_type != "application/sdp":
            return json_error(
                400,
                "invalid_content_type",
                "Send the SDP offer with Content-Type: application/sdp.",
            )
        too_large = json_error(
            413,
            "request_too_large",
            f"The request body is larger than {MAX_BODY_BYTES // 1024} KB: an SDP offer is a few "
            "KB. Send only the offer's SDP text.",
        )
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return too_large
        try:
            sdp = await request.text()
        except web.HTTPRequestEntityTooLarge:  # a chunked body with no Content-Length
            return too_large
        except UnicodeDecodeError:
            return json_error(400, "invalid_offer", "The SDP offer is not valid UTF-8 text.")
        problem = offer_problem(sdp)
        if problem:
            return json_error(400, "invalid_offer", problem)
        if knobs.max_calls is not None and self.live_calls() >= knobs.max_calls:
            return json_error(
                429,
                "too_many_calls",
                f"The emulator already has {knobs.max_calls} live calls (its max_calls knob): "
                "hang one up (POST /v1/realtime/calls/<call_id>/hangup) or raise max_calls.",
            )
        call = EmulatedCall(self._knobs, self._responder, self._transcriber)
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
        return web.Response(
            status=201,
            text=answer,
            content_type="application/sdp",
            headers={"Location": f"/v1/realtime/calls/{call.id}"},
        )
