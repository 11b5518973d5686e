"""The one place tests reach a session's internals (a widget's or a kernel-held one's).

Tests drive a session as a user does wherever they can. Where a test must stand in for the
page or the service, or look at what the kernel did between two messages, it goes through a
function here, so the internals a test depends on are listed in one file:

- ``wait_idle(w)``: the kernel's worker has finished what the last message started;
- ``set_post(w, fn)``: what the session posts to its page goes to ``fn`` instead;
- ``from_page(w, content, buffers)``: a message as the page would send it;
- ``use_service(w, transport)``: the service's HTTP calls go to an ``httpx`` transport;
- the session's parts, for the tests of those parts: ``signalling``, ``control``,
  ``provider``, ``delivery``, ``inbox``, ``transport``, ``api_key``.

ruff's SLF001 (private member access) holds for every test module but this one and the unit
tests of internal objects (``pyproject.toml`` lists them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from realtime_widget._provider import Provider
from realtime_widget._secrets import Secret


def wait_idle(w: Any, timeout: float = 10.0) -> None:
    """Return when the kernel's worker has finished what the last message started."""
    w._wait_idle(timeout)


def set_post(w: Any, fn: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    """Send what the session posts to its page to ``fn``; returns what posted before."""
    before = w._post
    w._post = fn
    return before


def posting(w: Any) -> Callable[[dict[str, Any]], Any]:
    """What the session posts its page's messages with now."""
    return w._post


def from_page(w: Any, content: dict[str, Any], buffers: list[Any] | None = None) -> None:
    """Hand ``content`` to the session as its page's custom message."""
    w._on_custom_msg(w, content, buffers or [])


def set_send_binary(w: Any, fn: Callable[..., Any]) -> None:
    """Send the session's binary messages to its page (audio clips) to ``fn`` instead."""
    w._send_binary = fn


def trait_observers(w: Any) -> int:
    """How many trait observers the widget holds (traitlets' own table): a leak shows here."""
    return sum(len(v) for d in w._trait_notifiers.values() for v in d.values())


def mark_connect_posted(w: Any, call: int = 1) -> None:
    """Mark call ``call`` as started and its ``connect`` message as gone out to the page
    (``tests.conftest.pretend_live`` builds on this and shows the call connected)."""
    s = w._signalling
    s.call = s._posted_call = call


def use_service(w: Any, transport: httpx.BaseTransport, key: str | None = None) -> None:
    """Route the session's HTTP calls to the service (ICE servers, the SDP exchange) through
    ``transport`` (an ``httpx.MockTransport``), with its own key unless ``key`` is given."""
    secret = Secret(key) if key is not None else w._api_key
    w._provider = Provider(w.base_url, secret, transport=transport)


def signalling(w: Any) -> Any:
    return w._signalling


def control(w: Any) -> Any:
    return w._control


def provider(w: Any) -> Any:
    return w._provider


def delivery(w: Any) -> Any:
    return w._delivery


def inbox(w: Any) -> Any:
    return w._inbox


def transport(s: Any) -> Any:
    return s._transport


def api_key(w: Any) -> Secret:
    return w._api_key
