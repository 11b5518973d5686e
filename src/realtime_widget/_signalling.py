"""A widget's calls.

Numbering, which page holds each one, client events queued for a call's ``connect`` message, the
HTTP work on a worker thread, and offer / answer / failure.

Nothing here knows anywidget: the widget hands it a ``Host`` (post a message, show a status,
log a record, build the session), so every path is testable with plain objects.

The service's id for a call (``Location`` of its create-call answer) is kept per call: it is
what the kernel hangs up with (``hang_up``), and what the sideband opens with. While a sideband
is up, ``route`` takes the client events the kernel sends (the page never sees them).

Pages: several front ends (tabs, a shared notebook) can show one widget; one holds its call.
Before any offer, the page that was asked (its Connect button) speaks for the call, or any
page when Python asked; the first page to offer then holds it, and only that page's reports
and requests count for it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from . import _bridge as B
from ._provider import NO_KEY_MESSAGE, AuthFallback, Provider, ProviderError


class Host(Protocol):
    """What the signalling needs from its session (a CallHost)."""

    def post(self, message: dict[str, Any]) -> None: ...
    def show_status(self, status: str, error: str | None) -> None: ...
    def log_local(self, event: dict[str, Any], call: int) -> None: ...
    def session_update(self) -> dict[str, Any]: ...
    def wants_mic(self) -> bool: ...
    def call_started(self, call: int) -> None: ...
    def call_answered(self, call: int, service_call_id: str | None) -> None: ...


# Hang-up reasons, as ``call.hung_up`` records them.
HANGUP_REASONS = ("disconnect", "page_gone", "kernel_exit", "call_ended")
# A hang-up at kernel exit must not hold the kernel's shutdown for long.
EXIT_HANGUP_TIMEOUT_S = 2.0
# How long the page gets to let go of a call before the kernel asks the service to end it.
PAGE_FIRST_S = 0.5
# Client events the kernel sends itself (True: they went; False: send them to the page).
Route = Callable[[list[dict[str, Any]]], bool]


# How long ICE servers fetched ahead of a click stay usable (TURN credentials expire; a
# service's are valid for minutes at least, and each fetched list serves one call).
ICE_CACHE_S = 30.0


@dataclass(frozen=True)
class CallHost:
    """The session as its signalling sees it: callbacks, so no part of it is the widget."""

    post: Callable[[dict[str, Any]], None]  # a message to whatever holds the call
    show_status: Callable[[str, str | None], None]  # the session's one status writer
    log_local: Callable[[dict[str, Any], int], None]
    session_update: Callable[[], dict[str, Any]]  # the full first session.update
    wants_mic: Callable[[], bool]
    call_started: Callable[[int], None]
    call_answered: Callable[[int, str | None], None] = lambda _call, _id: None


def unexpected(doing: str, exc: BaseException) -> str:
    # Only the exception's type: its text could quote a request header.
    return f"Unexpected {type(exc).__name__} while {doing}; connect() again, or report a bug."


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Signalling:
    def __init__(self, host: Host, provider: Provider, *, needs_ice: bool = True) -> None:
        self.host = host
        self.provider = provider
        # A page's WebRTC call fetches ICE servers first; a call the kernel holds starts at once.
        self.needs_ice = needs_ice
        # The service's id of each call that has one (from its create-call answer).
        self.service_call_ids: dict[int, str] = {}
        self._hung_up: set[int] = set()  # calls whose hang-up was asked for (once each)
        self.route: Route | None = None  # while a sideband is up: it takes client events
        self.status = "disconnected"
        self.call = 0  # the number of the current (or last) call
        self._posted_call = 0  # the last call whose `connect` message went to the browser
        self._connect_page = ""  # the page that was asked ("" = whichever answers)
        self._call_page: str | None = None  # the page holding the call, once it offered
        # Pages that started the current call (their `call.start` record): asked by Python,
        # each of them tries, and one giving up does not end the others' attempt.
        self._attempting: set[str] = set()
        # Client events waiting for the call's `connect` message (they travel inside it).
        self._pending: list[dict[str, Any]] = []
        # Guards the call's state and keeps message order against the worker thread.
        self._lock = threading.RLock()
        # Inside a kernel, work finished on the worker thread is handed back to the kernel's
        # event loop, so traits change and messages go out on the main thread, between cells.
        self._loop = running_loop()
        self._executor: ThreadPoolExecutor | None = None
        self._work: list[Future[Any]] = []
        self._ice_cache: tuple[float, list[dict[str, Any]]] | None = None  # (when, servers)
        self._shown = False  # shown in a page: each call's end fetches the next call's list

    @property
    def provider(self) -> Provider:
        return self._provider

    @provider.setter
    def provider(self, provider: Provider) -> None:
        self._provider = provider
        if provider.on_auth_fallback is None:  # a fallback is logged, for whichever provider
            provider.on_auth_fallback = self._auth_fell_back

    def _auth_fell_back(self, fallback: AuthFallback) -> None:  # on the worker thread
        self._on_main(lambda call: self.host.log_local(fallback.record(), call), self.call)

    # -- state -------------------------------------------------------------------------------

    @property
    def service_call_id(self) -> str | None:
        """The service's id for the current (or last) call, once its answer came."""
        return self.service_call_ids.get(self.call)

    @property
    def live(self) -> bool:
        return self.status in ("connecting", "connected")

    def current(self, call: int) -> bool:
        return call == self.call and self.live

    @property
    def event_loop(self) -> asyncio.AbstractEventLoop | None:
        """The kernel's event loop this call hands work back to (None outside a loop)."""
        return self._loop

    @property
    def owner(self) -> str:
        """The page holding the current call ("" while no page has offered yet)."""
        return self._call_page or ""

    @property
    def holder(self) -> str | None:
        """The page holding the current call, or None while no page has offered."""
        return self._call_page

    @property
    def browser_has_call(self) -> bool:
        """The live call's `connect` message has gone out: the browser knows the call."""
        return self.live and self._posted_call == self.call

    def speaks_for(self, page: str) -> bool:
        """May ``page`` report on or act for the current call?"""
        if self._call_page is not None:
            return page == self._call_page
        return self._connect_page in ("", page)

    def _set(self, status: str, error: str | None = None) -> None:
        self.status = status
        self.host.show_status(status, error)
        if self._shown and status in ("disconnected", "failed"):
            self.prefetch_ice()  # the next click starts at once too

    # -- actions -----------------------------------------------------------------------------

    def connect(self, page: str = "") -> None:
        """Start a call (a no-op while one is live). ``page``: the front end that asked."""
        with self._lock:
            if self.live:
                return
            self.call += 1
            call = self.call
            self._call_page = None
            self._connect_page = page
            self._attempting = set()
            self.host.call_started(call)
            self._set("connecting", "")
        if not self.provider.has_key:
            self.fail(call, NO_KEY_MESSAGE)
            return
        if not self.needs_ice:
            self._start_call(call, [])
            return
        cached, self._ice_cache = self._fresh_ice(), None  # each fetched list serves one call
        if cached is not None:  # fetched when the widget was shown: start now, no thread hop
            try:
                self._start_call(call, cached)
            except Exception as exc:
                self.fail(call, unexpected("starting the call", exc))
            return
        self.submit(self._fetch_ice, call)

    def disconnect(self, reason: str = "disconnect") -> None:
        """End the call: the page lets go of it, and the service is asked to end it."""
        with self._lock:
            was_live = self.live
            page_had_it = self.browser_has_call
            if page_had_it:
                self.host.post(B.message(B.DISCONNECT, call=self.call, page=self.owner))
            self._drop_pending("the call ended before it started")
            # The call number stays, so late events of this call are still logged under it.
            self._set("disconnected")
        if was_live:
            # The page lets go first: a service that ended the call sooner would close the
            # page's channel under it, and the page would report a failure, not a hang-up.
            self.hang_up(self.call, reason, after_s=PAGE_FIRST_S if page_had_it else 0.0)

    def send_events(self, events: list[dict[str, Any]]) -> None:
        with self._lock:
            route = self.route
            if route is not None and self.live and route(events):
                return  # the sideband took them
            if self.browser_has_call:
                self.host.post(B.message(B.SEND, call=self.call, page=self.owner, events=events))
            else:  # no call, or its `connect` message not out yet: it will carry them
                self._pending.extend(events)

    def fail(self, call: int, message: str, *, log: bool = True) -> None:
        """Fail ``call`` if it is still the live one.

        ``log=False`` when the browser has recorded the failure itself, so each failure is in the
        log once.
        """
        with self._lock:
            if not self.current(call):
                return  # e.g. the user hung up meanwhile: a late error must not revive it
            self._set("failed", message)
            self._drop_pending("the call failed")
        if log:
            self.host.log_local({"type": "call.failed", "detail": message}, call)
        self.hang_up(call, "call_ended")

    # -- hanging up --------------------------------------------------------------------------

    def service_ended(self, call: int) -> None:
        """The service said the call is over (its sideband closed normally): no hang-up."""
        with self._lock:
            self._hung_up.add(call)

    def hang_up(self, call: int, reason: str, after_s: float = 0.0) -> bool:
        """Ask the service to end ``call`` (once; on the worker thread).

        False when there is nothing to hang up: the service gave no id, or it was asked already.
        """
        with self._lock:
            service_call_id = self.service_call_ids.get(call)
            if service_call_id is None or call in self._hung_up:
                return False
            self._hung_up.add(call)
        self.submit(self._hang_up, call, service_call_id, reason, after_s)
        return True

    def hang_up_now(self, reason: str, timeout: float = EXIT_HANGUP_TIMEOUT_S) -> bool:
        """Hang up the live call on this thread, within ``timeout``; True when it was asked.

        The kernel is exiting: no worker thread or event loop is left to wait for.
        """
        with self._lock:
            call = self.call
            service_call_id = self.service_call_ids.get(call)
            if not self.live or service_call_id is None or call in self._hung_up:
                return False
            self._hung_up.add(call)
        problem = self.provider.hangup(service_call_id, timeout=timeout)
        self._hung_up_record(call, service_call_id, reason, problem)
        return True

    def _hang_up(
        self, call: int, service_call_id: str, reason: str, after_s: float = 0.0
    ) -> None:  # worker thread
        if after_s > 0:
            time.sleep(after_s)
        problem = self.provider.hangup(service_call_id)  # never raises: the reason, in words
        self._on_main(self._hung_up_record, call, service_call_id, reason, problem)

    def _hung_up_record(
        self, call: int, service_call_id: str, reason: str, problem: str | None
    ) -> None:
        if problem is None:
            event = {"type": "call.hung_up", "service_call_id": service_call_id, "reason": reason}
        else:
            event = {
                "type": "call.hangup_failed",
                "service_call_id": service_call_id,
                "reason": reason,
                "error": problem,
            }
        self.host.log_local(event, call)

    def _drop_pending(self, reason: str) -> None:
        """Events queued for a call that never started are not sent on a much later one."""
        if self._pending:
            dropped, self._pending = self._pending, []
            self.host.log_local(
                {"type": "pending.dropped", "reason": reason, "events": dropped}, self.call
            )

    # -- from the browser --------------------------------------------------------------------

    def offer(self, call: int, page: str, sdp: str | None) -> None:
        with self._lock:
            if not self.current(call):  # an orphan (the user hung up meanwhile): drop it
                self.host.post(B.message(B.DISCONNECT, call=call, page=page))
                return
            if self._call_page is None and self._connect_page in ("", page):
                self._call_page = page  # the first page to offer holds the call
            elif page != self._call_page:  # another page showing this widget lost the race
                self.host.post(B.message(B.DISCONNECT, call=call, page=page))
                return
        if sdp is None:
            self.host.post(B.message(B.DISCONNECT, call=call, page=page))
            self.fail(call, "The browser sent an offer without SDP; connect() again.")
        else:
            self.submit(self._answer_offer, call, sdp)

    def attempt_started(self, call: int, page: str) -> None:
        """``page`` has started trying ``call`` (its ``call.start`` record arrived)."""
        with self._lock:
            if call == self.call and self._call_page is None:
                self._attempting.add(page)

    def state(self, call: int, page: str, state: str, detail: str) -> bool:
        """A page's report on a call; False when it was not that page's to make."""
        with self._lock:
            if call != self.call:
                return True  # an old call's late report: nothing to change
            if not self.speaks_for(page):
                return False
            if self._call_page is None and state in ("failed", "disconnected"):
                self._attempting.discard(page)
                if self._attempting:
                    return False  # other pages are still trying: one giving up is not the end
            if state == "failed":  # the browser has logged it (call.failed) already
                self.fail(call, detail or "The call failed.", log=False)
                return True
            if self.status in ("disconnected", "failed") and state != "disconnected":
                return True  # over already: a late report must not revive the call
            was_live = self.live
            self._set(state, detail or None)
        if state == "disconnected" and was_live:  # the page ended it: so does the service
            self.hang_up(call, "call_ended")
        return True

    # -- worker thread -----------------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="realtime-widget")
        self._work = [f for f in self._work if not f.done()]
        self._work.append(self._executor.submit(fn, *args))

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait for provider calls in flight (for tests and scripts; cells never need it)."""
        for f in list(self._work):
            f.result(timeout=timeout)

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _on_main(self, fn: Callable[..., Any], call: int, *args: Any) -> None:
        """Run ``fn(call, ...)`` on the kernel's event loop when there is one (else right here).

        If it raises, the call fails with words instead of hanging in "connecting".
        """

        def guarded() -> None:
            try:
                fn(call, *args)
            except Exception as exc:
                self.fail(call, unexpected("starting the call", exc))

        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(guarded)
        else:
            guarded()

    def prefetch_ice(self) -> None:
        """Fetch the ICE servers ahead of a click (the widget was displayed).

        A connect soon after then starts at once, and the pages get the list too (see
        ``prepare``). Quiet: a failure here is reported by the connect itself.
        """
        self._shown = True
        if self.needs_ice and self.provider.has_key and not self.live and self._fresh_ice() is None:
            self.submit(self._prefetch)

    def prepare(self) -> None:
        """A page asks for the ICE servers ahead of its click.

        It gets the fresh list now, or a fetch is made whose list goes to the pages when it
        comes.
        """
        cached = self._fresh_ice()
        if cached is not None:
            self._offer_ice(cached)
        else:
            self.prefetch_ice()

    def _prefetch(self) -> None:  # on the worker thread
        try:
            servers = self.provider.ice_servers()
        except Exception:  # the connect will fetch again, and say why if it fails
            return
        self._ice_cache = (time.monotonic(), servers)
        # The pages get the list too (a message: TURN credentials never enter synced state):
        # a Connect click then builds its peer connection at once, while its request travels.
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self._offer_ice, servers)
        else:
            self._offer_ice(servers)

    def _offer_ice(self, servers: list[dict[str, Any]]) -> None:
        cached = self._ice_cache
        if cached is None or cached[1] is not servers or self.live:
            return  # a call took it meanwhile
        self.host.post(
            B.message(
                B.ICE,
                page="",
                ice_servers=servers,
                gather_timeout_ms=B.DEFAULT_GATHER_TIMEOUT_MS,
                ttl_ms=int(ICE_CACHE_S * 1000),
            )
        )

    def _fresh_ice(self) -> list[dict[str, Any]] | None:
        cached = self._ice_cache
        if cached is not None and time.monotonic() - cached[0] < ICE_CACHE_S:
            return cached[1]
        return None

    def _fetch_ice(self, call: int) -> None:  # on the worker thread
        cached, self._ice_cache = self._fresh_ice(), None  # each fetched list serves one call
        try:
            ice_servers = cached if cached is not None else self.provider.ice_servers()
        except ProviderError as exc:
            self._on_main(self.fail, call, exc.message)
        except Exception as exc:
            self._on_main(self.fail, call, unexpected("fetching the ICE servers", exc))
        else:
            self._on_main(self._start_call, call, ice_servers)

    def _start_call(self, call: int, ice_servers: list[dict[str, Any]]) -> None:
        with self._lock:  # held across the check and the post: disconnect() cannot slip in
            if not self.current(call):
                return
            queued, self._pending = self._pending, []
            self._posted_call = call
            self.host.post(
                B.message(
                    B.CONNECT,
                    call=call,
                    ice_servers=ice_servers,  # TURN credentials travel here and nowhere else
                    session_update=self.host.session_update(),
                    queued=queued,
                    mic=self.host.wants_mic(),
                    gather_timeout_ms=B.DEFAULT_GATHER_TIMEOUT_MS,
                    page=self._connect_page,
                )
            )

    def _answer_offer(self, call: int, sdp: str) -> None:  # on the worker thread
        try:
            answer = self.provider.create_call(sdp)
        except ProviderError as exc:
            self._on_main(self._refuse_offer, call, exc.message)
        except Exception as exc:
            self._on_main(self._refuse_offer, call, unexpected("exchanging the SDP", exc))
        else:
            self._on_main(
                self._deliver_answer, call, answer.sdp, answer.service_call_id, answer.auth_scheme
            )

    def _deliver_answer(
        self, call: int, answer: str, service_call_id: str | None = None, auth_scheme: str = ""
    ) -> None:
        with self._lock:
            current = self.current(call)
            if service_call_id is not None:
                self.service_call_ids[call] = service_call_id
            if current:
                self.host.post(B.message(B.ANSWER, call=call, page=self.owner, sdp=answer))
        if service_call_id is not None:  # (a service without call control: as before)
            self.host.log_local(
                {
                    "type": "call.answered",
                    "service_call_id": service_call_id,
                    "auth_scheme": auth_scheme,
                },
                call,
            )
        if not current:  # hung up meanwhile: the service's call must end too
            self.hang_up(call, "disconnect")
            return
        self.host.call_answered(call, service_call_id)

    def _refuse_offer(self, call: int, message: str) -> None:
        with self._lock:
            if self.current(call):
                # The browser records the failure (and reports it back) on this message.
                self.host.post(
                    B.message(B.SIGNAL_ERROR, call=call, page=self.owner, message=message)
                )
            self.fail(call, message, log=False)
