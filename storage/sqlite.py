"""SQLite storage: the embedded default, one file next to the server, no other process.

One stdlib ``sqlite3`` connection in WAL mode, used from worker threads one call at a time
(a CapacityLimiter of 1), so the event loop never blocks on disk and no two threads ever
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
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import orjson

from . import _common as c
from ._base import Storage
from ._migrations import load_migrations
from ._records import (
    INBOX_STATES,
    UNSET,
    Account,
    Contact,
    Conversation,
    DeadLetter,
    InboxItem,
    Message,
    NotFound,
    StorageUnavailable,
    Tenant,
    Unset,
    User,
)
from ._recovery import SQLiteRecovery
from ._sqlite_inbound import SQLiteInbound
from ._sqlite_support import (
    ACCOUNT_COLS,
    CONVERSATION_SELECT,
    MESSAGE_COLS,
    TOUCH_CONVERSATION,
    UPSERT_CONTACT,
    USER_COLS,
    append_inbox,
    apply_migration,
    binder,
    connect,
    conversation_for,
    guarded,
    in_transaction,
    row_account,
    row_conversation,
    row_dead_letter,
    row_inbox,
    row_message,
    row_user,
    set_status,
    update_conversation,
    write_message,
)
from ._text import encode_json

T = TypeVar("T")
_RANK = c.STATUS_RANK_SQL


class SQLiteStorage(SQLiteInbound, SQLiteRecovery, Storage):
    """Storage in one SQLite file (or ``:memory:``); single node by nature."""

    def __init__(self, conn: sqlite3.Connection, path: str, *, wal: bool = True) -> None:
        """Wrap an open connection; use :meth:`open` instead of calling this directly.

        ``wal`` says whether the file is in WAL mode; without it every commit is FULL.
        """
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._limiter = anyio.CapacityLimiter(1)
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
        return await anyio.to_thread.run_sync(
            guarded, partial(fn, conn), self._path, limiter=self._limiter
        )

    async def _write(self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = False) -> T:
        # durable=True only for the inbox: see the top of this module.
        return await self._call(partial(in_transaction, fn, "FULL" if durable else self._relaxed))

    async def _one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        return await self._call(lambda db: db.execute(sql, args).fetchone())

    async def _write_one(self, sql: str, *args: Any) -> Any:
        # One statement in its own write transaction; answers its first row (or None).
        return await self._write(lambda db: db.execute(sql, args).fetchone())

    async def _all(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        return await self._call(lambda db: db.execute(sql, args).fetchall())

    # -- lifecycle -------------------------------------------------------------------------

    async def migrate(self) -> list[int]:
        applied = []
        for m in load_migrations("sqlite"):
            if await self._write(partial(apply_migration, m)):
                applied.append(m.version)
        return applied

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # Through the limiter: a call already running in a thread finishes first.
            await anyio.to_thread.run_sync(conn.close, limiter=self._limiter)

    async def ping(self) -> None:
        await self._one("SELECT 1")

    async def check_writable(self) -> None:
        key, value = c.WRITE_PROBE_KEY, c.write_probe_value()

        def probe(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
            db.execute("DELETE FROM meta WHERE key = ?", (key,))

        await self._write(probe, durable=True)

    # -- tenants, users, accounts ----------------------------------------------------------

    async def create_tenant(self, name: str) -> Tenant:
        tenant = Tenant(c.new_id(), name, c.utcnow())
        await self._write_one(
            "INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)",
            *(tenant.id, name, c.to_iso(tenant.created_at)),
        )
        return tenant

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        row = await self._one("SELECT id, name, created_at FROM tenants WHERE id = ?", tenant_id)
        return None if row is None else Tenant(row[0], row[1], c.from_iso(row[2]))

    async def create_user(
        self,
        tenant_id: str,
        email: str,
        password: str,
        *,
        role: str = "agent",
        name: str | None = None,
    ) -> User:
        user = User(
            c.new_id(), tenant_id, c.normalize_email(email), name, c.check_role(role), c.utcnow()
        )
        hashed = await anyio.to_thread.run_sync(c.hash_password, password)
        await self._write_one(
            f"INSERT INTO users ({USER_COLS}, password_hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
            *(user.id, tenant_id, user.email, name, role, c.to_iso(user.created_at), hashed),
        )
        return user

    async def authenticate(self, email: str, password: str) -> User | None:
        row = await self._one(
            f"SELECT {USER_COLS}, password_hash FROM users WHERE email = ?",
            email.strip().lower(),
        )
        ok = await c.check_password(password, None if row is None else row["password_hash"])
        return row_user(row) if ok and row is not None else None

    async def get_user(self, user_id: str) -> User | None:
        row = await self._one(f"SELECT {USER_COLS} FROM users WHERE id = ?", user_id)
        return None if row is None else row_user(row)

    async def add_account(
        self,
        tenant_id: str,
        phone_number_id: str,
        *,
        verify_token: str | None = None,
        app_secret: str | None = None,
        access_token: str | None = None,
    ) -> Account:
        secrets = (verify_token, app_secret, access_token)
        row = await self._write_one(
            f"INSERT INTO whatsapp_accounts ({ACCOUNT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            f" RETURNING {ACCOUNT_COLS}",
            *(c.new_id(), tenant_id, phone_number_id, *secrets, c.to_iso(c.utcnow())),
        )
        return row_account(row)

    async def get_account(self, phone_number_id: str) -> Account | None:
        row = await self._one(
            f"SELECT {ACCOUNT_COLS} FROM whatsapp_accounts WHERE phone_number_id = ?",
            phone_number_id,
        )
        return None if row is None else row_account(row)

    async def get_account_by_id(self, tenant_id: str, account_id: str) -> Account | None:
        row = await self._one(
            f"SELECT {ACCOUNT_COLS} FROM whatsapp_accounts WHERE tenant_id = ? AND id = ?",
            *(tenant_id, account_id),
        )
        return None if row is None else row_account(row)

    async def find_account_by_verify_token(self, token: str) -> Account | None:
        row = await self._one(
            f"SELECT {ACCOUNT_COLS} FROM whatsapp_accounts WHERE verify_token = ?"
            " ORDER BY created_at, id LIMIT 1",
            token,
        )
        return None if row is None else row_account(row)

    # -- durable inbox ---------------------------------------------------------------------

    async def inbox_append(self, bodies: Sequence[bytes]) -> list[int]:
        batch = c.check_bodies(bodies)
        if not batch:
            return []
        run = partial(append_inbox, bodies=batch, now=c.to_iso(c.utcnow()))
        return await self._write(run, durable=True)

    async def inbox_pending(self, *, after_id: int = 0, limit: int = 500) -> list[InboxItem]:
        rows = await self._all(
            "SELECT id, body, received_at, state, attempts, error FROM inbox"
            " WHERE state = 'pending' AND id > ? ORDER BY id LIMIT ?",
            after_id,
            c.check_limit(limit),
        )
        return [row_inbox(r) for r in rows]

    async def inbox_mark(self, ids: Sequence[int], state: str, *, error: str | None = None) -> None:
        c.check_inbox_state(state)
        id_list = orjson.dumps([int(i) for i in ids]).decode()
        # json_each turns one bound JSON array into the id set: one statement for any count.
        await self._write_one(
            "UPDATE inbox SET state = ?, error = ?,"
            " attempts = attempts + (CASE WHEN ? = 'failed' THEN 1 ELSE 0 END)"
            " WHERE id IN (SELECT value FROM json_each(?))",
            *(state, error, state, id_list),
        )

    async def inbox_counts(self) -> dict[str, int]:
        rows = await self._all("SELECT state, count(*) FROM inbox GROUP BY state")
        counts = dict.fromkeys(INBOX_STATES, 0)
        counts.update({r[0]: r[1] for r in rows})
        return counts

    # -- contacts and conversations --------------------------------------------------------

    async def upsert_contact(self, tenant_id: str, phone_number: str, name: str | None) -> Contact:
        row = await self._write_one(
            UPSERT_CONTACT,
            *(c.new_id(), tenant_id, phone_number, name or None, c.to_iso(c.utcnow())),
        )
        return Contact(*row)

    async def get_or_create_conversation(
        self, tenant_id: str, contact_id: str, account_id: str
    ) -> tuple[Conversation, bool]:
        now = c.to_iso(c.utcnow())

        def get_or_create(db: sqlite3.Connection) -> tuple[sqlite3.Row, bool]:
            conversation_id, created = conversation_for(db, tenant_id, contact_id, account_id, now)
            row = db.execute(f"{CONVERSATION_SELECT} WHERE c.id = ?", (conversation_id,))
            return row.fetchone(), created

        row, created = await self._write(get_or_create)
        return row_conversation(row), created

    async def get_conversation(self, tenant_id: str, conversation_id: str) -> Conversation | None:
        row = await self._one(
            f"{CONVERSATION_SELECT} WHERE c.tenant_id = ? AND c.id = ?", tenant_id, conversation_id
        )
        return None if row is None else row_conversation(row)

    async def list_conversations(
        self,
        tenant_id: str,
        *,
        stage: str | None = None,
        assignee_id: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[Conversation], str | None]:
        args: list[Any] = []
        where = c.conversation_filters(
            tenant_id, stage, assignee_id, cursor, binder(args), c.to_iso
        )
        rows = await self._all(
            f"{CONVERSATION_SELECT} WHERE {where}"
            " ORDER BY c.last_message_at DESC NULLS LAST, c.id LIMIT ?",
            *args,
            c.check_limit(limit) + 1,
        )
        return c.next_page(
            [row_conversation(r) for r in rows],
            limit,
            "conversations",
            lambda conv: (conv.last_message_at, conv.id),
        )

    async def update_conversation(
        self,
        tenant_id: str,
        conversation_id: str,
        *,
        stage: str | None = None,
        assignee_id: str | None | Unset = UNSET,
    ) -> Conversation | None:
        changes: dict[str, Any] = {"updated_at": c.to_iso(c.utcnow())}
        if stage is not None:
            changes["stage"] = stage
        if assignee_id is not UNSET:
            changes["assignee_id"] = assignee_id
        row = await self._write(partial(update_conversation, changes, (tenant_id, conversation_id)))
        return None if row is None else row_conversation(row)

    async def touch_conversation(self, conversation_id: str, at: datetime) -> None:
        when = c.to_iso(at)
        await self._write_one(TOUCH_CONVERSATION, c.to_iso(c.utcnow()), when, when, conversation_id)

    # -- messages --------------------------------------------------------------------------

    async def insert_message(
        self,
        *,
        tenant_id: str,
        conversation_id: str,
        contact_id: str,
        direction: str,
        type: str,
        content: str,
        metadata: dict[str, Any],
        status: str,
        timestamp: datetime,
        whatsapp_message_id: str | None = None,
    ) -> tuple[Message, bool]:
        c.check_message(direction, status)
        keys = (c.new_id(), tenant_id, conversation_id, contact_id, whatsapp_message_id)
        body = (direction, type, content, encode_json(metadata), status, None)
        values = (*keys, *body, c.to_iso(timestamp), c.to_iso(c.utcnow()))
        row, created = await self._write(partial(write_message, values=values))
        return row_message(row), created

    async def get_message(self, tenant_id: str, message_id: str) -> Message | None:
        row = await self._one(
            f"SELECT {MESSAGE_COLS} FROM messages WHERE tenant_id = ? AND id = ?",
            *(tenant_id, message_id),
        )
        return None if row is None else row_message(row)

    async def list_messages(
        self,
        tenant_id: str,
        conversation_id: str,
        *,
        before: str | None = None,
        limit: int = 50,
    ) -> tuple[list[Message], str | None]:
        args: list[Any] = []
        where = c.message_filters(tenant_id, conversation_id, before, binder(args), c.to_iso)
        rows = await self._all(
            f"SELECT {MESSAGE_COLS} FROM messages m WHERE {where}"
            " ORDER BY m.timestamp DESC, m.id DESC LIMIT ?",
            *args,
            c.check_limit(limit) + 1,
        )
        return c.next_page(
            [row_message(r) for r in rows], limit, "messages", lambda m: (m.timestamp, m.id)
        )

    async def update_message_status(
        self,
        tenant_id: str,
        whatsapp_message_id: str,
        status: str,
        *,
        error: dict[str, Any] | None = None,
    ) -> tuple[Message, bool] | None:
        rank = c.check_status_update(status)
        err = None if error is None else encode_json(error)
        key = (tenant_id, whatsapp_message_id)
        return await self._set_status(
            f"status = ?, error = coalesce(?, error) WHERE tenant_id = ?"
            f" AND whatsapp_message_id = ? AND {_RANK} < ?",
            (status, err, *key, rank),
            "tenant_id = ? AND whatsapp_message_id = ?",
            key,
        )

    async def mark_message_sent(self, message_id: str, whatsapp_message_id: str) -> Message:
        result = await self._set_status(
            f"whatsapp_message_id = ?, status = CASE WHEN {_RANK} < 1 THEN 'SENT'"
            " ELSE status END WHERE id = ?",
            (whatsapp_message_id, message_id),
            "id = ?",
            (message_id,),
        )
        if result is None:
            raise NotFound(f"no message {message_id!r}")
        return result[0]

    async def mark_message_failed(self, message_id: str, error: dict[str, Any]) -> Message:
        result = await self._set_status(
            f"status = 'FAILED', error = ? WHERE id = ? AND {_RANK} < 9",
            (encode_json(error), message_id),
            "id = ?",
            (message_id,),
        )
        if result is None:
            raise NotFound(f"no message {message_id!r}")
        return result[0]

    async def _set_status(
        self, update: str, args: tuple[Any, ...], where: str, key: tuple[Any, ...]
    ) -> tuple[Message, bool] | None:
        result = await self._write(partial(set_status, update, args, where, key))
        return None if result is None else (row_message(result[0]), result[1])

    async def count_messages(self, tenant_id: str | None = None) -> int:
        where, args = ("", ()) if tenant_id is None else (" WHERE tenant_id = ?", (tenant_id,))
        row = await self._one(f"SELECT count(*) FROM messages{where}", *args)
        return int(row[0]) if row is not None else 0

    # -- dead letters ----------------------------------------------------------------------

    async def add_dead_letter(self, kind: str, payload: dict[str, Any], error: str) -> int:
        body, now = encode_json(payload), c.to_iso(c.utcnow())
        row = await self._write_one(
            "INSERT INTO dead_letters (kind, payload, error, created_at)"
            " VALUES (?, ?, ?, ?) RETURNING id",
            *(kind, body, error, now),
        )
        return int(row[0])

    async def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = await self._all(
            "SELECT id, kind, payload, error, created_at FROM dead_letters"
            " ORDER BY id DESC LIMIT ?",
            c.check_limit(limit),
        )
        return [row_dead_letter(r) for r in rows]
