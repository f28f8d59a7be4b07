"""Durable webhook intake with group commit.

Theory of operation
-------------------
``commit(body)`` parks the caller until its body is in the inbox table. One task (``run``)
takes everything parked, writes it with ONE ``inbox_append`` (one transaction, one fsync), and
wakes the callers with their ids. While a write is in flight new posts gather behind it, so the
batch size follows the load: one post alone is written at once (no added delay), a burst of
posts shares a transaction. Nothing is acknowledged to WhatsApp before its commit returned.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import anyio.abc

from storage import Storage

log = logging.getLogger("zapline.intake")


class IntakeUnavailable(Exception):
    """Storage refused the batch; the webhook must answer 503 so Meta retries."""


class _Pending:
    __slots__ = ("body", "done", "inbox_id", "error")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.done = anyio.Event()
        self.inbox_id = 0
        self.error: BaseException | None = None


class InboxWriter:
    """Batches concurrent webhook bodies into single inbox transactions."""

    def __init__(self, storage: Storage, *, max_batch: int = 512) -> None:
        self._storage = storage
        self._max_batch = max_batch
        self._pending: list[_Pending] = []
        self._wakeup = anyio.Event()
        self._running = False
        self.batches = 0
        self.committed = 0

    async def commit(self, body: bytes) -> int:
        """Store ``body`` durably; return its inbox id. Raises ``IntakeUnavailable``."""
        if not self._running:
            raise IntakeUnavailable("intake is not running")
        item = _Pending(body)
        self._pending.append(item)
        self._wakeup.set()
        await item.done.wait()
        if item.error is not None:
            raise IntakeUnavailable(str(item.error)) from item.error
        return item.inbox_id

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Write batches until cancelled."""
        self._running = True
        task_status.started()
        try:
            while True:
                if not self._pending:
                    self._wakeup = anyio.Event()
                    await self._wakeup.wait()
                batch = self._pending[: self._max_batch]
                del self._pending[: len(batch)]
                await self._write(batch)
        finally:
            self._running = False
            for item in self._pending:
                item.error = RuntimeError("intake stopped")
                item.done.set()

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            with anyio.CancelScope(shield=True):
                ids = await self._storage.inbox_append([item.body for item in batch])
        except Exception as exc:
            log.error("inbox write of %d webhooks failed: %s", len(batch), exc)
            for item in batch:
                item.error = exc
                item.done.set()
            return
        self.batches += 1
        self.committed += len(batch)
        for item, inbox_id in zip(batch, ids, strict=True):
            item.inbox_id = inbox_id
            item.done.set()

    def statistics(self) -> dict[str, Any]:
        """Batches written, bodies committed, bodies waiting."""
        return {"batches": self.batches, "committed": self.committed, "waiting": len(self._pending)}
