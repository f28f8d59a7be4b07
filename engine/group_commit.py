"""Group commit: concurrent callers that each need one write share one storage call.

Theory of operation
-------------------
``submit(item)`` parks the caller until its item was written. One task (``run``) takes every
item parked so far, hands them to ``write_many`` in ONE call (one transaction, one commit),
and wakes each caller with its own result. While a write is in flight new items gather behind
it, so the batch size follows the load: an item alone is written at once (no added delay, no
timer), a burst shares a commit. This is what makes a durable write per webhook affordable at
hundreds per second on SQLite, where the commit, not the statement, is the cost.

``write_many`` returns one entry per item, in order: the item's result, or the exception that
refused that item alone (raised to its caller only). If ``write_many`` itself raises, every
caller of that batch gets a ``GroupCommitFailed`` chained to it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel

__all__ = ["GroupCommit", "GroupCommitFailed", "GroupCommitStatistics"]

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("zapline.group_commit")


class GroupCommitFailed(Exception):
    """The batch holding this item could not be written (or the writer is not running)."""


@dataclass(frozen=True, slots=True)
class GroupCommitStatistics:
    """Counters of one ``GroupCommit``."""

    batches: int
    committed: int
    waiting: int
    largest_batch: int


class _Parked(Generic[T, R]):
    __slots__ = ("item", "done", "result", "error")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = anyio.Event()
        self.result: R | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """Batches concurrent ``submit`` calls into single ``write_many`` calls."""

    def __init__(
        self,
        write_many: Callable[[list[T]], Awaitable[Sequence[R | Exception]]],
        *,
        name: str,
        max_batch: int = 512,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write_many = write_many
        self._name = name
        self._max_batch = max_batch
        self._parked: list[_Parked[T, R]] = []
        self._wakeup = anyio.Event()
        self._running = False
        self._batches = 0
        self._committed = 0
        self._largest = 0

    async def submit(self, item: T) -> R:
        """Write ``item`` with whatever else is waiting; return its result.

        Raises the item's own exception from ``write_many``, or ``GroupCommitFailed`` if the
        writer is not running or the whole batch failed.
        """
        if not self._running:
            raise GroupCommitFailed(f"{self._name} is not running")
        parked: _Parked[T, R] = _Parked(item)
        self._parked.append(parked)
        self._wakeup.set()
        await parked.done.wait()
        if parked.error is not None:
            raise parked.error
        return parked.result  # type: ignore[return-value]  # set with done when no error

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Write batches until cancelled; items still parked then get ``GroupCommitFailed``."""
        self._running = True
        task_status.started()
        try:
            while True:
                # Writes are shielded, so under steady traffic this is where a cancel lands.
                await anyio.lowlevel.checkpoint_if_cancelled()
                if not self._parked:
                    self._wakeup = anyio.Event()
                    await self._wakeup.wait()
                batch = self._parked[: self._max_batch]
                del self._parked[: len(batch)]
                await self._write(batch)
        finally:
            self._running = False
            parked, self._parked = self._parked, []
            for item in parked:
                item.error = GroupCommitFailed(f"{self._name} stopped")
                item.done.set()

    async def _write(self, batch: list[_Parked[T, R]]) -> None:
        try:
            # Shielded: the callers were promised an answer for what reached storage.
            with anyio.CancelScope(shield=True):
                results = await self._write_many([parked.item for parked in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"write_many returned {len(results)} results for {len(batch)}")
        except BaseException as exc:
            log.error("%s: a batch of %d failed: %s", self._name, len(batch), exc)
            for parked in batch:
                failure = GroupCommitFailed(f"{self._name}: {exc!r}")
                failure.__cause__ = exc
                parked.error = failure
                parked.done.set()
            if not isinstance(exc, Exception):
                raise
            return
        self._batches += 1
        self._committed += len(batch)
        self._largest = max(self._largest, len(batch))
        for parked, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                parked.error = result
            else:
                parked.result = result
            parked.done.set()

    def statistics(self) -> GroupCommitStatistics:
        """Return batches written, items committed, items waiting and the largest batch."""
        return GroupCommitStatistics(
            self._batches, self._committed, len(self._parked), self._largest
        )
