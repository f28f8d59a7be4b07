"""PostgreSQL storage: the multi-node profile, an asyncpg pool (1 to 10 connections).

asyncpg runs on asyncio only, so this implementation needs the asyncio backend (the
production one); it says so plainly when started under trio. Uniqueness races are settled by
the database (``ON CONFLICT``), never by a read-then-write in Python. JSON columns are jsonb,
encoded and decoded with orjson by a codec set on every pooled connection. Every method's
SQL is shared with SQLite (``_sql_storage.py``) except the inbound write path
(``_postgres_inbound.py``) and the inbox append (one statement for the whole batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import ClassVar, TypeVar

import asyncpg

from . import _common as c
from ._base import Storage
from ._dialect import POSTGRES, Dialect
from ._postgres_driver import (
    apply_migrations,
    create_pool,
    require_asyncio,
    run_steps,
    translated,
)
from ._postgres_inbound import inbound
from ._records import InboundRecord, InboundResult
from ._sql_storage import Mode, SQLStorage
from ._steps import Steps, rows, single

T = TypeVar("T")


class PostgresStorage(SQLStorage):
    """Storage in a PostgreSQL database, optionally confined to one schema."""

    dialect: ClassVar[Dialect] = POSTGRES

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        """Wrap an open pool; use :meth:`open` instead of calling this directly."""
        self._pool: asyncpg.Pool | None = pool
        self._shown = c.redact_url(url)

    @classmethod
    async def open(cls, url: str, *, schema: str | None = None) -> PostgresStorage:
        """Create the pool (and ``schema`` if missing) and return the storage.

        Raises StorageUnavailable when the server cannot be reached or refuses the login,
        StorageError when not running on asyncio.
        """
        require_asyncio()
        return cls(await create_pool(url, schema), url)

    def _translated(self) -> AbstractContextManager[asyncpg.Pool]:
        return translated(self._pool, self._shown)

    async def _run(
        self, steps: Steps[T], mode: Mode = "transaction", *, durable: bool = False
    ) -> T:
        # Every commit is durable here (synchronous_commit); ``durable`` changes nothing.
        with self._translated() as pool:
            async with pool.acquire() as conn:
                if mode != "transaction":
                    return await run_steps(steps, conn)
                # READ COMMITTED whatever the server default: each statement must see what
                # racing transactions committed before it (see _transactions.py).
                async with conn.transaction(isolation="read_committed"):
                    return await run_steps(steps, conn)

    async def migrate(self) -> list[int]:
        with self._translated() as pool:
            async with pool.acquire() as conn:
                return await apply_migrations(conn)

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def inbox_append(self, bodies: Sequence[bytes]) -> list[int]:
        batch = c.check_bodies(bodies)
        if not batch:
            return []
        # One statement is one transaction. Identity values are drawn in the ORDER BY
        # order, so sorting the returned ids maps them back onto the input order.
        query = rows(
            "INSERT INTO inbox (body, received_at)"
            " SELECT b, $2 FROM unnest($1::bytea[]) WITH ORDINALITY AS t (b, n)"
            " ORDER BY n RETURNING id",
            *(batch, c.utcnow()),
        )
        return sorted(row[0] for row in await self._run(single(query), "autocommit"))

    def _inbound(self, record: InboundRecord, now: datetime) -> Steps[InboundResult]:
        return inbound(record, now)

    # Concurrent records over the pool's connections (the contract's default), not one
    # transaction for the batch as SQLite's single connection prefers.
    record_inbound_many = Storage.record_inbound_many
