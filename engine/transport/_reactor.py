"""One reader for every websocket of a server: a readiness loop over a kernel poll set.

Theory of operation
-------------------
A task per websocket was the largest part of an idle connection's memory. Measured with
tracemalloc at 1000 connections (anyio 4.16, asyncio + uvloop): each ``start_soon`` costs a
TaskHandle, its CancelScope (two sets), an Event whose asyncio deque alone is 0.75 KB, a
wrapper coroutine and the Task; then the reader's chain of coroutine frames, and per wait a
future, a closure and a loop handle: about 5 KB of the 18 KB traced per connection, before
the connection held a byte of its own state.

So upgraded sockets are not read by tasks. They are registered in one kernel readiness set
(``select.epoll`` on Linux, the platform selector elsewhere), whose own descriptor is itself
pollable: a single task waits for that descriptor with ``anyio.wait_readable`` (the same call
on asyncio and trio), then reads each ready socket once and hands the bytes to its
connection's synchronous ``on_readable``. The set is level-triggered and a round reads at most
``_BATCH`` sockets once each, so a client that floods cannot starve the others: a socket with
more to read comes back in the next round, after the event loop has run everything else.

Deadlines (an upgrade probe's, a closing connection's grace period) are few: they live in a
dict, and each wait is bounded by the earliest one through a cancel scope whose deadline
``set_deadline`` moves earlier when a nearer one arrives.

Nothing here awaits on behalf of one connection, and a connection whose handling raises is
logged and dropped alone: the loop serves every other socket on.
"""

from __future__ import annotations

import logging
import math
import select
import selectors
import socket
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import anyio

log = logging.getLogger("zapline.engine")


class Readable(Protocol):
    """What the reactor needs of a connection (``_websocket.C``)."""

    @property
    def sock(self) -> socket.socket:
        """The connection's socket."""
        ...

    @property
    def remote(self) -> str:
        """The peer, for logs."""
        ...

    def on_readable(self) -> None:
        """Read once and act on it; never blocks."""
        ...

    def on_deadline(self) -> None:
        """The connection's deadline passed."""
        ...

    def end(self, reason: str) -> None:
        """Close the connection for ``reason``; idempotent."""
        ...


C = TypeVar("C", bound=Readable)

# Sockets read per round before the loop yields to the event loop again.
_BATCH = 256


class _Poller:
    """``select.epoll`` where there is one (no Python object per registration), else a selector."""

    __slots__ = ("_epoll", "_selector")

    def __init__(self) -> None:
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._selector = None if self._epoll is not None else selectors.DefaultSelector()

    def fileno(self) -> int:
        if self._epoll is not None:
            return self._epoll.fileno()
        assert self._selector is not None
        fileno = getattr(self._selector, "fileno", None)
        if fileno is None:
            raise RuntimeError("this platform's selector has no pollable descriptor")
        return int(fileno())

    def register(self, fd: int) -> None:
        if self._epoll is not None:
            self._epoll.register(fd, select.EPOLLIN)
        else:
            assert self._selector is not None
            self._selector.register(fd, selectors.EVENT_READ)

    def unregister(self, fd: int) -> None:
        try:
            if self._epoll is not None:
                self._epoll.unregister(fd)
            else:
                assert self._selector is not None
                self._selector.unregister(fd)
        except (OSError, KeyError, ValueError):
            pass  # already gone with its socket

    def ready(self) -> list[int]:
        if self._epoll is not None:
            return [fd for fd, _ in self._epoll.poll(0, _BATCH)]
        assert self._selector is not None
        return [key.fd for key, _ in self._selector.select(0)[:_BATCH]]

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
        elif self._selector is not None:
            self._selector.close()


class Reactor(Generic[C]):
    """Reads every registered websocket from one task (``run``)."""

    __slots__ = (
        "_poller",
        "_conns",
        "_deadlines",
        "_wait",
        "on_message",
        "on_end",
        "on_overflow",
    )

    def __init__(
        self,
        on_message: Callable[[C, str | bytes], None],
        on_end: Callable[[C, str], None],
        on_overflow: Callable[[C], None],
    ) -> None:
        """Callbacks: a complete message, the connection's end (once, with why), and a
        connection whose outbox overflowed (the owner closes it as a slow consumer)."""
        self._poller = _Poller()
        self._conns: dict[int, C] = {}
        self._deadlines: dict[C, float] = {}
        self._wait: anyio.CancelScope | None = None
        self.on_message = on_message
        self.on_end = on_end
        self.on_overflow = on_overflow

    def __len__(self) -> int:
        return len(self._conns)

    def add(self, conn: C) -> None:
        """Start reading ``conn``. Raises ``OSError`` if its socket is already closed."""
        fd = conn.sock.fileno()
        self._poller.register(fd)
        self._conns[fd] = conn

    def drop(self, conn: C, fd: int) -> None:
        """Stop reading ``conn`` (registered under ``fd``); call before closing its socket."""
        if self._conns.get(fd) is conn:
            del self._conns[fd]
            self._poller.unregister(fd)
        self._deadlines.pop(conn, None)

    def set_deadline(self, conn: C, deadline: float, *, extend: bool) -> None:
        """End ``conn`` at ``deadline`` (only ever earlier, unless ``extend``; inf: never)."""
        current = self._deadlines.get(conn, math.inf)
        if not extend:
            deadline = min(current, deadline)
        if deadline == math.inf:
            self._deadlines.pop(conn, None)
            return
        self._deadlines[conn] = deadline
        wait = self._wait
        if wait is not None and deadline < wait.deadline:
            wait.deadline = deadline

    async def run(self) -> None:
        """Serve the registered sockets until cancelled; then drop every one of them."""
        poller = self._poller
        fd = poller.fileno()
        conns = self._conns
        try:
            while True:
                deadlines = self._deadlines
                with anyio.CancelScope(
                    deadline=min(deadlines.values()) if deadlines else math.inf
                ) as scope:
                    self._wait = scope
                    await anyio.wait_readable(fd)
                self._wait = None
                if deadlines:
                    self._expire(anyio.current_time())
                for ready in poller.ready():
                    conn = conns.get(ready)
                    if conn is None:
                        continue
                    try:
                        conn.on_readable()
                    except Exception:
                        # One connection's bug ends that connection, never the loop.
                        log.exception("websocket from %s failed", conn.remote)
                        conn.end("transport error")
                conn = None  # while waiting, hold no connection that may have ended
        finally:
            self._wait = None
            for conn in list(conns.values()):
                conn.end("transport close")
            poller.close()

    def _expire(self, now: float) -> None:
        due = [conn for conn, when in self._deadlines.items() if when <= now]
        for conn in due:
            self._deadlines.pop(conn, None)
            try:
                conn.on_deadline()
            except Exception:
                log.exception("websocket from %s failed at its deadline", conn.remote)
                conn.end("transport error")
