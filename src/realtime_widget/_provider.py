"""The kernel's HTTP client for the realtime service: ICE servers and the SDP exchange.

The API key lives here and in the widget's private attribute only. Every error this module
raises is a ``ProviderError`` whose message is written for a person and has been scrubbed of
the key and of any TURN credential, because the message goes to the widget's ``error`` trait.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from ._secrets import Secret, redact

__all__ = ["Provider", "ProviderError", "Secret", "redact"]

ICE_SERVERS_PATH = "/v1/realtime/ice-servers"
CALLS_PATH = "/v1/realtime/calls"
DEFAULT_BASE_URL = "https://api.inworld.ai"
_BODY_PREVIEW = 200
NO_KEY_MESSAGE = (
    "No API key: pass api_key=... or set INWORLD_API_KEY, or run offline with "
    "realtime_widget.Emulator()."
)


class ProviderError(Exception):
    """A failed call to the service, with a message that is safe to show and says what to do."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _service_message(response: httpx.Response, secrets: list[str]) -> str:
    """The service's own words: a JSON ``error.message`` when there is one, else the body start
    (scrubbed of ``secrets`` before it is cut, so no secret survives half-cut)."""
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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self.auth_scheme = auth_scheme
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

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = self.base_url + path
        if not self._key:
            raise ProviderError(NO_KEY_MESSAGE)
        headers = {"Authorization": f"{self.auth_scheme} {self._key.reveal()}"}
        headers.update(kwargs.pop("headers", {}))
        try:
            response = self._client().request(method, url, headers=headers, **kwargs)
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
        if response.is_success:
            return response
        raise self._status_error(method, url, response)

    def _status_error(self, method: str, url: str, response: httpx.Response) -> ProviderError:
        status = response.status_code
        said = _service_message(response, self.secrets())
        said = f" The service said: {said}" if said else ""
        if status in (401, 403):
            what = (
                f"The service refused the API key (HTTP {status}). Check api_key / "
                f"INWORLD_API_KEY and the auth scheme ({self.auth_scheme!r})."
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
        response = self._request(
            "POST",
            CALLS_PATH,
            content=offer_sdp.encode(),
            headers={"Content-Type": "application/sdp", "Accept": "application/sdp"},
        )
        answer = response.text
        if not answer.lstrip().startswith("v=0"):
            preview = " ".join(redact(answer, self.secrets()).split())[:80]
            raise ProviderError(
                f"POST {self.base_url}{CALLS_PATH} answered HTTP {response.status_code} with "
                f"something that is not an SDP answer ({preview!r}). Is base_url a realtime "
                "service?",
                status=response.status_code,
            )
        return answer
