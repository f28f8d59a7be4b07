"""PostgreSQL plumbing kept out of ``postgres.py``: pool set-up, migrations, error
translation, column lists and row mappers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime
from typing import Any, Final

import asyncpg
import orjson

from ._common import new_id, redact_url, utcnow
from ._migrations import load_migrations
from ._records import (
    Conflict,
    Contact,
    Conversation,
    InboundResult,
    Message,
    NotFound,
    StorageError,
    StorageUnavailable,
)
from ._text import encode_json, storable

CONNECT_TIMEOUT: Final = 10.0
USER_COLS: Final = "id, tenant_id, email, name, role, created_at"
ACCOUNT_COLS: Final = (
    "id, tenant_id, phone_number_id, verify_token, app_secret, access_token, created_at"
)
MESSAGE_COLS: Final = (
    "id, tenant_id, conversation_id, contact_id, whatsapp_message_id, direction, type,"
    " content, metadata, status, error, timestamp, created_at"
)
_CONVERSATION_COLS: Final = (
    "id, tenant_id, contact_id, account_id, stage, assignee_id, last_message_at, created_at,"
    " updated_at"
)


_CONVERSATION_FIELDS: Final = tuple(col.strip() for col in _CONVERSATION_COLS.split(","))


def _prefixed(alias: str, cols: str) -> str:
    return ", ".join(f"{alias}.{col.strip()}" for col in cols.split(","))


# Inbound, statement 1: upsert the contact (which also locks its row until commit) and
# create its conversation unless one exists. A racing creator makes ON CONFLICT wait for
# its commit and then do nothing; statement 2 runs on a fresh snapshot and sees its row.
_INBOUND_CONTACT: Final = (
    "WITH k AS (INSERT INTO contacts (id, tenant_id, phone_number, name, created_at)"
    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, phone_number) DO UPDATE"
    " SET name = coalesce(nullif(excluded.name, ''), contacts.name)"
    " RETURNING id, phone_number, name),"
    " made AS (INSERT INTO conversations (id, tenant_id, contact_id, account_id, created_at,"
    " updated_at) SELECT $6, $2, k.id, $7, $5, $5 FROM k"
    " ON CONFLICT (tenant_id, contact_id) DO NOTHING RETURNING id)"
    " SELECT k.id, k.phone_number, k.name, EXISTS (SELECT 1 FROM made) FROM k"
)
# Inbound, statement 2: insert the message unless its WhatsApp id is stored, touch the
# conversation only if it was inserted, and answer the message and the conversation as
# they are now. CTEs share one snapshot, so a row written here is taken from RETURNING,
# and the plain reads only fill in what this statement did not write.
_INBOUND_MESSAGE: Final = (
    "WITH conv AS (SELECT id FROM conversations WHERE tenant_id = $1 AND contact_id = $2),"
    f" ins AS (INSERT INTO messages ({MESSAGE_COLS}) VALUES ($3, $1, (SELECT id FROM conv),"
    " $2, $4, 'inbound', $5, $6, $7, 'RECEIVED', NULL, $8, $9)"
    " ON CONFLICT (tenant_id, whatsapp_message_id) DO NOTHING"
    f" RETURNING {MESSAGE_COLS}),"
    " touched AS (UPDATE conversations SET updated_at = $9,"
    " last_message_at = GREATEST(last_message_at, $8)"
    f" WHERE id = (SELECT conversation_id FROM ins) RETURNING {_CONVERSATION_COLS}),"
    f" m AS (SELECT {MESSAGE_COLS} FROM ins UNION ALL SELECT {MESSAGE_COLS} FROM messages"
    " WHERE tenant_id = $1 AND whatsapp_message_id = $4),"
    f" c AS (SELECT {_CONVERSATION_COLS} FROM touched UNION ALL"
    f" SELECT {_CONVERSATION_COLS} FROM conversations"
    " WHERE id = (SELECT id FROM conv) AND NOT EXISTS (SELECT 1 FROM touched))"
    f" SELECT {_prefixed('m', MESSAGE_COLS)}, {_prefixed('c', _CONVERSATION_COLS)}"
    " FROM m CROSS JOIN c"
)
# Inbound, fallback: statement 2 found the WhatsApp id taken by a transaction that
# committed after its snapshot; ON CONFLICT waited for that commit, so this read sees it.
_INBOUND_REPLAY: Final = (
    f"SELECT {_prefixed('m', MESSAGE_COLS)}, {_prefixed('c', _CONVERSATION_COLS)}"
    " FROM messages m, conversations c WHERE m.tenant_id = $1"
    " AND m.whatsapp_message_id = $3 AND c.tenant_id = $1 AND c.contact_id = $2"
)

# {source} is "conversations" or the name of a CTE holding freshly updated rows.
CONVERSATION_SELECT: Final = (
    "SELECT c.id, c.tenant_id, c.contact_id, c.account_id, c.stage, c.assignee_id,"
    " c.last_message_at, c.created_at, c.updated_at, k.phone_number, k.name AS contact_name"
    " FROM {source} c JOIN contacts k ON k.id = c.contact_id"
)


def require_asyncio() -> None:
    """Return None on asyncio; raise StorageError on any other backend (asyncpg needs it)."""
    try:
        import sniffio
    except ImportError:  # pragma: no cover - sniffio ships with trio and httpx
        return
    library = sniffio.current_async_library()
    if library != "asyncio":
        raise StorageError(
            "PostgreSQL storage needs the asyncio backend (asyncpg is asyncio-only); "
            f"this task runs on {library}"
        )


class StorableConnection(asyncpg.Connection):  # type: ignore[misc]
    """A connection whose queries send every argument as :func:`storable` makes it.

    The seam where text enters PostgreSQL (pool calls reach it too): the same rule SQLite's
    connection applies, so both store the same text (see ``storage/_text.py``).
    """

    async def execute(self, query: str, *args: Any, **options: Any) -> str:
        """Return the status of ``query`` run with storable ``args``."""
        return await super().execute(query, *storable(args), **options)  # type: ignore[no-any-return]

    async def fetch(self, query: str, *args: Any, **options: Any) -> list[Any]:
        """Return the rows of ``query`` run with storable ``args``."""
        return await super().fetch(query, *storable(args), **options)  # type: ignore[no-any-return]

    async def fetchrow(self, query: str, *args: Any, **options: Any) -> Any:
        """Return the first row (or None) of ``query`` run with storable ``args``."""
        return await super().fetchrow(query, *storable(args), **options)

    async def fetchval(self, query: str, *args: Any, **options: Any) -> Any:
        """Return one value (or None) of ``query`` run with storable ``args``."""
        return await super().fetchval(query, *storable(args), **options)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=encode_json,
        decoder=orjson.loads,
        schema="pg_catalog",
    )


async def create_pool(url: str, schema: str | None) -> asyncpg.Pool:
    """Return a pool of 1..10 connections to ``url``, on ``schema`` (created if missing).

    ``schema`` must already be a validated identifier. Raises StorageUnavailable (URL shown
    without its password) when the server cannot be reached or refuses the login.
    """
    settings: dict[str, str] = {}
    try:
        if schema is not None:
            settings["search_path"] = f'"{schema}"'
            conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
            try:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            except asyncpg.UniqueViolationError:
                pass  # a concurrent opener created it between the check and the create
            finally:
                await conn.close()
        return await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=10,
            timeout=CONNECT_TIMEOUT,
            init=_init_connection,
            connection_class=StorableConnection,
            server_settings=settings,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StorageUnavailable(
            f"cannot connect to PostgreSQL at {redact_url(url)}: {exc}"
        ) from exc


# SQLSTATEs (whole classes by their first two characters, or single codes) that mean "not
# now" rather than "never": the server is going away or coming back, is out of a resource,
# or chose this transaction as the victim of a conflict. Retrying later can succeed.
TRANSIENT_SQLSTATE_CLASSES: Final = frozenset({"08", "53", "57", "58"})
TRANSIENT_SQLSTATES: Final = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available (lock_timeout)
        "25006",  # read_only_sql_transaction: a standby, e.g. during a failover
    }
)
_CLOSED_PHRASES: Final = (
    "connection is closed",
    "connection was closed",
    "pool is closed",
    "pool is closing",
)


def is_transient(exc: BaseException) -> bool:
    """Return True if ``exc`` (from asyncpg) is a failure that can pass.

    Transient: the connection is lost, refused or closed (OSError, TimeoutError, an
    interface error about a closed connection or pool), and the SQLSTATEs above:
    classes 08 connection exception, 53 insufficient resources (disk full, out of memory,
    too many connections), 57 operator intervention (admin shutdown, cannot connect now,
    query canceled), 58 system error (I/O), and serialization failures, deadlocks, lock
    timeouts and read-only transactions. Anything else (constraints, bad data, SQL) is not.
    """
    if isinstance(exc, OSError | TimeoutError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        return state[:2] in TRANSIENT_SQLSTATE_CLASSES or state in TRANSIENT_SQLSTATES
    if isinstance(exc, asyncpg.InterfaceError) and not isinstance(exc, ValueError):
        # The driver's own errors: a closed connection or pool passes; a bad argument (a
        # ValueError, whose text may quote any value) does not.
        return any(phrase in str(exc) for phrase in _CLOSED_PHRASES)
    return False


@contextmanager
def translated(pool: asyncpg.Pool | None, shown: str) -> Iterator[asyncpg.Pool]:
    """Yield ``pool``, turning asyncpg errors raised in the block into storage errors.

    Raises StorageUnavailable (closed storage, or :func:`is_transient`), Conflict (unique
    violation), NotFound (foreign key violation) or StorageError (any other error of the
    server or the driver).
    """
    if pool is None:
        raise StorageUnavailable(f"PostgreSQL storage {shown} is closed")
    try:
        yield pool
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        if is_transient(exc):
            raise StorageUnavailable(f"PostgreSQL at {shown}: {exc}") from exc
        if isinstance(exc, asyncpg.UniqueViolationError):
            raise Conflict(f"already exists: {exc.detail or exc}") from exc
        if isinstance(exc, asyncpg.ForeignKeyViolationError):
            detail = exc.detail
            raise NotFound(f"a referenced row does not exist in this tenant: {detail}") from exc
        if isinstance(exc, asyncpg.UndefinedTableError):
            raise StorageError(f"{exc}; call storage.migrate() first") from exc
        raise StorageError(f"PostgreSQL at {shown}: {exc}") from exc


async def apply_migrations(conn: asyncpg.Connection) -> list[int]:
    """Apply the pending PostgreSQL migrations on ``conn``; return the versions applied."""
    applied = []
    for m in load_migrations("postgres"):
        async with conn.transaction():
            # Serialises migrators of this schema (several nodes starting at once);
            # the lock is released at commit.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('zapline:' || current_schema()))"
            )
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at timestamptz NOT NULL)"
            )
            query = "SELECT 1 FROM schema_migrations WHERE version = $1"
            if await conn.fetchval(query, m.version):
                continue
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations VALUES ($1, $2, $3)", m.version, m.name, utcnow()
            )
        applied.append(m.version)
    return applied


def binder(args: list[Any]) -> Callable[[object], str]:
    """Return a ``bind(value)`` that appends ``value`` to ``args`` and answers ``$n``."""

    def bind(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    return bind


def values_of(record: Any) -> tuple[Any, ...]:
    """Return the field values of a record dataclass, in field order (no deep copy)."""
    return tuple(getattr(record, f.name) for f in fields(record))


def row_conversation(r: asyncpg.Record) -> Conversation:
    """Return the Conversation (with its contact) of a CONVERSATION_SELECT row."""
    values = dict(r.items())
    phone, name = values.pop("phone_number"), values.pop("contact_name")
    contact = Contact(values["contact_id"], values["tenant_id"], phone, name)
    return Conversation(**values, contact=contact)


def row_message(r: asyncpg.Record) -> Message:
    """Return the Message of a row selected with MESSAGE_COLS."""
    return Message(**dict(r.items()))


async def write_inbound(
    conn: asyncpg.Connection,
    *,
    contact: tuple[str, str, str | None],
    account: str,
    message: tuple[str, str, str, dict[str, Any], datetime],
    now: datetime,
) -> InboundResult:
    """Run the inbound write path on ``conn`` in one transaction and return its result.

    ``contact`` is (tenant_id, phone_number, name); ``account`` the account id; ``message``
    (whatsapp_message_id, type, content, metadata, timestamp). Two statements, three in a
    rare race. Raises asyncpg.ForeignKeyViolationError for an unknown tenant, or another
    tenant's account when the conversation is created.
    """
    tenant_id, phone_number, name = contact
    wamid, mtype, content, metadata, when = message
    message_id = new_id()
    # READ COMMITTED whatever the server default: each statement must see what racing
    # transactions committed before it (see the statements above).
    async with conn.transaction(isolation="read_committed"):
        k = await conn.fetchrow(
            _INBOUND_CONTACT, new_id(), tenant_id, phone_number, name, now, new_id(), account
        )
        assert k is not None  # an upsert always returns its row
        args = (message_id, wamid, mtype, content, metadata, when, now)
        r = await conn.fetchrow(_INBOUND_MESSAGE, tenant_id, k[0], *args)
        if r is None:
            r = await conn.fetchrow(_INBOUND_REPLAY, tenant_id, k[0], wamid)
    assert r is not None  # the conversation exists and the WhatsApp id is stored
    stored = Message(*r[:13])
    conversation = Conversation(
        **dict(zip(_CONVERSATION_FIELDS, r[13:], strict=True)),
        contact=Contact(k[0], tenant_id, k[1], k[2]),
    )
    return InboundResult(conversation, bool(k[3]), stored, stored.id == message_id)
