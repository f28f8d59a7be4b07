"""SQLite's inbound write path: every inbound message of a burst in ONE transaction.

A mixin of ``SQLiteStorage``, kept apart because the main module sits at the size limit.
``record_inbound_many`` is what the desk's group commit calls: N messages cost one BEGIN and
one COMMIT instead of N. A refused record (an unknown account) makes the batch fall back to
one transaction per record, so it does not undo the others.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from . import _common as c
from ._records import InboundRecord, InboundResult, StorageError, StorageUnavailable
from ._sqlite_support import write_inbound_many

T = TypeVar("T")


class SQLiteInbound:
    """``record_inbound`` and ``record_inbound_many`` for SQLiteStorage."""

    _path: str

    async def _write(
        self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = False
    ) -> T: ...

    async def record_inbound(
        self,
        *,
        tenant_id: str,
        account_id: str,
        phone_number: str,
        contact_name: str | None,
        whatsapp_message_id: str,
        type: str,
        content: str | None,
        metadata: dict[str, Any],
        timestamp: datetime,
    ) -> InboundResult:
        record = InboundRecord(
            tenant_id,
            account_id,
            phone_number,
            contact_name,
            whatsapp_message_id,
            type,
            content,
            metadata,
            timestamp,
        )
        (result,) = await self.record_inbound_many([record])
        if isinstance(result, StorageError):
            raise result
        return result

    async def record_inbound_many(
        self, records: Sequence[InboundRecord]
    ) -> list[InboundResult | StorageError]:
        # One transaction (one commit) for the whole batch. A record the database refuses
        # (rare: an unknown tenant or account) rolls the batch back; the records are then
        # written one transaction each, so only that one fails.
        now = c.to_iso(c.utcnow())
        if len(records) > 1:
            try:
                batch = await self._write(partial(write_inbound_many, records=records, now=now))
                return list(batch)
            except StorageUnavailable:
                raise
            except StorageError:
                pass
        results: list[InboundResult | StorageError] = []
        for record in records:
            try:
                one = await self._write(partial(write_inbound_many, records=[record], now=now))
                results.append(one[0])
            except StorageUnavailable:
                raise
            except StorageError as exc:
                results.append(exc)
        return results
