"""Crash-recovery and process-bookkeeping queries, one mixin per dialect.

Kept apart from the main implementations, which sit near the module size limit; each mixin
relies only on its storage class's query helpers, declared here for the type checker.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Any

import asyncpg

from . import _common as c
from ._postgres_support import MESSAGE_COLS as PG_MESSAGE_COLS
from ._postgres_support import row_message as pg_row_message
from ._records import Message
from ._sqlite_support import MESSAGE_COLS as SQLITE_MESSAGE_COLS
from ._sqlite_support import row_message as sqlite_row_message


class SQLiteRecovery:
    """``get_meta`` / ``set_meta`` / ``recent_messages`` / ``pending_outbound`` for SQLite."""

    async def _one(self, sql: str, *args: Any) -> sqlite3.Row | None: ...
    async def _all(self, sql: str, *args: Any) -> list[sqlite3.Row]: ...
    async def _write_one(self, sql: str, *args: Any) -> Any: ...

    async def get_meta(self, key: str) -> str | None:
        row = await self._one("SELECT value FROM meta WHERE key = ?", key)
        return None if row is None else str(row[0])

    async def set_meta(self, key: str, value: str) -> None:
        await self._write_one(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            *(key, value),
        )

    async def recent_messages(self, *, window_seconds: float, limit: int = 5000) -> list[Message]:
        newest = await self._one("SELECT max(created_at) FROM messages")
        if newest is None or newest[0] is None:
            return []
        since = c.to_iso(c.from_iso(newest[0]) - timedelta(seconds=window_seconds))
        rows = await self._all(
            f"SELECT {SQLITE_MESSAGE_COLS} FROM messages WHERE created_at >= ?"
            " ORDER BY created_at, id LIMIT ?",
            *(since, limit),
        )
        return [sqlite_row_message(r) for r in rows]

    async def pending_outbound(self, *, limit: int = 1000) -> list[Message]:
        rows = await self._all(
            f"SELECT {SQLITE_MESSAGE_COLS} FROM messages"
            " WHERE status = 'PENDING' AND direction = 'outbound'"
            " ORDER BY created_at, id LIMIT ?",
            limit,
        )
        return [sqlite_row_message(r) for r in rows]


class PostgresRecovery:
    """``get_meta`` / ``set_meta`` / ``recent_messages`` / ``pending_outbound`` for PostgreSQL."""

    async def _row(self, sql: str, *args: Any) -> asyncpg.Record | None: ...
    async def _rows(self, sql: str, *args: Any) -> list[asyncpg.Record]: ...
    async def _execute(self, sql: str, *args: Any) -> None: ...

    async def get_meta(self, key: str) -> str | None:
        row = await self._row("SELECT value FROM meta WHERE key = $1", key)
        return None if row is None else str(row[0])

    async def set_meta(self, key: str, value: str) -> None:
        await self._execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            *(key, value),
        )

    async def recent_messages(self, *, window_seconds: float, limit: int = 5000) -> list[Message]:
        rows = await self._rows(
            f"SELECT {PG_MESSAGE_COLS} FROM messages WHERE created_at >="
            " (SELECT max(created_at) FROM messages) - make_interval(secs => $1)"
            " ORDER BY created_at, id LIMIT $2",
            *(float(window_seconds), limit),
        )
        return [pg_row_message(r) for r in rows]

    async def pending_outbound(self, *, limit: int = 1000) -> list[Message]:
        rows = await self._rows(
            f"SELECT {PG_MESSAGE_COLS} FROM messages"
            " WHERE status = 'PENDING' AND direction = 'outbound'"
            " ORDER BY created_at, id LIMIT $1",
            limit,
        )
        return [pg_row_message(r) for r in rows]
