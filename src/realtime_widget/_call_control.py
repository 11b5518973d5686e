"""The kernel on the call itself: the service's sideband, and hanging up when nobody else will.

Once a call has the service's id (``Location`` of its create-call answer), the kernel can act
on it without the page (Inworld's call control):

- **The sideband** (``sideband="auto" | True | False``): the kernel opens the call's WebSocket
  (``_sideband.Sideband``, with the key and the auth scheme that worked on the calls endpoint)
  on its own event loop. While it is open, the service's events come in on it too (the inbox
  logs each event once, whichever path brought it first) and the kernel's client events go out
  on it, so tools, ``ask`` and ``wait_for`` need no page. A refusal or a second drop is logged
  once (``sideband.failed``) and everything goes on over the page's data channel.
- **Hang-up when the page is gone**: the page holding a connected call sends a ``stats`` record
  every second; when nothing has come from it for ``PAGE_GRACE_S`` seconds *that the host could
  have delivered*, the kernel hangs the call up (``call.hung_up``, reason ``page_gone``). Hosts
  such as marimo hand the page's messages to the kernel only between cells, and a blocked event
  loop hands over nothing: silence counts only while no cell runs (or the host is known to
  deliver messages while a cell awaits) and the loop is keeping time.
- **Hang-up at kernel exit** (``atexit``): every widget's live call, synchronously, briefly.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import sys
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _bridge as B
from ._delivery import kernel_delivers_mid_cell
from ._sideband import NEEDS_EXTRA, Sideband, SidebandUnavailable

if TYPE_CHECKING:
    from ._delivery import Delivery
    from ._inbox import Inbox
    from ._port import SessionPort
    from ._signalling import Signalling

# How long the page holding a connected call may stay silent before the kernel hangs up: the
# page reports every second, so this is several missed reports (as the OpenAI Agents SDK's
# 5 s grace for a disconnected client).
PAGE_GRACE_S = 5.0
PAGE_TICK_S = 0.5  # how often the silence is checked
SIDEBAND_MODES = ("auto", True, False)
SENT_KEPT = 256  # client events the kernel sent lately (to match a fallback's page copy)


def check_mode(value: Any) -> str | bool:
    """``sideband=``: "auto", True or False; True needs the ``websockets`` package now."""
    if value not in SIDEBAND_MODES or (value != "auto" and not isinstance(value, bool)):
        raise ValueError(f"sideband must be 'auto', True or False; got {value!r}")
    if value is True:
        try:
            import websockets.asyncio.client  # noqa: F401
        except ImportError:
            raise SidebandUnavailable(NEEDS_EXTRA) from None
    return value


class Cells:
    """Whether a notebook cell is running now.

    IPython's run-cell events, or marimo's execution context. Outside both, no cell ever runs.
    """

    def __init__(self) -> None:
        self._running = 0
        self._hooked = False

    def hook(self) -> None:
        """Follow IPython's cells (once; a no-op outside IPython)."""
        if self._hooked:
            return
        self._hooked = True
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
        if shell is None:
            return
        shell.events.register("pre_run_cell", self._started)
        shell.events.register("post_run_cell", self._ended)

    def _started(self, *_args: Any) -> None:
        self._running += 1

    def _ended(self, *_args: Any) -> None:
        self._running = max(0, self._running - 1)

    def running(self) -> bool:
        if self._running:
            return True
        mo = sys.modules.get("marimo._runtime.context")
        if mo is None:
            return False
        try:
            return mo.get_context().execution_context is not None
        except Exception:  # no marimo context here (a script, a test)
            return False


CELLS = Cells()


class PageWatch:
    """Silence from the page holding the call, counted only while it could have been heard.

    ``tick()`` runs every ``tick_s`` on the kernel's loop; ``heard(page)`` on every message.
    """

    def __init__(
        self,
        on_gone: Callable[[], None],
        *,
        cells: Cells,
        mid_cell: Callable[[], bool | None],
        grace_s: float = PAGE_GRACE_S,
        tick_s: float = PAGE_TICK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_gone = on_gone
        self._cells = cells
        self._mid_cell = mid_cell
        self.grace_s = grace_s
        self.tick_s = tick_s
        self._clock = clock
        self.page: str | None = None  # the page watched (None: not watching)
        self.silent_s = 0.0  # silence the host could have delivered through
        self._last_tick = 0.0
        self._last_heard = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def arm(self, page: str, loop: asyncio.AbstractEventLoop | None) -> None:
        """Watch ``page`` from now on (ticking on ``loop``, when given)."""
        now = self._clock()
        self.page, self.silent_s, self._last_tick, self._last_heard = page, 0.0, now, now
        self._cancel_timer()
        if loop is not None:
            self._timer = loop.call_later(self.tick_s, self._scheduled, loop)

    def disarm(self) -> None:
        self.page = None
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def heard(self, page: str) -> None:
        if page == self.page:
            self.silent_s, self._last_heard = 0.0, self._clock()

    def _scheduled(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if self.page is None:
            return
        if not self.tick():
            self._timer = loop.call_later(self.tick_s, self._scheduled, loop)

    def deliverable(self) -> bool:
        """Could a message from the page reach the kernel now?"""
        return not self._cells.running() or self._mid_cell() is True

    def tick(self) -> bool:
        """Count the silence since the last tick.

        True when it reached the grace period (and the page was given up).
        """
        if self.page is None:
            return False
        now = self._clock()
        gap, self._last_tick = now - self._last_tick, now
        # A late tick means the loop was blocked (a cell computing): nothing could be heard.
        on_time = gap <= 2 * self.tick_s + 0.05
        if on_time and self.deliverable():
            self.silent_s += min(gap, now - self._last_heard)
        if self.silent_s < self.grace_s:
            return False
        self.disarm()
        self._on_gone()
        return True


class CallControl:
    """One widget's sideband, page watch and exit hang-up (see the module)."""

    def __init__(
        self,
        port: SessionPort,
        signalling: Signalling,
        inbox: Inbox,
        delivery: Delivery,
        *,
        mode: str | bool,
        show_error: Callable[[str], None],
        cells: Cells = CELLS,
        grace_s: float = PAGE_GRACE_S,
        sideband_factory: Callable[..., Sideband] | None = None,
        no_page_words: str | None = None,
    ) -> None:
        self._port = port
        self._signalling = signalling
        self._inbox = inbox
        self._delivery = delivery
        self.mode = mode
        self._show_error = show_error
        self._factory = sideband_factory  # None: the module's Sideband
        self.sideband: Sideband | None = None
        self._sideband_call = 0
        self._extra_missing_logged = False
        self._sent: deque[tuple[dict[str, Any], int]] = deque(maxlen=SENT_KEPT)
        cells.hook()
        self.watch = PageWatch(
            self._page_gone, cells=cells, mid_cell=lambda: delivery.mid_cell, grace_s=grace_s
        )
        # A call no page takes up (a notebook run with no front end) fails in words, once the
        # grace period passed while a page could have been heard; None: the kernel holds calls.
        # Until a probe answers, the kernel's own version says whether a page could be heard
        # while a cell awaits (a notebook executed headless awaits `w.ready()` in a cell).
        self._no_page_words = no_page_words
        self.nobody = PageWatch(
            self._no_page,
            cells=cells,
            mid_cell=lambda: (
                kernel_delivers_mid_cell() if delivery.mid_cell is None else delivery.mid_cell
            ),
            grace_s=grace_s,
        )
        inbox.on_heard = self._heard
        delivery.no_page = self._probe_unanswered
        _LIVE.add(self)

    def _heard(self, page: str) -> None:
        self.watch.heard(page)
        if self.nobody.page is not None:  # a page answered: it can take the call
            self.nobody.disarm()

    def _no_page(self) -> None:
        call = self._signalling.call
        self._signalling.fail(call, self._no_page_words or "No page took up the call.")

    def _probe_unanswered(self) -> str | None:
        """An awaiting cell's probe got no answer.

        While the call still waits for a page to take it up, on a kernel that lets a page's messages
        in mid-cell, that means no page shows this widget: the call fails now, and the await raises
        the same words (naming the headless way) rather than advice about the kernel. None: the
        silence means something else (an older kernel, a page that took the call and went quiet).
        """
        if self._no_page_words is None or self.nobody.page is None:
            return None
        if not kernel_delivers_mid_cell():
            return None
        self.nobody.disarm()
        self._no_page()
        return self._no_page_words

    # -- the call's life -------------------------------------------------------------------

    def status_changed(self, status: str) -> None:
        """The widget's status: watch the page while a call with an id is connected."""
        s = self._signalling
        if status == "connecting" and self._no_page_words is not None:
            self.nobody.arm("", self._running_loop())
        elif status != "connecting":
            self.nobody.disarm()
        if status == "connected" and s.service_call_id is not None and s.holder is not None:
            self.watch.arm(s.holder, self._running_loop())
        elif status != "connected":
            self.watch.disarm()
        if status in ("disconnected", "failed"):
            self._close_sideband()

    def _page_gone(self) -> None:
        silent = round(self.watch.silent_s, 1)
        self._port.log_local(
            {"type": "page.gone", "page": self._signalling.owner, "silent_s": silent}
        )
        self._signalling.disconnect(reason="page_gone")

    def kernel_exit(self) -> None:
        """The kernel is shutting down: hang the live call up now (briefly, synchronously)."""
        with contextlib.suppress(Exception):  # an exiting kernel must not fail on our account
            self._signalling.hang_up_now("kernel_exit")

    def _running_loop(self) -> asyncio.AbstractEventLoop | None:
        loop = self._port.loop()
        return loop if loop is not None and loop.is_running() else None

    # -- the sideband ----------------------------------------------------------------------

    def answered(self, call: int, service_call_id: str | None) -> None:
        """The service answered ``call`` (on the kernel's loop): open its sideband."""
        if service_call_id is None or self.mode is False:
            return  # no id: the data channel only, as a service without call control
        loop = self._running_loop()
        if loop is None:
            self._failed(call, "no running event loop in this kernel to hold it")
            return
        provider = self._signalling.provider
        sideband: Sideband | None = None
        try:
            sideband = (self._factory or Sideband)(
                provider.sideband_url(service_call_id),
                provider.auth_headers(),
                on_event=lambda event, t_ms: self._inbox.from_sideband(call, event, t_ms),
                on_state=lambda state, reason: self._on_state(call, sideband, state, reason),
            )
        except SidebandUnavailable as exc:
            if not self._extra_missing_logged:  # once per widget, not once per call
                self._extra_missing_logged = True
                self._failed(call, str(exc))
            return
        except ValueError as exc:  # a base URL the sideband cannot be derived from
            self._failed(call, str(exc))
            return
        self._close_sideband()
        self.sideband, self._sideband_call = sideband, call
        self._inbox.two_paths(call)  # before any event: the first copies are matched
        loop.create_task(sideband.start())

    def _on_state(self, call: int, sideband: Sideband | None, state: str, reason: str) -> None:
        if sideband is None or sideband is not self.sideband:
            return  # an older call's sideband winding down
        current = call == self._signalling.call and self._signalling.live
        if state == "open":
            self._port.log_local({"type": "sideband.open", "reason": reason}, call)
            self._inbox.sideband_opened(call)  # its first events wait for the page to catch up
            if current:
                self._signalling.route = self._route
                self._delivery.set_sideband(True)
            else:  # the call ended while it opened
                self._close_sideband()
        elif state == "reconnecting":
            self._port.log_local({"type": "sideband.reconnecting", "reason": reason}, call)
        elif state == "failed":
            self._stop_routing(sideband)
            self._failed(call, reason)
        elif state == "closed":
            self._stop_routing(sideband)
            self._port.log_local({"type": "sideband.closed", "reason": reason}, call)
            if reason != "closed by the kernel":  # the service ended the call
                self._signalling.service_ended(call)

    def _failed(self, call: int, reason: str) -> None:
        self._port.log_local({"type": "sideband.failed", "reason": reason}, call)
        if self.mode is True:
            self._show_error(
                f"The sideband failed ({reason}); the call goes on over the page's data channel."
            )

    def _stop_routing(self, sideband: Sideband) -> None:
        """Everything goes over the data channel again, the events not yet written first."""
        self._signalling.route = None
        self._delivery.set_sideband(False)
        unsent = sideband.unsent()
        if unsent:
            seqs = {id(event): seq for event, seq in self._sent}
            # They are in the log already (from the kernel): the page's copy completes those.
            self._inbox.expect_page_copies(
                self._sideband_call, [(e, seqs[id(e)]) for e in unsent if id(e) in seqs]
            )
            self._signalling.send_events(unsent)

    def _close_sideband(self) -> None:
        sideband, self.sideband = self.sideband, None
        if sideband is None:
            return
        self._signalling.route = None
        self._delivery.set_sideband(False)
        loop = self._running_loop()
        if loop is not None:
            loop.create_task(sideband.close())

    def _route(self, events: list[dict[str, Any]]) -> bool:
        """The signalling's route while the sideband is open: True when it took ``events``."""
        sideband, call = self.sideband, self._signalling.call
        if sideband is None or not sideband.open or call != self._sideband_call:
            return False  # (reconnecting: the page's channel carries them meanwhile)
        if not sideband.send(events):
            return False
        first = self._inbox.sent_by_kernel(call, events, time.time() * 1000.0)
        self._sent.extend((event, first + i) for i, event in enumerate(events))
        if self._signalling.browser_has_call:  # the page's view shows them (and cuts a stop)
            self._port.post(
                B.message(B.SHOWN, call=call, page=self._signalling.owner, events=events)
            )
        return True

    def close(self) -> None:
        self.watch.disarm()
        self.nobody.disarm()
        self._close_sideband()
        _LIVE.discard(self)


# Every widget's call control, for the exit hang-up (weak: a dropped widget is not kept alive).
_LIVE: weakref.WeakSet[CallControl] = weakref.WeakSet()


@atexit.register
def _hang_up_at_exit() -> None:
    for control in list(_LIVE):
        control.kernel_exit()
