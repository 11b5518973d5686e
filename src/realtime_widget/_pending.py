"""The handle a scripted-session call returns: it fills in as records arrive.

``await`` waits for it in the same cell where the host delivers the page's messages while a
cell awaits.

Every handle (``Reply``, ``Clip``, ``EventWaiter``, ``Ready``, the experiments' ``Runs``) is a
:class:`Pending`: its attributes fill in from the records whatever happens, so ``r =
w.ask(...)`` in one cell and ``r.text`` in the next works on every host; ``await r`` is the
same-cell path. Handles finish on whatever thread delivered the record, and wake their
awaiters on the awaiting loop (thread-safely).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from ._signalling import running_loop

if TYPE_CHECKING:
    from ._delivery import Delivery

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    """An id unique in this kernel (and unlikely to repeat across kernels): ``ask-3-…``."""
    return f"{prefix}-{next(_ids)}-{time.time_ns() % 1_000_000_000:09d}"


def wake(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any]) -> None:
    """Resolve ``fut`` on its own loop, from any thread (a subshell's handler runs on another)."""

    def settle() -> None:
        if not fut.done():
            fut.set_result(None)

    if running_loop() is loop:
        settle()
    else:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(settle)


class Pending:
    """Something that finishes later: the base of every handle a session call returns.

    ``Reply`` (``ask()``), ``Clip`` (``say()``), ``EventWaiter`` (``wait_for()``), ``Ready``
    (``ready()``) and the experiments' ``Runs`` are handles. Their attributes fill in as the
    call's records arrive, whatever the host, so ``r = w.ask(...)`` in one cell and ``r.text`` in
    the next always works; ``await r`` waits in the same cell where the host delivers the page's
    messages while a cell awaits (else it raises ``MidCellDeliveryError`` rather than wait for
    what cannot arrive). A handle finishes once, on whatever thread delivered its last record,
    and wakes its awaiters on their own loops. Sessions make them; you do not.

    Args:
        delivery: The session's delivery check, which tells whether this host can deliver the
            page's messages mid-cell; None for a handle that never needs the page.

    Example:
        >>> reply = w.ask("Hello!")
        >>> reply.done
        False
        >>> reply = await reply  # or read reply.text in the next cell
        >>> reply.done
        True
    """

    _default_timeout: float | None = 30.0
    _what = "it"

    def __init__(self, delivery: Delivery | None) -> None:
        self._delivery = delivery
        self._state_lock = threading.Lock()
        self._finished = False
        self._exc: BaseException | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = []

    @property
    def done(self) -> bool:
        """Whether the handle has finished (done, failed or stopped); it never goes back."""
        return self._finished

    def _finish(self, exc: BaseException | None = None) -> bool:
        """Finish once (any thread), with ``exc`` for its awaiters to raise; wakes every awaiter.

        False when already finished. The feature that made the handle calls it.
        """
        with self._state_lock:
            if self._finished:
                return False
            self._finished, self._exc = True, exc
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            wake(loop, fut)
        self._on_finished()
        return True

    def _on_finished(self) -> None:
        """A subclass's hook: runs once, right after the handle finished."""

    def _result(self) -> Any:
        return self

    def _timeout_words(self, timeout: float) -> str:
        return f"{self._what} did not finish within {timeout:g} s"

    async def wait(self, timeout: float | None = None) -> Any:
        """Wait until the handle finished; ``await handle`` is the same with the default timeout.

        First checks, once per session, that this host delivers the page's messages while a cell
        awaits (a handle that needs only the service's events skips this while the sideband is up).

        Args:
            timeout: Seconds to wait; None for the handle's own default (``ask()``'s ``timeout``,
                ``wait_for()``'s, a clip's length plus a minute, ...).

        Returns:
            What the handle gives: the :class:`~realtime_widget.types.Reply` or
            :class:`~realtime_widget.types.Clip` itself, the event of an ``EventWaiter``, the
            confirmed session of ``Ready``.

        Raises:
            TimeoutError: It did not finish in time.
            MidCellDeliveryError: The host cannot deliver what it waits for while a cell awaits:
                read the handle in a later cell.
            ConnectionError: The call ended first (and any error the handle finished with).

        Example:
            >>> reply = await w.ask("Hello!").wait(timeout=20)
        """
        if not self._finished and self._delivery is not None:
            await self._delivery.ensure()
        return await self.settled(timeout)

    async def settled(self, timeout: float | None = None) -> Any:
        """``wait()`` without the host check.

        For a task on the kernel's loop that also runs between cells (as ``run_script`` does), where
        the page's messages arrive whatever the host.

        Args:
            timeout: Seconds to wait; None for the handle's own default.

        Returns:
            What the handle gives, as ``wait()`` does.

        Raises:
            TimeoutError: It did not finish in time.
            ConnectionError: The call ended first (and any error the handle finished with).

        Example:
            >>> import asyncio
            >>> clip = w.say(text="Hello")
            >>> task = asyncio.ensure_future(clip.settled(timeout=30))
        """
        timeout = self._default_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        with self._state_lock:
            finished = self._finished
            if not finished:
                self._waiters.append((loop, fut))
        if not finished:
            try:
                await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(self._timeout_words(timeout or 0.0)) from None
            finally:
                with self._state_lock:
                    if (loop, fut) in self._waiters:
                        self._waiters.remove((loop, fut))
        if self._exc is not None:
            raise self._exc
        return self._result()

    def __await__(self) -> Generator[Any, None, Any]:
        return self.wait().__await__()
