"""PostgreSQL storage: the multi-node profile, an asyncpg pool (1 to 10 connections).

asyncpg runs on asyncio only, so this implementation needs the asyncio backend (the
production one); it says so plainly when started under trio. Uniqueness races are settled by
the database (``ON CONFLICT``), never by a read-then-write in Python. JSON columns are jsonb,
encoded and decoded with orjson by a codec set on every pooled connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Final

import anyio.to_thread
import asyncpg

from . import _common as c
from ._base import Storage
from ._postgres_support import (
    ACCOUNT_COLS,
    CONVERSATION_SELECT,
    MESSAGE_COLS,
    USER_COLS,
    apply_migrations,
    binder,
    create_pool,
    require_asyncio,
    row_conversation,
    row_message,
    translated,
    values_of,
    write_inbound,
)
from ._records import (
    INBOX_STATES,
    UNSET,
    Account,
    Contact,
    Conversation,
    DeadLetter,
    InboundResult,
    InboxItem,
    Message,
    NotFound,
    Tenant,
    Unset,
    User,
)
from ._recovery import PostgresRecovery

_RANK: Final = c.STATUS_RANK_SQL
_SELECT_CONVERSATION: Final = CONVERSATION_SELECT.format(source="conversations")


class PostgresStorage(PostgresRecovery, Storage):
    """Storage in a PostgreSQL database, optionally confined to one schema."""

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

    async def _row(self, sql: str, *args: Any) -> asyncpg.Record | None:
        with self._translated() as pool:
            return await pool.fetchrow(sql, *args)

    async def _rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        with self._translated() as pool:
            return list(await pool.fetch(sql, *args))

    async def _execute(self, sql: str, *args: Any) -> None:
        with self._translated() as pool:
            await pool.execute(sql, *args)

    # -- lifecycle -------------------------------------------------------------------------

    async def migrate(self) -> list[int]:
        with self._translated() as pool:
            async with pool.acquire() as conn:
                return await apply_migrations(conn)

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def ping(self) -> None:
        await self._row("SELECT 1")

    async def check_writable(self) -> None:
        with self._translated() as pool:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO meta (key, value) VALUES ($1, $2)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    *(c.WRITE_PROBE_KEY, c.write_probe_value()),
                )
                await conn.execute("DELETE FROM meta WHERE key = $1", c.WRITE_PROBE_KEY)

    # -- tenants, users, accounts ----------------------------------------------------------

    async def create_tenant(self, name: str) -> Tenant:
        tenant = Tenant(c.new_id(), name, c.utcnow())
        await self._execute("INSERT INTO tenants VALUES ($1, $2, $3)", *values_of(tenant))
        return tenant

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        r = await self._row("SELECT id, name, created_at FROM tenants WHERE id = $1", tenant_id)
        return None if r is None else Tenant(*r)

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
        await self._execute(
            f"INSERT INTO users ({USER_COLS}, password_hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            *(*values_of(user), hashed),
        )
        return user

    async def authenticate(self, email: str, password: str) -> User | None:
        r = await self._row(
            f"SELECT {USER_COLS}, password_hash FROM users WHERE email = $1", email.strip().lower()
        )
        ok = await c.check_password(password, None if r is None else r["password_hash"])
        return User(*tuple(r)[:6]) if ok and r is not None else None

    async def get_user(self, user_id: str) -> User | None:
        r = await self._row(f"SELECT {USER_COLS} FROM users WHERE id = $1", user_id)
        return None if r is None else User(*r)

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
        account = Account(c.new_id(), tenant_id, phone_number_id, *secrets, c.utcnow())
        await self._execute(
            f"INSERT INTO whatsapp_accounts ({ACCOUNT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            *values_of(account),
        )
        return account

    async def get_account(self, phone_number_id: str) -> Account | None:
        r = await self._row(
            f"SELECT {ACCOUNT_COLS} FROM whatsapp_accounts WHERE phone_number_id = $1",
            phone_number_id,
        )
        return None if r is None else Account(*r)

    async def get_account_by_id(self, tenant_id: str, account_id: str) -> Account | None:
        r = await self._row(
            f"SELECT {ACCOUNT_COLS} FROM whatsapp_accounts WHERE tenant_id = $1 AND id = $2",
            *(tenant_id, account_id),
        )
        return None if r is None else Account(*r)

    async def find_account_by_verify_token(self, token: str) -> Account | None:
        r = await self._row(
            f"SELECT {ACCOUNT_COLS} FROM whatsapp_accounts WHERE verify_token = $1"
            " ORDER BY created_at, id LIMIT 1",
            token,
        )
        return None if r is None else Account(*r)

    # -- durable inbox ---------------------------------------------------------------------

    async def inbox_append(self, bodies: Sequence[bytes]) -> list[int]:
        batch = c.check_bodies(bodies)
        if not batch:
            return []
        # One statement is one transaction. Identity values are drawn in the ORDER BY
        # order, so sorting the returned ids maps them back onto the input order.
        rows = await self._rows(
            "INSERT INTO inbox (body, received_at)"
            " SELECT b, $2 FROM unnest($1::bytea[]) WITH ORDINALITY AS t (b, n)"
            " ORDER BY n RETURNING id",
            *(batch, c.utcnow()),
        )
        return sorted(r["id"] for r in rows)

    async def inbox_pending(self, *, after_id: int = 0, limit: int = 500) -> list[InboxItem]:
        rows = await self._rows(
            "SELECT id, body, received_at, state, attempts, error FROM inbox"
            " WHERE state = 'pending' AND id > $1 ORDER BY id LIMIT $2",
            *(after_id, c.check_limit(limit)),
        )
        return [InboxItem(*r) for r in rows]

    async def inbox_mark(self, ids: Sequence[int], state: str, *, error: str | None = None) -> None:
        c.check_inbox_state(state)
        await self._execute(
            "UPDATE inbox SET state = $1::text, error = $2,"
            " attempts = attempts + (CASE WHEN $1::text = 'failed' THEN 1 ELSE 0 END)"
            " WHERE id = ANY($3::bigint[])",
            *(state, error, [int(i) for i in ids]),
        )

    async def inbox_counts(self) -> dict[str, int]:
        rows = await self._rows("SELECT state, count(*) FROM inbox GROUP BY state")
        counts = dict.fromkeys(INBOX_STATES, 0)
        counts.update({r[0]: r[1] for r in rows})
        return counts

    # -- contacts and conversations --------------------------------------------------------

    async def upsert_contact(self, tenant_id: str, phone_number: str, name: str | None) -> Contact:
        r = await self._row(
            "INSERT INTO contacts (id, tenant_id, phone_number, name, created_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, phone_number) DO UPDATE"
            " SET name = coalesce(nullif(excluded.name, ''), contacts.name)"
            " RETURNING id, tenant_id, phone_number, name",
            *(c.new_id(), tenant_id, phone_number, name or None, c.utcnow()),
        )
        assert r is not None  # an upsert always returns its row
        return Contact(*r)

    async def get_or_create_conversation(
        self, tenant_id: str, contact_id: str, account_id: str
    ) -> tuple[Conversation, bool]:
        now = c.utcnow()
        with self._translated() as pool:
            async with pool.acquire() as conn:
                # A racing insert waits for the winner's commit, then does nothing; the
                # read below then sees the winner's row (READ COMMITTED, new snapshot).
                created = await conn.fetchval(
                    "INSERT INTO conversations (id, tenant_id, contact_id, account_id,"
                    " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)"
                    " ON CONFLICT (tenant_id, contact_id) DO NOTHING RETURNING id",
                    *(c.new_id(), tenant_id, contact_id, account_id, now),
                )
                r = await conn.fetchrow(
                    f"{_SELECT_CONVERSATION} WHERE c.tenant_id = $1 AND c.contact_id = $2",
                    *(tenant_id, contact_id),
                )
        return row_conversation(r), created is not None

    async def get_conversation(self, tenant_id: str, conversation_id: str) -> Conversation | None:
        r = await self._row(
            f"{_SELECT_CONVERSATION} WHERE c.tenant_id = $1 AND c.id = $2",
            *(tenant_id, conversation_id),
        )
        return None if r is None else row_conversation(r)

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
        bind = binder(args)
        where = c.conversation_filters(tenant_id, stage, assignee_id, cursor, bind, c.as_utc)
        rows = await self._rows(
            f"{_SELECT_CONVERSATION} WHERE {where}"
            " ORDER BY c.last_message_at DESC NULLS LAST, c.id"
            f" LIMIT {bind(c.check_limit(limit) + 1)}",
            *args,
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
        args: list[Any] = []
        bind = binder(args)
        sets = [f"updated_at = {bind(c.utcnow())}"]
        if stage is not None:
            sets.append(f"stage = {bind(stage)}")
        if assignee_id is not UNSET:
            sets.append(f"assignee_id = {bind(assignee_id)}")
        source = (
            f"(UPDATE conversations SET {', '.join(sets)} WHERE tenant_id = {bind(tenant_id)}"
            f" AND id = {bind(conversation_id)} RETURNING *)"
        )
        # One statement: the CTE's updated row, joined to its contact.
        r = await self._row(f"WITH u AS {source} {CONVERSATION_SELECT.format(source='u')}", *args)
        return None if r is None else row_conversation(r)

    async def touch_conversation(self, conversation_id: str, at: datetime) -> None:
        await self._execute(
            "UPDATE conversations SET updated_at = $1,"
            " last_message_at = GREATEST(last_message_at, $2) WHERE id = $3",
            *(c.utcnow(), c.as_utc(at), conversation_id),
        )

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
        body = (direction, type, content, metadata, status, None)
        values = (*keys, *body, c.as_utc(timestamp), c.utcnow())
        params = ", ".join(f"${i}" for i in range(1, 14))
        with self._translated() as pool:
            async with pool.acquire() as conn:
                r = await conn.fetchrow(
                    f"INSERT INTO messages ({MESSAGE_COLS}) VALUES ({params})"
                    " ON CONFLICT (tenant_id, whatsapp_message_id) DO NOTHING"
                    f" RETURNING {MESSAGE_COLS}",
                    *values,
                )
                if r is not None:
                    return row_message(r), True
                r = await conn.fetchrow(
                    f"SELECT {MESSAGE_COLS} FROM messages"
                    " WHERE tenant_id = $1 AND whatsapp_message_id = $2",
                    *(tenant_id, whatsapp_message_id),
                )
        return row_message(r), False

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
        contact = (tenant_id, phone_number, contact_name or None)
        message = (whatsapp_message_id, type, content or "", metadata, c.as_utc(timestamp))
        with self._translated() as pool:
            async with pool.acquire() as conn:
                return await write_inbound(
                    conn, contact=contact, account=account_id, message=message, now=c.utcnow()
                )

    async def get_message(self, tenant_id: str, message_id: str) -> Message | None:
        r = await self._row(
            f"SELECT {MESSAGE_COLS} FROM messages WHERE tenant_id = $1 AND id = $2",
            *(tenant_id, message_id),
        )
        return None if r is None else row_message(r)

    async def list_messages(
        self,
        tenant_id: str,
        conversation_id: str,
        *,
        before: str | None = None,
        limit: int = 50,
    ) -> tuple[list[Message], str | None]:
        args: list[Any] = []
        bind = binder(args)
        where = c.message_filters(tenant_id, conversation_id, before, bind, c.as_utc)
        rows = await self._rows(
            f"SELECT {MESSAGE_COLS} FROM messages m WHERE {where}"
            f" ORDER BY m.timestamp DESC, m.id DESC LIMIT {bind(c.check_limit(limit) + 1)}",
            *args,
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
        return await self._set_status(
            f"status = $3, error = coalesce($4::jsonb, error) WHERE tenant_id = $1"
            f" AND whatsapp_message_id = $2 AND {_RANK} < $5",
            "tenant_id = $1 AND whatsapp_message_id = $2",
            (tenant_id, whatsapp_message_id),
            (status, error, rank),
        )

    async def mark_message_sent(self, message_id: str, whatsapp_message_id: str) -> Message:
        result = await self._set_status(
            f"whatsapp_message_id = $2, status = CASE WHEN {_RANK} < 1 THEN 'SENT'"
            " ELSE status END WHERE id = $1",
            "id = $1",
            (message_id,),
            (whatsapp_message_id,),
        )
        if result is None:
            raise NotFound(f"no message {message_id!r}")
        return result[0]

    async def mark_message_failed(self, message_id: str, error: dict[str, Any]) -> Message:
        result = await self._set_status(
            f"status = 'FAILED', error = $2::jsonb WHERE id = $1 AND {_RANK} < 9",
            "id = $1",
            (message_id,),
            (error,),
        )
        if result is None:
            raise NotFound(f"no message {message_id!r}")
        return result[0]

    async def _set_status(
        self, update: str, where: str, key: tuple[Any, ...], extra: tuple[Any, ...]
    ) -> tuple[Message, bool] | None:
        # The rank test is in the UPDATE's WHERE: decision and write are one statement, so
        # racing reports serialise on the row lock and none can move the status back.
        with self._translated() as pool:
            async with pool.acquire() as conn:
                r = await conn.fetchrow(
                    f"UPDATE messages SET {update} RETURNING {MESSAGE_COLS}", *key, *extra
                )
                if r is not None:
                    return row_message(r), True
                r = await conn.fetchrow(f"SELECT {MESSAGE_COLS} FROM messages WHERE {where}", *key)
        return None if r is None else (row_message(r), False)

    async def count_messages(self, tenant_id: str | None = None) -> int:
        if tenant_id is None:
            r = await self._row("SELECT count(*) FROM messages")
        else:
            r = await self._row("SELECT count(*) FROM messages WHERE tenant_id = $1", tenant_id)
        return 0 if r is None else int(r[0])

    # -- dead letters ----------------------------------------------------------------------

    async def add_dead_letter(self, kind: str, payload: dict[str, Any], error: str) -> int:
        r = await self._row(
            "INSERT INTO dead_letters (kind, payload, error, created_at)"
            " VALUES ($1, $2, $3, $4) RETURNING id",
            *(kind, payload, error, c.utcnow()),
        )
        assert r is not None  # INSERT ... RETURNING always returns the row
        return int(r[0])

    async def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = await self._rows(
            "SELECT id, kind, payload, error, created_at FROM dead_letters"
            " ORDER BY id DESC LIMIT $1",
            c.check_limit(limit),
        )
        return [DeadLetter(*r) for r in rows]
