"""The handle a scripted-session call returns: it fills in as records arrive, and ``await``
waits for it in the same cell where the host delivers the page's messages while a cell awaits.

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
    """Something that finishes later. Its attributes fill in as records arrive (read them in a
    later cell), and ``await handle`` waits for it in the same cell where the host allows."""

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
        return self._finished

    def _finish(self, exc: BaseException | None = None) -> bool:
        """Finish once (any thread), with ``exc`` for its awaiters to raise; wakes every
        awaiter. False when already finished. The feature that made the handle calls it."""
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
        """Wait until finished (``timeout`` seconds; None for the handle's default)."""
        if not self._finished and self._delivery is not None:
            await self._delivery.ensure()
        return await self.settled(timeout)

    async def settled(self, timeout: float | None = None) -> Any:
        """``wait()`` without the host probe: for a task on the kernel's loop that may also run
        between cells (``run_script``), where the page's messages arrive whatever the host."""
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
