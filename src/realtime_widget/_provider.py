"""The kernel's HTTP client for the realtime service: ICE servers, calls and hang-up.

The SDP exchange creates a call and learns the service's id for it.

The API key lives here and in the widget's private attribute only. Every error this module
raises is a ``ProviderError`` whose message is written for a person and has been scrubbed of
the key and of any TURN credential, because the message goes to the widget's ``error`` trait.

Auth: the documents disagree on the scheme (``Bearer`` on the WebRTC pages, ``Basic`` in every
official example), so a 401 with the configured scheme is retried once with the other; the one
that worked is kept for the rest of the session and reported (``on_auth_fallback``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx

from ._errors import RealtimeWidgetError
from ._secrets import Secret, redact

__all__ = [
    "AuthFallback",
    "CallAnswer",
    "Provider",
    "ProviderError",
    "Secret",
    "call_id_from",
    "redact",
]

log = logging.getLogger(__name__)

ICE_SERVERS_PATH = "/v1/realtime/ice-servers"
CALLS_PATH = "/v1/realtime/calls"
DEFAULT_BASE_URL = "https://api.inworld.ai"
_BODY_PREVIEW = 200
AUTH_SCHEMES = ("Bearer", "Basic")
_MAX_CALL_ID = 256
NO_KEY_MESSAGE = (
    "No API key: pass api_key=... or set INWORLD_API_KEY, or run offline with "
    "realtime_widget.Emulator()."
)


class ProviderError(RealtimeWidgetError):
    """A failed request to the realtime service, in words that are safe to show and say what to do.

    Raised when ``await RealtimeSession.connect()`` (or ``async with RealtimeSession(...)``)
    finds the call refused: no key, a wrong key (401/403), a rate limit (429), a URL that is not
    a realtime service, a timeout or a network failure. A ``RealtimeWidget`` shows the same words
    in its ``error`` trait instead (``status`` is ``"failed"``). The message never holds the key
    or a TURN credential. ``status`` is the HTTP status when there was one, else None;
    ``message`` the words.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _service_message(response: httpx.Response, secrets: list[str]) -> str:
    """The service's own words: a JSON ``error.message`` when there is one, else the body start.

    The body is scrubbed of ``secrets`` before it is cut, so no secret survives half-cut.
    """
    body = redact(response.text, secrets)
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        # Decoding turns a key the service echoed as \u-escapes back into the key: scrub again.
        err = data.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return redact(str(err["message"]), secrets)
        if isinstance(err, str):
            return redact(err, secrets)
        if isinstance(data.get("message"), str):
            return redact(str(data["message"]), secrets)
    body = " ".join(body.split())
    return body[:_BODY_PREVIEW] + ("…" if len(body) > _BODY_PREVIEW else "")


@dataclass(frozen=True)
class AuthFallback:
    """The configured auth scheme was refused (HTTP 401) and the other one worked."""

    refused: str  # the scheme the service answered 401 to
    used: str  # the scheme it took, kept for the rest of the session
    path: str  # the endpoint that said so

    def record(self) -> dict[str, Any]:
        """The log's ``auth.fallback`` local record."""
        return {
            "type": "auth.fallback",
            "refused": self.refused,
            "used": self.used,
            "path": self.path,
        }


@dataclass(frozen=True)
class CallAnswer:
    """What creating a call gave back."""

    sdp: str  # the SDP answer, for the page's peer connection
    service_call_id: str | None  # the service's id for the call (None: it sent none)
    auth_scheme: str  # the scheme the service took
    ice_servers: list[dict[str, Any]] | None = None  # the JSON form's list (None: not sent)


def _clean_call_id(value: Any) -> str | None:
    """An opaque id (a UUID from Inworld, ``rtc_…`` from OpenAI), or None if it cannot be one."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > _MAX_CALL_ID or not value.isprintable() or " " in value:
        return None
    return value


def call_id_from(response: httpx.Response) -> str | None:
    """The service's call id, from the answer's ``Location`` or its JSON body.

    The last path segment of ``Location`` (``/v1/realtime/calls/<id>``, relative or absolute),
    else the JSON body's ``id``.
    """
    location = response.headers.get("location", "")
    if location:
        last = unquote(urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1])
        found = _clean_call_id(last)
        if found and found != "calls":  # "/v1/realtime/calls/" names no call
            return found
    if "json" in response.headers.get("content-type", ""):
        try:
            data = response.json()
        except ValueError:
            return None
        if isinstance(data, dict):
            return _clean_call_id(data.get("id"))
    return None


def normalize_ice_servers(payload: Any) -> list[dict[str, Any]]:
    """``{"ice_servers": [...]}`` -> RTCIceServer dicts; ``urls`` may be a string or a list."""
    if not isinstance(payload, dict):
        raise ProviderError("The ICE server list from the service was not a JSON object.")
    servers = payload.get("ice_servers", payload.get("iceServers", []))
    if servers is None:
        return []
    if not isinstance(servers, list):
        raise ProviderError("The service's 'ice_servers' was not a list.")
    out: list[dict[str, Any]] = []
    for entry in servers:
        if not isinstance(entry, dict):
            continue
        urls = entry.get("urls", entry.get("url"))
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not urls:
            continue
        server: dict[str, Any] = {"urls": [str(u) for u in urls]}
        for key in ("username", "credential"):
            if entry.get(key) is not None:
                server[key] = str(entry[key])
        out.append(server)
    return out


def ice_secrets(servers: list[dict[str, Any]]) -> list[str]:
    return [s[k] for s in servers for k in ("username", "credential") if s.get(k)]


class Provider:
    """Synchronous httpx client; the widget runs it on a worker thread so cells never wait."""

    def __init__(
        self,
        base_url: str,
        api_key: Secret,
        *,
        auth_scheme: str = "Bearer",
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        on_auth_fallback: Callable[[AuthFallback], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self.auth_scheme = auth_scheme  # the scheme in use: the configured one until a fallback
        # Called (on the thread that made the request) when the other scheme had to be used.
        self.on_auth_fallback = on_auth_fallback
        self.auth_fallback: AuthFallback | None = None  # the last fallback, if any
        self.last_call: CallAnswer | None = None  # what the last exchange_sdp() gave back
        self.timeout = timeout
        self._transport = transport
        self._turn_secrets: list[str] = []
        self._http: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"Provider(base_url={self.base_url!r}, auth_scheme={self.auth_scheme!r})"

    def _client(self) -> httpx.Client:
        # One client per provider: its connection is reused by the ICE fetch and the SDP
        # exchange that follows (both on the widget's one worker thread).
        if self._http is None:
            self._http = httpx.Client(transport=self._transport, timeout=self.timeout)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    @property
    def has_key(self) -> bool:
        return bool(self._key)

    def secrets(self) -> list[str]:
        """What must never be shown: the key and the TURN credentials last handed out."""
        return [self._key.reveal(), *self._turn_secrets]

    def auth_headers(self) -> dict[str, str]:
        """The ``Authorization`` header with the scheme that works (for the sideband).

        It holds the key: hand it only to a client that sends it to the service.
        """
        return {"Authorization": f"{self.auth_scheme} {self._key.reveal()}"}

    def authorization(self, scheme: str) -> dict[str, str]:
        """The ``Authorization`` header for ``scheme`` (the kernel's own WebSocket).

        It holds the key: hand it only to a client that sends it to the service.
        """
        return {"Authorization": f"{scheme} {self._key.reveal()}"}

    def sideband_url(self, service_call_id: str) -> str:
        """Where the call's sideband is: ``wss://<host>/v1/realtime?call_id=<id>``."""
        from ._sideband import sideband_url

        return sideband_url(self.base_url, service_call_id)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; a 401 is retried once with the other auth scheme.

        The other scheme is kept if it works.
        """
        response = self._attempt(method, path, self.auth_scheme, **kwargs)
        if response.status_code == 401 and self.auth_scheme in AUTH_SCHEMES:
            other = AUTH_SCHEMES[1 - AUTH_SCHEMES.index(self.auth_scheme)]
            retry = self._attempt(method, path, other, **kwargs)
            if retry.status_code != 401:
                fallback = AuthFallback(refused=self.auth_scheme, used=other, path=path)
                self.auth_scheme, self.auth_fallback = other, fallback
                if self.on_auth_fallback is not None:
                    try:
                        self.on_auth_fallback(fallback)
                    except Exception:  # the call goes on; the listener's bug is its own
                        log.exception("the auth fallback listener failed")
                response = retry
            else:
                tried = f"{self.auth_scheme!r} and {other!r}"
                raise self._status_error(method, self.base_url + path, retry, tried=tried)
        if response.is_success:
            return response
        raise self._status_error(method, self.base_url + path, response)

    def _attempt(self, method: str, path: str, scheme: str, **kwargs: Any) -> httpx.Response:
        url = self.base_url + path
        if not self._key:
            raise ProviderError(NO_KEY_MESSAGE)
        headers = {"Authorization": f"{scheme} {self._key.reveal()}"}
        headers.update(kwargs.pop("headers", {}))
        try:
            return self._client().request(method, url, headers=headers, **kwargs)
        except httpx.TimeoutException:
            raise ProviderError(
                f"{method} {url} timed out after {self.timeout:g} s. The service may be busy, "
                "or a proxy/firewall is in the way: try connect() again."
            ) from None
        except httpx.ConnectError as exc:
            reason = redact(str(exc), self.secrets()) or "connection refused"
            raise ProviderError(
                f"Could not reach {self.base_url} ({reason}). Check base_url and your network, "
                "or run offline against realtime_widget.Emulator()."
            ) from None
        except httpx.HTTPError as exc:
            # Only the type: the text of e.g. h11's LocalProtocolError quotes the header.
            raise ProviderError(f"{method} {url} failed ({type(exc).__name__}).") from None

    def _status_error(
        self, method: str, url: str, response: httpx.Response, tried: str | None = None
    ) -> ProviderError:
        status = response.status_code
        said = _service_message(response, self.secrets())
        said = f" The service said: {said}" if said else ""
        if status in (401, 403):
            schemes = (
                f"auth schemes tried: {tried}" if tried else f"auth scheme {self.auth_scheme!r}"
            )
            what = (
                f"The service refused the API key (HTTP {status}). Check api_key / "
                f"INWORLD_API_KEY and the auth scheme ({schemes})."
            )
        elif status == 429:
            retry = response.headers.get("retry-after")
            wait = f"after {retry} s" if retry else "in a moment"
            what = f"The service is rate-limiting this key (HTTP 429). Connect again {wait}."
        elif status >= 500:
            what = f"The service failed with HTTP {status}. Try connect() again shortly."
        else:
            what = f"{method} {url} was rejected with HTTP {status}."
        return ProviderError(what + said, status=status)

    def ice_servers(self) -> list[dict[str, Any]]:
        response = self._request("GET", ICE_SERVERS_PATH, headers={"Accept": "application/json"})
        try:
            payload = response.json()
        except ValueError:
            raise ProviderError(
                f"GET {self.base_url}{ICE_SERVERS_PATH} did not return JSON; is base_url a "
                "realtime service?"
            ) from None
        servers = normalize_ice_servers(payload)
        self._turn_secrets = ice_secrets(servers)
        return servers

    def exchange_sdp(self, offer_sdp: str) -> str:
        """The SDP answer to a raw SDP offer; the rest of the answer is kept in ``last_call``."""
        return self.create_call(offer_sdp).sdp

    def create_call(self, offer_sdp: str, session: dict[str, Any] | None = None) -> CallAnswer:
        """Create a call: the raw SDP form, or with ``session`` the JSON form.

        The JSON form (``{"sdp", "session"}`` -> ``{"id", "sdp", "ice_servers"}``) applies its
        session from the call's first event. The call id comes from ``Location`` or the JSON
        ``id``.
        """
        if session is None:
            response = self._request(
                "POST",
                CALLS_PATH,
                content=offer_sdp.encode(),
                headers={"Content-Type": "application/sdp", "Accept": "application/sdp"},
            )
            answer, servers = response.text, None
        else:
            response = self._request(
                "POST",
                CALLS_PATH,
                content=json.dumps({"sdp": offer_sdp, "session": session}).encode(),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
            )
            answer, servers = self._json_answer(response)
        if not answer.lstrip().startswith("v=0"):
            preview = " ".join(redact(answer, self.secrets()).split())[:80]
            raise ProviderError(
                f"POST {self.base_url}{CALLS_PATH} answered HTTP {response.status_code} with "
                f"something that is not an SDP answer ({preview!r}). Is base_url a realtime "
                "service?",
                status=response.status_code,
            )
        call = CallAnswer(answer, call_id_from(response), self.auth_scheme, servers)
        self.last_call = call
        return call

    def _json_answer(self, response: httpx.Response) -> tuple[str, list[dict[str, Any]] | None]:
        try:
            data = response.json()
        except ValueError:
            return response.text, None  # not JSON: the SDP check says what it is
        if not isinstance(data, dict):
            return "", None
        servers = None
        if "ice_servers" in data:
            servers = normalize_ice_servers(data)
            self._turn_secrets = [*self._turn_secrets, *ice_secrets(servers)]
        sdp = data.get("sdp")
        return (sdp if isinstance(sdp, str) else ""), servers

    def hangup(self, service_call_id: str, *, timeout: float | None = None) -> str | None:
        """End the call on the service.

        None when it is ended; else why not, in words (scrubbed): the caller logs it, a hang-up
        failure is never raised. ``timeout`` (seconds) bounds this request alone (a kernel that
        is exiting waits briefly).
        """
        path = f"{CALLS_PATH}/{quote(service_call_id, safe='')}/hangup"
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            self._request("POST", path, headers={"Accept": "application/json"}, **extra)
        except ProviderError as exc:
            return exc.message
        except Exception as exc:  # whatever it is, the user's cell must not see it
            return redact(f"hang-up failed ({type(exc).__name__})", self.secrets())
        return None
