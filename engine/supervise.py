"""The nursery tree: start named children, restart the ones that crash, stop them in order.

Theory of operation
-------------------
A ``Supervisor`` owns one anyio task group.  Each child runs in a runner task
that loops: call the child, and when it raises, log, sleep a backoff and call
it again.  The runner wraps the loop in the child's own *shielded* cancel
scope, so exactly one thing cancels a child: ``stop()`` (directly, or through
``stop_all()`` when the ``async with`` block is left, which is also how a
failing ``restart=False`` child brings the tree down: the task group cancels
the host task, and its ``__aexit__`` stops the rest).  The shield is what
makes shutdown ordered: cancelling the task that hosts the supervisor does not
cancel every child at once; it makes ``__aexit__`` stop them one by one in
reverse start order, so a consumer started after its producer stops before it.

Readiness follows anyio: a child whose function takes ``task_status`` is
started with ``task_group.start()`` semantics, so ``start()`` returns once the
child calls ``task_status.started()``.  A child that fails before it was ever
ready is not restarted: the error is raised from ``start()``, where the caller
is waiting for it (a listener that cannot bind should fail the boot, not spin).

Backoff doubles from ``min_backoff`` up to ``max_backoff`` per consecutive
crash, and starts over once a child has run for ``reset_after`` seconds.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

__all__ = ["ChildState", "ChildStatus", "Supervisor"]

logger = logging.getLogger("zapline.supervise")


class ChildStatus(StrEnum):
    """Where a supervised child is in its life."""

    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ChildState:
    """A snapshot of one child: its status, how often it was restarted, its last error's repr."""

    status: ChildStatus
    restarts: int
    last_error: str | None


class _Child:
    def __init__(
        self, name: str, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], restart: bool
    ) -> None:
        self.name = name
        self.fn = fn
        self.args = args
        self.restart = restart
        self.wants_status = _accepts_task_status(fn)
        self.scope = anyio.CancelScope(shield=True)
        self.finished = anyio.Event()
        self.status = ChildStatus.RUNNING
        self.restarts = 0
        self.last_error: str | None = None


class _ReadySignal(anyio.abc.TaskStatus[Any]):
    """The ``task_status`` a child sees: marks it running, and tells ``start()`` the first time."""

    def __init__(self, child: _Child, outer: anyio.abc.TaskStatus[None] | None) -> None:
        self._child = child
        self._outer = outer

    @property
    def signalled(self) -> bool:
        return self._outer is None

    def started(self, value: Any = None) -> None:
        self._child.status = ChildStatus.RUNNING
        if self._outer is not None:
            outer, self._outer = self._outer, None
            outer.started()


def _accepts_task_status(fn: Callable[..., Any]) -> bool:
    try:
        return "task_status" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # some builtins and C callables have no signature
        return False


class Supervisor:
    """Runs named children in one task group; restarts a crashing child with exponential backoff
    (logged, logger "zapline.supervise"); stops them in reverse start order.

    Use as ``async with Supervisor() as sup:``.  Leaving the block, normally or
    by an exception or cancellation, stops every child in reverse start order
    and waits for each one.  A child that ignores cancellation therefore holds
    up shutdown; children must not swallow it.
    """

    def __init__(
        self, *, min_backoff: float = 0.1, max_backoff: float = 10.0, reset_after: float = 30.0
    ) -> None:
        """Create a supervisor that is not running yet; raises ``ValueError`` on bad backoffs."""
        if min_backoff < 0 or max_backoff < min_backoff:
            raise ValueError("need 0 <= min_backoff <= max_backoff")
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._reset_after = reset_after
        self._children: dict[str, _Child] = {}
        self._order: list[str] = []
        self._task_group: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> Supervisor:
        """Open the task group; returns this supervisor."""
        if self._task_group is not None:
            raise RuntimeError("this Supervisor is already running")
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._task_group = tg
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        """Stop all children in reverse start order, then close the task group.

        Returns what the task group returns; raises an ``ExceptionGroup`` holding a
        ``restart=False`` child's error.
        """
        assert self._task_group is not None
        tg, self._task_group = self._task_group, None
        try:
            with anyio.CancelScope(shield=True):
                await self.stop_all()
        finally:
            result = await tg.__aexit__(exc_type, exc, tb)
        return result

    async def start(
        self, name: str, fn: Callable[..., Awaitable[Any]], *args: Any, restart: bool = True
    ) -> None:
        """Start child ``name`` as ``fn(*args)``; returns once it is ready.

        If ``fn`` takes ``task_status``, it is called as ``fn(*args, task_status=...)``
        and this waits for its ``started()``; otherwise this returns at once.
        A child that returns is not restarted; one that raises is restarted after
        a backoff when ``restart`` is true, and otherwise cancels the whole tree.
        Raises ``RuntimeError`` outside ``async with``, ``ValueError`` if ``name``
        is already running, and the child's own error if it fails before ready.
        """
        if self._task_group is None:
            raise RuntimeError("Supervisor.start() needs an active 'async with Supervisor()'")
        old = self._children.get(name)
        if old is not None and not old.finished.is_set():
            raise ValueError(f"a child named {name!r} is already running; stop() it first")
        child = _Child(name, fn, args, restart)
        self._children[name] = child
        if name in self._order:
            self._order.remove(name)
        self._order.append(name)
        await self._task_group.start(self._supervise, child, name=f"zapline.supervise {name}")

    async def stop(self, name: str) -> None:
        """Cancel child ``name`` and wait until it has finished; returns None.

        Stopping a child that already finished is a no-op.  Raises ``KeyError``
        for a name that was never started.
        """
        try:
            child = self._children[name]
        except KeyError:
            raise KeyError(f"no supervised child named {name!r}") from None
        child.scope.cancel()
        await child.finished.wait()

    async def stop_all(self) -> None:
        """Stop every child, last started first, each awaited before the next; returns None."""
        for name in reversed(self._order):
            await self.stop(name)

    def children(self) -> dict[str, ChildState]:
        """Return a snapshot of every child ever started here, by name, in start order."""
        states: dict[str, ChildState] = {}
        for name in self._order:
            child = self._children[name]
            states[name] = ChildState(child.status, child.restarts, child.last_error)
        return states

    # -- the runner ---------------------------------------------------------

    async def _supervise(self, child: _Child, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        signal = _ReadySignal(child, task_status)
        if not child.wants_status:
            signal.started()
        failures = 0
        try:
            with child.scope:
                while True:
                    began = anyio.current_time()
                    try:
                        if child.wants_status:
                            await child.fn(*child.args, task_status=signal)
                        else:
                            await child.fn(*child.args)
                        return
                    except Exception as exc:
                        child.last_error = repr(exc)
                        if not signal.signalled:
                            # Never ready: start() is waiting and re-raises this itself.
                            raise
                        if not child.restart:
                            # The task group cancels the host, whose __aexit__ then
                            # stops the other children in order.
                            raise
                        if anyio.current_time() - began >= self._reset_after:
                            failures = 0
                        delay = min(self._max_backoff, self._min_backoff * 2**failures)
                        failures += 1
                        child.restarts += 1
                        child.status = ChildStatus.RESTARTING
                        logger.error(
                            "child %r crashed; restart %d in %.3fs",
                            child.name,
                            child.restarts,
                            delay,
                            exc_info=exc,
                        )
                        await anyio.sleep(delay)
                        if not child.wants_status:
                            child.status = ChildStatus.RUNNING
        finally:
            child.status = ChildStatus.STOPPED
            child.finished.set()
