"""The host probe: what this notebook host carries between the kernel and the page.

Jupyter hands a widget's messages to the kernel between cells, except where the kernel lets
them in while a cell awaits: ipykernel >= 7.4 dispatches comm messages during an awaiting cell,
and JupyterLab >= 4.4 / Notebook >= 7.4 can send them on a kernel subshell
(``commsOverSubshells``), whose handlers run on another thread. Which one holds is learnt at
run time: the first ``await`` sends the page a ``probe`` and waits a moment for its reply.
Where it does not come, awaiting raises :class:`MidCellDeliveryError` (the fix, and the
next-cell path) instead of blocking a kernel that cannot receive what it waits for.

While the call's sideband is up, the service's events reach the kernel on its own WebSocket,
whatever the host does with the page's messages: a wait that server events alone finish
(``wait_for``, ``ready``, a typed ``ask``) needs no probe then (``ensure(needs_page=False)``, or
the ``server_events()`` view). A clip still needs the page (its start and end are the page's).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _bridge as B
from ._errors import RealtimeWidgetError
from ._pending import new_id, wake

if TYPE_CHECKING:
    from ._port import CallPort

PROBE_TIMEOUT_S = 3.0  # a page answers a probe in milliseconds; the kernel may be busy
PROBE_BYTES = bytes(range(0, 256, 17)) + b"rtw-probe\x00\xff"  # high bytes catch text mangling


def ipykernel_version() -> tuple[int, ...] | None:
    """The version of the ipykernel running this code, or None outside a kernel."""
    mod = sys.modules.get("ipykernel.kernelapp")
    if mod is None or not mod.IPKernelApp.initialized():
        return None
    import ipykernel

    parts = []
    for piece in ipykernel.__version__.split(".")[:3]:
        digits = "".join(itertools.takewhile(str.isdigit, piece))
        parts.append(int(digits or 0))
    return tuple(parts)


def kernel_delivers_mid_cell() -> bool:
    """This kernel hands comm messages to an awaiting cell: ipykernel >= 7.4.

    ("Allow async cell to process Comm messages".) A page that shows the widget is then heard
    mid-cell.
    """
    version = ipykernel_version()
    return version is not None and version >= (7, 4)


class MidCellDeliveryError(RealtimeWidgetError, RuntimeError):
    """This host does not deliver the page's messages to the kernel while a cell awaits.

    Raised by ``await`` on a handle (``ask()``, ``say()``, ``wait_for()``, ``ready()``,
    ``run_script()``'s runs) when what it waits for can only arrive through the page and the
    host hands the page's messages to the kernel only between cells (marimo without the
    sideband, kernels before ipykernel 7). Nothing is lost: read the handle in the next cell, or
    keep the sideband up for server events. A spoken ``ask(audio=...)`` and ``say()`` always
    need the page.
    """


class NoPageError(MidCellDeliveryError):
    """No page took up this widget's call: nothing shows its view.

    A notebook executed with no front end (papermill, nbconvert, nbclient). The call failed;
    ``RealtimeSession`` holds a call in the kernel instead.
    """


def _in_marimo() -> bool:
    mo = sys.modules.get("marimo")
    try:
        return bool(mo is not None and mo.running_in_notebook())
    except Exception:  # an old marimo without running_in_notebook()
        return False


def mid_cell_words(detail: str) -> str:
    version = ipykernel_version()
    kernel = f"ipykernel {'.'.join(map(str, version))}" if version else "this kernel"
    if _in_marimo():
        fix = (
            "marimo hands the page's messages to Python only after a cell ends, and no setting "
            "changes that."
        )
    else:
        fix = (
            f"Fix: upgrade the kernel ({kernel}) to ipykernel >= 7.4 "
            '(pip install -U "ipykernel>=7.4"; it needs Python >= 3.11), or in JupyterLab >= '
            "4.4 / Notebook >= 7.4 turn on Settings > Kernel > 'commsOverSubshells'; then "
            "restart the kernel."
        )
    return (
        f"Messages from the page do not reach the kernel while a cell awaits here ({detail}), "
        "so this await could never finish.\n"
        f"{fix}\n"
        "Or do not await: the handle fills in by itself. Run `r = w.ask(...)` (or `h = "
        "w.say(...)`) in one cell and read `r.text` (`h.ended_ms`) in the next; "
        "`w.on(event_type, fn)` runs code as events arrive.\n"
        "(If no page shows this widget, display it first: the page answers the probe. With no "
        "front end at all (papermill, nbconvert), hold the call in the kernel instead: "
        "RealtimeSession(...).)"
    )


class Delivery:
    """The host probe: what this notebook host carries between the kernel and the page.

    Whether binary buffers survive each way, how long a round trip to the page takes, and
    whether the page's messages reach the kernel while a cell awaits. What it learns is in
    ``w.host_info`` and the log (``probe.result``).
    """

    def __init__(self, port: CallPort, show: Callable[[dict[str, Any]], None]) -> None:
        self._port = port
        self._show = show  # where what it learns is shown (the widget's host_info)
        self._lock = threading.Lock()
        self._sent: dict[str, float] = {}  # probe id -> kernel time sent (ms)
        self._awaiting: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        self._timed_out: set[str] = set()
        self.mid_cell: bool | None = None
        self.sideband = False  # the call's sideband is up: server events need no page
        # Asked when an awaiting cell's probe goes unanswered (call control sets it): the words
        # of a call that no page took up (the call failed in them), or None.
        self.no_page: Callable[[], str | None] = lambda: None
        version = ipykernel_version()
        self._info: dict[str, Any] = {
            "buffers_to_browser": None,
            "buffers_to_kernel": None,
            "mid_cell": None,
            "ipykernel": ".".join(map(str, version)) if version else None,
            "round_trip_ms": None,
            "sideband": False,
        }
        show(dict(self._info))
        port.handle(B.PROBE_REPLY, self.on_reply)

    def kernel_held(self) -> None:
        """The kernel holds the call itself (no page): what it waits for always arrives."""
        with self._lock:
            self.mid_cell = True
            self._info = {
                **self._info,
                "buffers_to_browser": True,
                "buffers_to_kernel": True,
                "mid_cell": True,
                "round_trip_ms": 0.0,
                "transport": "websocket",
            }
            info = dict(self._info)
        self._show(info)

    @property
    def buffers_to_browser(self) -> bool:
        """Send binary payloads as buffers unless a probe showed they are dropped."""
        return self._info["buffers_to_browser"] is not False

    def probe(self) -> str:
        """Send one probe to the page(s); the reply fills in ``host_info``."""
        probe_id = new_id("probe")
        with self._lock:
            self._sent[probe_id] = time.time() * 1000.0
        self._port.post(B.message(B.PROBE, page="", probe_id=probe_id, b64=""), [PROBE_BYTES])
        return probe_id

    def on_reply(self, msg: dict[str, Any]) -> None:
        """A page's ``probe_reply`` (on whatever thread delivered it)."""
        now = time.time() * 1000.0
        probe_id = msg["probe_id"]
        with self._lock:
            sent = self._sent.pop(probe_id, None)
            waiting = self._awaiting.pop(probe_id, None)
            late = probe_id in self._timed_out
            self._timed_out.discard(probe_id)
            if sent is None:
                return  # not ours (another kernel's page, or answered twice)
            info = dict(self._info)
            info["buffers_to_browser"] = msg["buffers"] >= 1 and msg["bytes"] == len(PROBE_BYTES)
            info["buffers_to_kernel"] = msg["received_buffers"] >= 1 and msg["data"] == PROBE_BYTES
            info["round_trip_ms"] = round(now - sent, 1)
            if waiting is not None and not waiting[1].done():
                self.mid_cell = True  # it arrived while a cell awaited it
            elif late and not self._awaiting:
                self.mid_cell = False  # it came only after the awaiting cell gave up
            info["mid_cell"] = self.mid_cell
            self._info = info
        self._show(dict(info))
        self._port.log_local(
            {
                "type": "probe.result",
                "buffers": {
                    "to_browser": info["buffers_to_browser"],
                    "to_kernel": info["buffers_to_kernel"],
                },
                "mid_cell": info["mid_cell"],
                "round_trip_ms": info["round_trip_ms"],
            }
        )
        if waiting is not None:
            wake(*waiting)

    def set_sideband(self, up: bool) -> None:
        """The call's sideband came up or went down (``host_info["sideband"]``)."""
        with self._lock:
            self.sideband = up
            self._info = {**self._info, "sideband": up}
            info = dict(self._info)
        self._show(info)

    def server_events(self) -> Delivery:
        """This host, for a wait that the service's events alone finish (see the module)."""
        return _ServerEvents(self)

    def _set_mid_cell(self, value: bool) -> None:
        with self._lock:
            self.mid_cell = value
            self._info = {**self._info, "mid_cell": value}
            info = dict(self._info)
        self._show(info)

    async def ensure(self, *, needs_page: bool = True) -> None:
        """Return when what this awaiting cell waits for can reach it.

        That is the page's messages, or (``needs_page=False``) the service's events, which the
        sideband brings while it is up. Else raise :class:`MidCellDeliveryError` (never wait
        for what cannot arrive).
        """
        if self.mid_cell is True or (not needs_page and self.sideband):
            return
        if self.mid_cell is False:
            raise MidCellDeliveryError(mid_cell_words("a probe earlier found so"))
        version = ipykernel_version()
        if version is not None and version < (7,):
            # No subshells and no comm dispatch during a cell before ipykernel 7.
            self._set_mid_cell(False)
            raise MidCellDeliveryError(mid_cell_words("kernels before ipykernel 7 hold them"))
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        probe_id = new_id("probe")
        with self._lock:
            self._sent[probe_id] = time.time() * 1000.0
            self._awaiting[probe_id] = (loop, fut)
        self._port.post(B.message(B.PROBE, page="", probe_id=probe_id, b64=""), [PROBE_BYTES])
        try:
            await asyncio.wait_for(fut, PROBE_TIMEOUT_S)
        except asyncio.TimeoutError:
            with self._lock:
                self._awaiting.pop(probe_id, None)
                self._timed_out.add(probe_id)
            words = self.no_page()
            if words is not None:
                raise NoPageError(words) from None
            raise MidCellDeliveryError(
                mid_cell_words(
                    f"a probe sent to the page got no answer within {PROBE_TIMEOUT_S:g} s"
                )
            ) from None
        finally:
            with self._lock:
                self._awaiting.pop(probe_id, None)


class _ServerEvents(Delivery):
    """A view of one ``Delivery`` for handles that server events alone finish.

    The same probe and host facts (every attribute is the viewed one's), but its ``ensure``
    passes while the sideband is up.
    """

    def __init__(self, delivery: Delivery) -> None:  # no probe handler of its own: a view
        self._of = delivery

    def __getattr__(self, name: str) -> Any:  # state (mid_cell, sideband, ...) is the viewed
        return getattr(self._of, name)

    @property
    def buffers_to_browser(self) -> bool:
        return self._of.buffers_to_browser

    def probe(self) -> str:
        return self._of.probe()

    def on_reply(self, msg: dict[str, Any]) -> None:
        self._of.on_reply(msg)

    def set_sideband(self, up: bool) -> None:
        self._of.set_sideband(up)

    def server_events(self) -> Delivery:
        return self

    async def ensure(self, *, needs_page: bool = False) -> None:
        await self._of.ensure(needs_page=needs_page)
