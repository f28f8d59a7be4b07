"""The audit log: who did what in a tenant, recorded off the hot path and written in batches.

Theory of operation
-------------------
``AuditLog.record(tenant_id, user_id, action, target, details)`` is the one call everything
audited goes through (REST routes, socket handlers, the desk). It never waits and never
fails the caller: it stamps the row with the time and the request id of what is being served
(``desk.logcontext.request_id``: the API's per request, the socket handlers' per event) and
appends it to a bounded in-memory buffer.

``run()`` writes the buffer to storage in batches: every ``flush_interval`` seconds, or at
once when ``batch_size`` rows wait; one transaction per batch. While storage is away a batch
goes back to the front of the buffer and is retried on the next tick; the buffer never holds
more than ``max_buffered`` rows: past that the oldest are dropped, and a WARNING says how
many of which actions were lost. ``aclose()`` (a clean stop) writes what is left. A crash
loses at most the last ``flush_interval`` seconds. ``prune_loop()`` deletes rows older than
the retention, in chunks, once at start and then every ``prune_interval`` seconds.

Actions are a closed set (``ACTIONS``, listed in the README); recording another name is a
programming error (ValueError).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import anyio
import anyio.abc
import anyio.lowlevel

from desk import logcontext as logs
from storage import AuditRecord, Storage

__all__ = ["ACTIONS", "AuditLog", "AuditSink", "send_action"]

log = logging.getLogger("zapline.audit")

ACTIONS: frozenset[str] = frozenset(
    {
        "login_ok",  # a user logged in (POST /api/auth/login)
        "login_failed",  # wrong password, or an email nobody has (then no tenant)
        "reply_sent",  # a free-form message accepted for sending (text, location, ...)
        "template_sent",  # a TEMPLATE message accepted for sending
        "media_sent",  # an image, video, audio, document or sticker accepted for sending
        "conversation_assigned",  # assignee changed (assign, transfer, unassign)
        "conversation_stage_changed",  # the card moved to another stage
        "join_denied",  # conversation:join of a conversation the user may not see
        "request_denied",  # a REST call or socket request answered 403/404 on scoping
        "rate_limited",  # a REST call answered 429 (the tenant's limit)
        "rate_limit_disconnect",  # a socket disconnected for flooding
        "read_receipt_sent",  # a read receipt sent to WhatsApp for an inbound message
    }
)

# The longest target kept (characters); a longer one is cut, ending in an ellipsis.
MAX_TARGET = 256

_MEDIA = frozenset({"IMAGE", "VIDEO", "AUDIO", "DOCUMENT", "STICKER"})


def send_action(kind: str) -> str:
    """The action of sending a message of ``kind`` (the contract's MessageType)."""
    if kind == "TEMPLATE":
        return "template_sent"
    return "media_sent" if kind in _MEDIA else "reply_sent"


class AuditSink(Protocol):
    """Where audited actions go; ``AuditLog`` is the real one."""

    def record(
        self,
        tenant_id: str | None,
        user_id: str | None,
        action: str,
        target: str | None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Record one action now (never blocks; raises ValueError for an unknown action)."""
        ...


class AuditLog:
    """The buffered, batched audit writer of one process (see the module docstring)."""

    def __init__(
        self,
        storage: Storage,
        *,
        retention: float = 90 * 86400.0,
        flush_interval: float = 0.5,
        batch_size: int = 500,
        max_buffered: int = 50_000,
        prune_interval: float = 3600.0,
        close_timeout: float = 5.0,
    ) -> None:
        self._storage = storage
        self.retention = retention
        self._interval = flush_interval
        self._batch = batch_size
        self._max = max_buffered
        self._prune_interval = prune_interval
        self.close_timeout = close_timeout
        self._buffer: deque[AuditRecord] = deque()
        self._wakeup = anyio.Event()
        self._dropped: Counter[str] = Counter()
        self.written = 0
        self.dropped = 0
        self.failures = 0

    # -- recording -----------------------------------------------------------------------

    def record(
        self,
        tenant_id: str | None,
        user_id: str | None,
        action: str,
        target: str | None,
        details: Mapping[str, Any] | None = None,
        *,
        request_id: str | None = None,
    ) -> None:
        """Buffer one audited action, stamped now with the current request id.

        Raises ValueError for an action outside ``ACTIONS``; never blocks, never touches
        storage.
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        if target is not None and len(target) > MAX_TARGET:
            # A target can carry what a client sent (a socket's conversation id, a path):
            # kept recognisable, never stored at whatever size it came.
            target = target[: MAX_TARGET - 1] + "…"
        self._buffer.append(
            AuditRecord(
                tenant_id=tenant_id,
                user_id=user_id,
                action=action,
                target=target,
                at=datetime.now(UTC),
                details=dict(details or {}),
                request_id=request_id or logs.request_id.get(),
            )
        )
        self._bound()
        if len(self._buffer) >= self._batch:
            self._wakeup.set()

    def buffered(self) -> int:
        """Rows waiting to be written."""
        return len(self._buffer)

    def _bound(self) -> None:
        while len(self._buffer) > self._max:
            dropped = self._buffer.popleft()
            self._dropped[dropped.action] += 1
            self.dropped += 1

    # -- writing -------------------------------------------------------------------------

    async def flush(self) -> int:
        """Write everything buffered, batch by batch; return how many rows were written.

        A batch storage refuses goes back to the front of the buffer and the error is
        raised (the rows are kept, within the bound).
        """
        written = 0
        while self._buffer:
            batch = [self._buffer.popleft() for _ in range(min(self._batch, len(self._buffer)))]
            try:
                await self._storage.append_audit(batch)
            except BaseException:
                self._buffer.extendleft(reversed(batch))
                self._bound()
                raise
            written += len(batch)
            self.written += len(batch)
        return written

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Write the buffer every ``flush_interval`` (sooner when a batch is full), until
        cancelled; a failed write is retried on the next tick."""
        task_status.started()
        while True:
            with anyio.move_on_after(self._interval):
                await self._wakeup.wait()
            self._wakeup = anyio.Event()
            await self._flush_logged()

    async def _flush_logged(self) -> None:
        try:
            await self.flush()
        except Exception as exc:
            self.failures += 1
            log.warning(
                "audit log: %d rows wait for storage (%s); retrying in %.1f s",
                len(self._buffer),
                exc,
                self._interval,
            )
        self._report_dropped()

    def _report_dropped(self) -> None:
        if self._dropped:
            summary = ", ".join(f"{a} x{n}" for a, n in sorted(self._dropped.items()))
            log.warning(
                "audit log: dropped %d rows (buffer full at %d while storage was away): %s",
                sum(self._dropped.values()),
                self._max,
                summary,
                extra={"dropped": dict(self._dropped)},
            )
            self._dropped.clear()

    async def aclose(self) -> None:
        """Write what is left (a clean stop), for at most ``close_timeout`` seconds; log what
        cannot be written."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(self.close_timeout):
            try:
                await self.flush()
            except Exception as exc:
                log.warning("audit log: %d rows not written at stop: %s", len(self._buffer), exc)
        if self._buffer:
            self._dropped.update(r.action for r in self._buffer)
            self._buffer.clear()
        self._report_dropped()

    # -- retention -----------------------------------------------------------------------

    async def prune(self) -> int:
        """Delete rows older than the retention (none when it is 0); return how many."""
        if self.retention <= 0:
            return 0
        before = datetime.now(UTC) - timedelta(seconds=self.retention)
        total = 0
        while True:
            deleted = await self._storage.prune_audit(before=before, limit=1000)
            total += deleted
            if deleted < 1000:
                return total
            await anyio.lowlevel.checkpoint()  # let the hot path in between chunks

    async def prune_loop(self) -> None:
        """``prune()`` once now and then every ``prune_interval`` seconds, until cancelled."""
        while True:
            started = time.monotonic()
            try:
                deleted = await self.prune()
                if deleted:
                    log.info("audit log: pruned %d rows older than the retention", deleted)
            except Exception as exc:
                log.warning("audit log: pruning failed (retried later): %s", exc)
            await anyio.sleep(max(0.0, self._prune_interval - (time.monotonic() - started)))
