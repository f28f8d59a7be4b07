"""SQLite storage: the embedded default, one file next to the server, no other process.

One stdlib ``sqlite3`` connection in WAL mode, used from one thread of its own, one call at
a time (``_sqlite_thread.py``), so the event loop never blocks on disk and no two threads ever
share the connection at once. Writes run in ``BEGIN IMMEDIATE`` transactions;
``busy_timeout`` lets the admin CLI write while a server holds the file.

Durability, and why only the inbox pays for an fsync. ``synchronous`` is set per
transaction on the one connection. ``inbox_append`` commits with FULL: the WAL is fsynced
before it returns, which is the "durable before 200" promise. Every other write commits
with NORMAL: appended to the WAL, no fsync. That is safe because, in WAL mode:

- A process crash loses nothing: a NORMAL commit is in the OS page cache when it returns,
  and the next open replays the WAL from there.
- Commits stay ordered. Each WAL frame's checksum chains over all frames before it, so
  recovery after an OS crash or power loss keeps a prefix of the commits and drops the
  rest, never a later commit without an earlier one. And the next FULL commit's fsync of
  the WAL file also persists every NORMAL commit before it (a checkpoint syncs the WAL
  first too).
- So an OS crash can only drop the newest NORMAL commits. The derived writes of an inbox
  item (record_inbound, statuses) come before its ``inbox_mark``; if they are dropped the
  mark is dropped with them, the item is still 'pending', and the replay redoes them
  (every step is idempotent on the WhatsApp id). That is why ``inbox_mark`` is NORMAL
  too: losing a 'done' mark only costs an idempotent replay.

Writes that no inbox item replays (agent changes to a conversation, outbound messages and
their send results, tenants, users, accounts) can also lose their last moments to an OS
crash or power loss; the file stays consistent. If WAL cannot be enabled (a file system
without shared memory), every commit uses FULL, since NORMAL is not ordered without WAL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import partial
from typing import ClassVar, TypeVar

import anyio
import anyio.to_thread

from ._dialect import SQLITE, Dialect
from ._migrations import load_migrations
from ._records import StorageUnavailable
from ._sql_storage import Mode, SQLStorage
from ._sqlite_driver import apply_migration, connect, guarded, in_transaction, run_steps
from ._sqlite_thread import SQLiteThread
from ._steps import Steps

T = TypeVar("T")


class SQLiteStorage(SQLStorage):
    """Storage in one SQLite file (or ``:memory:``); single node by nature."""

    dialect: ClassVar[Dialect] = SQLITE

    def __init__(self, conn: sqlite3.Connection, path: str, *, wal: bool = True) -> None:
        """Wrap an open connection; use :meth:`open` instead of calling this directly.

        ``wal`` says whether the file is in WAL mode; without it every commit is FULL.
        """
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._thread = SQLiteThread(f"sqlite {path}")
        self._relaxed = "NORMAL" if wal else "FULL"

    @classmethod
    async def open(cls, path: str) -> SQLiteStorage:
        """Open (creating if needed) the database file at ``path`` and return the storage.

        Raises StorageUnavailable if the file cannot be opened (missing folder, no access).
        """
        conn, mode = await anyio.to_thread.run_sync(guarded, connect, path, path)
        return cls(conn, path, wal=mode == "wal")

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise StorageUnavailable(f"SQLite storage {self._path} is closed")
        return await self._thread.run(partial(guarded, partial(fn, conn), self._path))

    async def _write(self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = False) -> T:
        # durable=True only for the inbox (and the write probe): see the top of this module.
        return await self._call(partial(in_transaction, fn, "FULL" if durable else self._relaxed))

    async def _run(
        self, steps: Steps[T], mode: Mode = "transaction", *, durable: bool = False
    ) -> T:
        if mode == "read":
            return await self._call(partial(run_steps, steps))
        # Autocommit steps too: BEGIN IMMEDIATE holds the write lock across a read that
        # follows a conflict, and sets this commit's synchronous level.
        return await self._write(partial(run_steps, steps), durable=durable)

    async def migrate(self) -> list[int]:
        applied = []
        for m in load_migrations("sqlite"):
            if await self._write(partial(apply_migration, m)):
                applied.append(m.version)
        return applied

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # On the connection's thread: the calls already submitted finish first.
            await self._thread.run(conn.close)
            self._thread.stop()
