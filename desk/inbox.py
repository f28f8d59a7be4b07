"""Durable webhook intake with group commit.

``commit(body)`` returns once ``body`` is in the inbox table; ``commit_with(body, records)``
also stores the inbound messages already parsed from it, in the same transaction (the row is
then ``done``: nothing is left to process). Concurrent posts share one ``intake_many`` (one
transaction, one fsync) through ``engine.group_commit``: one post alone is written at once, a
burst of posts shares a commit. Nothing is acknowledged to WhatsApp before its commit
returned.

If the database refuses the batch with its messages (a record it will not take), the bodies
are committed alone and their callers get ``None`` for the records: they process the row the
slow way (one job per part, each with its own retries and dead letters), so one bad record
costs its neighbours one extra commit, never their acknowledgement.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import anyio.abc

from engine.group_commit import GroupCommit, GroupCommitFailed
from storage import InboundRecord, InboundResult, Storage, StorageUnavailable

log = logging.getLogger("zapline.desk")

Intake = tuple[bytes, Sequence[InboundRecord]]
Stored = tuple[int, list[InboundResult] | None]


class IntakeUnavailable(Exception):
    """Storage refused the batch; the webhook must answer 503 so Meta retries."""


class InboxWriter:
    """Batches concurrent webhook bodies (and their messages) into single transactions."""

    def __init__(
        self,
        storage: Storage,
        *,
        max_batch: int = 512,
        observe: Callable[[float], None] | None = None,
        min_interval: float = 0.0,
    ) -> None:
        """``observe`` (optional) gets the seconds each durable commit took, fsync included.
        ``min_interval``: see ``GroupCommit`` (``ZAPLINE_COMMIT_INTERVAL``)."""
        self._group: GroupCommit[Intake, Stored] = GroupCommit(
            self._append, name="inbox intake", max_batch=max_batch, min_interval=min_interval
        )
        self._storage = storage
        self._observe = observe

    async def _append(self, items: list[Intake]) -> list[Stored]:
        started = time.monotonic()
        stored: list[Stored]
        try:
            stored = list(await self._storage.intake_many(items))
        except StorageUnavailable:
            raise
        except Exception as exc:
            if not any(records for _, records in items):
                raise
            log.warning(
                "%d webhooks committed without their messages (processed one by one): %s",
                len(items),
                exc,
            )
            ids = await self._storage.inbox_append([body for body, _ in items])
            stored = [(inbox_id, None) for inbox_id in ids]
        # Every webhook of the batch waited this long before its 200 and its processing: a
        # slow disk shows here first (the bench reads it to tell disk stalls from our code).
        if self._observe is not None:
            self._observe(time.monotonic() - started)
        return stored

    async def commit(self, body: bytes) -> int:
        """Store ``body`` durably as a pending row; return its inbox id.

        Raises ``IntakeUnavailable``.
        """
        inbox_id, _ = await self.commit_with(body, ())
        return inbox_id

    async def commit_with(
        self, body: bytes, records: Sequence[InboundRecord]
    ) -> tuple[int, list[InboundResult] | None]:
        """Store ``body`` and ``records`` (parsed from it) in one durable commit.

        Returns the inbox id and the records' results, or None for them when they were not
        stored (the row is then pending: process it). Raises ``IntakeUnavailable``.
        """
        try:
            return await self._group.submit((body, records))
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
