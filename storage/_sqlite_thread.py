"""The one thread that runs every call on the SQLite connection, in order.

Why not ``anyio.to_thread.run_sync`` (with a CapacityLimiter of 1), which this replaces on
asyncio: its hand-off is general-purpose (a limiter acquired and released, context variables
copied, backend and token lookups, a worker picked from an idle pool and woken through a
``queue.Queue``'s Python-level condition). A webhook pays one hand-off, and at a thousand
webhooks a second that generality was visible: anyio's thread plumbing showed at about 10 %
of the event loop's samples and as futex wake-ups in the kernel's (py-spy and perf, 600
webhooks/s, bench ``fanout --tenants 100``). Here a call is one ``SimpleQueue.put`` (C), a
dedicated thread that runs calls in FIFO order (so one at a time, as the connection needs),
and one ``call_soon_threadsafe`` back.

Semantics kept from ``run_sync``: calls run one at a time in submission order; a caller
cancelled while its call runs gets ``CancelledError`` and the call still completes (its
result is dropped; every storage write is all or nothing, and the ones that matter are
idempotent). Other backends (trio, in tests) keep using anyio's threads, through the same
one-at-a-time limiter.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import sniffio

T = TypeVar("T")

log = logging.getLogger("zapline.storage")

_Call = tuple[Callable[[], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


class SQLiteThread:
    """Runs calls on one thread of its own (asyncio) or anyio's (any other backend)."""

    __slots__ = ("_name", "_calls", "_thread", "_limiter")

    def __init__(self, name: str) -> None:
        self._name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._limiter = anyio.CapacityLimiter(1)

    async def run(self, fn: Callable[[], T]) -> T:
        """Return ``fn()`` run on the thread, after every call submitted before it."""
        if sniffio.current_async_library() != "asyncio":
            return await anyio.to_thread.run_sync(fn, limiter=self._limiter)
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((fn, future, loop))
        return await future

    def stop(self) -> None:
        """Let the thread end once the calls already submitted ran."""
        if self._thread is not None:
            self._calls.put(None)
            self._thread = None

    def _serve(self) -> None:
        calls = self._calls
        while (call := calls.get()) is not None:
            fn, future, loop = call
            try:
                outcome: tuple[bool, Any] = (True, fn())
            except BaseException as exc:  # handed to the caller, whatever it is
                outcome = (False, exc)
            try:
                loop.call_soon_threadsafe(_settle, future, outcome)
            except RuntimeError:  # the loop is closed: nobody waits for this any more
                log.debug("%s: a result arrived after its event loop closed", self._name)


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.cancelled():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
