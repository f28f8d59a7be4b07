"""Durable webhook intake with group commit.

``commit(body)`` returns once ``body`` is in the inbox table. Concurrent posts share one
``inbox_append`` (one transaction, one fsync) through ``engine.group_commit``: one post alone
is written at once, a burst of posts shares a commit. Nothing is acknowledged to WhatsApp
before its commit returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc

from engine.group_commit import GroupCommit, GroupCommitFailed
from storage import Storage


class IntakeUnavailable(Exception):
    """Storage refused the batch; the webhook must answer 503 so Meta retries."""


class InboxWriter:
    """Batches concurrent webhook bodies into single inbox transactions."""

    def __init__(
        self,
        storage: Storage,
        *,
        max_batch: int = 512,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        """``observe`` (optional) gets the seconds each durable commit took, fsync included."""
        self._group: GroupCommit[bytes, int] = GroupCommit(
            self._append, name="inbox intake", max_batch=max_batch
        )
        self._storage = storage
        self._observe = observe

    async def _append(self, bodies: list[bytes]) -> list[int]:
        started = time.monotonic()
        ids = await self._storage.inbox_append(bodies)
        # Every webhook of the batch waited this long before its 200 and its processing: a
        # slow disk shows here first (the bench reads it to tell disk stalls from our code).
        if self._observe is not None:
            self._observe(time.monotonic() - started)
        return ids

    async def commit(self, body: bytes) -> int:
        """Store ``body`` durably; return its inbox id. Raises ``IntakeUnavailable``."""
        try:
            return await self._group.submit(body)
        except GroupCommitFailed as exc:
            raise IntakeUnavailable(str(exc)) from exc

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Write batches until cancelled."""
        await self._group.run(task_status=task_status)

    def statistics(self) -> dict[str, Any]:
        """Batches written, bodies committed, bodies waiting, the largest batch."""
        s = self._group.statistics()
        return {
            "batches": s.batches,
            "committed": s.committed,
            "waiting": s.waiting,
            "largestBatch": s.largest_batch,
        }
