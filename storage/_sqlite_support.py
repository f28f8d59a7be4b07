"""SQLite plumbing kept out of ``sqlite.py``: connection set-up, migrations, error
translation, column lists and row mappers.

Everything here runs inside the worker thread that owns the connection at that moment.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import orjson

from ._common import from_iso, new_id, to_iso, utcnow
from ._migrations import Migration, split_sqlite_script
from ._records import (
    Account,
    Conflict,
    Contact,
    Conversation,
    DeadLetter,
    InboundRecord,
    InboundResult,
    InboxItem,
    Message,
    NotFound,
    StorageError,
    StorageUnavailable,
    User,
)
from ._text import encode_json, storable

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000

USER_COLS = "id, tenant_id, email, name, role, created_at"
ACCOUNT_COLS = "id, tenant_id, phone_number_id, verify_token, app_secret, access_token, created_at"
MESSAGE_COLS = (
    "id, tenant_id, conversation_id, contact_id, whatsapp_message_id, direction, type,"
    " content, metadata, status, error, timestamp, created_at"
)
CONVERSATION_SELECT = (
    "SELECT c.id, c.tenant_id, c.contact_id, c.account_id, c.stage, c.assignee_id,"
    " c.last_message_at, c.created_at, c.updated_at, k.phone_number, k.name"
    " FROM conversations c JOIN contacts k ON k.id = c.contact_id"
)
# Parameters: id, tenant_id, phone_number, name (None for empty), created_at.
UPSERT_CONTACT = (
    "INSERT INTO contacts (id, tenant_id, phone_number, name, created_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, phone_number) DO UPDATE"
    " SET name = coalesce(nullif(excluded.name, ''), contacts.name)"
    " RETURNING id, tenant_id, phone_number, name"
)
# Parameters: updated_at, then the activity time twice, then the conversation id.
TOUCH_CONVERSATION = (
    "UPDATE conversations SET updated_at = ?, last_message_at = CASE"
    " WHEN last_message_at IS NULL OR last_message_at < ? THEN ?"
    " ELSE last_message_at END WHERE id = ?"
)


class StorableConnection(sqlite3.Connection):
    """A connection whose ``execute`` stores every parameter as :func:`storable` makes it.

    The seam where text enters SQLite: the same rule PostgreSQL's connection applies, so
    both store the same text (see ``storage/_text.py``).
    """

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        """Return the cursor of ``sql`` run with storable ``parameters``."""
        return super().execute(sql, storable(parameters))


def connect(path: str) -> tuple[sqlite3.Connection, str]:
    """Return a connection to ``path`` set up for Zapline and its journal mode.

    The mode is "wal" unless the file system refused it ("memory" for ``:memory:``).
    The connection is a :class:`StorableConnection` and starts with synchronous=FULL, busy timeout and foreign keys on.
    Raises sqlite3.Error if the file cannot be opened.
    """
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
        timeout=BUSY_TIMEOUT_MS / 1000,
        factory=StorableConnection,
    )
    try:
        conn.row_factory = sqlite3.Row
        mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn, mode


def binder(args: list[Any]) -> Callable[[object], str]:
    """Return a ``bind(value)`` that appends ``value`` to ``args`` and answers ``?``."""

    def bind(value: object) -> str:
        args.append(value)
        return "?"

    return bind


def apply_migration(migration: Migration, db: sqlite3.Connection) -> bool:
    """Apply ``migration`` unless recorded; return True if applied. Call in a transaction."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    done = db.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,))
    if done.fetchone() is not None:
        return False
    for statement in split_sqlite_script(migration.sql):
        db.execute(statement)
    db.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
        (migration.version, migration.name, to_iso(utcnow())),
    )
    return True


# SQLite primary result codes (the low byte of ``sqlite_errorcode``) that mean "not now"
# rather than "never": the same statement can succeed once space, the lock or the file
# system is back. Anything else (constraints, SQL errors, corruption) is permanent.
TRANSIENT_CODES: Final = {
    5: "SQLITE_BUSY",  # another connection holds the lock past busy_timeout
    6: "SQLITE_LOCKED",
    7: "SQLITE_NOMEM",
    8: "SQLITE_READONLY",  # read-only file system, or the file became read-only
    10: "SQLITE_IOERR",
    13: "SQLITE_FULL",  # disk full, or max_page_count reached
    14: "SQLITE_CANTOPEN",
    15: "SQLITE_PROTOCOL",
}


def is_transient(exc: sqlite3.Error) -> bool:
    """Return True if ``exc`` is a failure that can pass (see TRANSIENT_CODES).

    An error without a result code (raised by the driver itself, not by SQLite) is not.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in TRANSIENT_CODES


def guarded(fn: Callable[..., T], *args: Any) -> T:
    """Return ``fn(*args[:-1])``, translating sqlite3 errors; ``args[-1]`` is the db path.

    Raises StorageUnavailable for a transient failure (:func:`is_transient`: disk full,
    locked past busy_timeout, I/O error, read-only, cannot open) or a connection closed
    under a queued call, Conflict (unique rule),
    NotFound (foreign key) or StorageError (anything else, e.g. schema missing).
    """
    *call_args, path = args
    try:
        return fn(*call_args)
    except sqlite3.Error as exc:
        text = str(exc)
        if is_transient(exc) or (
            isinstance(exc, sqlite3.ProgrammingError) and "closed database" in text
        ):
            raise StorageUnavailable(f"SQLite database {path}: {text}") from exc
        if isinstance(exc, sqlite3.IntegrityError) and text.startswith("UNIQUE"):
            raise Conflict(
                f"already exists: {text.removeprefix('UNIQUE constraint failed: ')}"
            ) from exc
        if isinstance(exc, sqlite3.IntegrityError) and text.startswith("FOREIGN KEY"):
            raise NotFound("a referenced row does not exist in this tenant") from exc
        if "no such table" in text:
            raise StorageError(f"SQLite {path}: {text}; call storage.migrate() first") from exc
        raise StorageError(f"SQLite {path}: {text}") from exc


def in_transaction(
    fn: Callable[[sqlite3.Connection], T], synchronous: str, db: sqlite3.Connection
) -> T:
    """Return ``fn(db)`` run inside BEGIN IMMEDIATE ... COMMIT, rolled back if it raises.

    ``synchronous`` ("FULL" or "NORMAL") is set first and governs this commit (see the
    top of ``sqlite.py`` for which writes get which). IMMEDIATE takes the write lock up
    front, so another process waits on busy_timeout at BEGIN instead of failing half-way
    when a read turns into a write. Raises ValueError for another ``synchronous`` value.
    """
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError(f"synchronous must be FULL or NORMAL, got {synchronous!r}")
    # The level can only change outside a transaction; it costs a microsecond or two.
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("BEGIN IMMEDIATE")
    try:
        result = fn(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


def conversation_for(
    db: sqlite3.Connection, tenant_id: str, contact_id: str, account_id: str, now: str
) -> tuple[str, bool]:
    """Return the id of the contact's conversation, creating it, and whether it was created.

    Call inside a write transaction: the write lock (BEGIN IMMEDIATE) means nothing can
    slip in between the insert and the read, so read-after-conflict is race-free here.
    """
    created = db.execute(
        "INSERT INTO conversations (id, tenant_id, contact_id, account_id, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (tenant_id, contact_id) DO NOTHING RETURNING id",
        (new_id(), tenant_id, contact_id, account_id, now, now),
    ).fetchone()
    if created is not None:
        return str(created[0]), True
    row = db.execute(
        "SELECT id FROM conversations WHERE tenant_id = ? AND contact_id = ?",
        (tenant_id, contact_id),
    ).fetchone()
    return str(row[0]), False


def write_message(db: sqlite3.Connection, values: tuple[Any, ...]) -> tuple[sqlite3.Row, bool]:
    """Insert a message (``values`` in MESSAGE_COLS order) unless its WhatsApp id is stored.

    Returns the new row and True, or the stored row of that (tenant, WhatsApp id) and
    False. Call inside a write transaction.
    """
    row = db.execute(
        f"INSERT INTO messages ({MESSAGE_COLS}) VALUES ({', '.join('?' * 13)})"
        " ON CONFLICT (tenant_id, whatsapp_message_id) DO NOTHING"
        f" RETURNING {MESSAGE_COLS}",
        values,
    ).fetchone()
    if row is not None:
        return row, True
    existing = db.execute(
        f"SELECT {MESSAGE_COLS} FROM messages WHERE tenant_id = ? AND whatsapp_message_id = ?",
        (values[1], values[4]),
    ).fetchone()
    return existing, False


def write_inbound(
    db: sqlite3.Connection,
    *,
    contact: tuple[str, str, str | None],
    account: str,
    message: tuple[str, str, str, str, str],
    now: str,
) -> InboundResult:
    """Run the inbound write path on ``db`` and return its result; call it in one transaction.

    ``contact`` is (tenant_id, phone_number, name); ``account`` the account id; ``message``
    (whatsapp_message_id, type, content, metadata JSON, timestamp); times are stored text.
    Raises sqlite3.IntegrityError (foreign key) for an unknown tenant, or another tenant's
    account when the conversation is created.
    """
    tenant_id = contact[0]
    wamid, mtype, content, metadata, when = message
    contact_id = db.execute(UPSERT_CONTACT, (new_id(), *contact, now)).fetchone()[0]
    conversation_id, created = conversation_for(db, tenant_id, contact_id, account, now)
    keys = (new_id(), tenant_id, conversation_id, contact_id, wamid)
    row, inserted = write_message(
        db, (*keys, "inbound", mtype, content, metadata, "RECEIVED", None, when, now)
    )
    if inserted:
        db.execute(TOUCH_CONVERSATION, (now, when, when, conversation_id))
    conversation = db.execute(f"{CONVERSATION_SELECT} WHERE c.id = ?", (conversation_id,))
    return InboundResult(
        row_conversation(conversation.fetchone()), created, row_message(row), inserted
    )


InboundArgs = tuple[tuple[str, str, str | None], str, tuple[str, str, str, str, str]]


def inbound_args(record: InboundRecord) -> InboundArgs:
    """Return ``write_inbound``'s (contact, account, message) arguments for ``record``."""
    contact = (record.tenant_id, record.phone_number, record.contact_name or None)
    body = (record.content or "", encode_json(record.metadata), to_iso(record.timestamp))
    return contact, record.account_id, (record.whatsapp_message_id, record.type, *body)


def write_inbound_many(
    db: sqlite3.Connection, *, records: Sequence[InboundRecord], now: str
) -> list[InboundResult]:
    """Run ``write_inbound`` for each record, in order; call it in one transaction.

    Raises what ``write_inbound`` raises for the first record refused (the caller's
    transaction then rolls back all of them).
    """
    results = []
    for record in records:
        contact, account, message = inbound_args(record)
        results.append(
            write_inbound(db, contact=contact, account=account, message=message, now=now)
        )
    return results


def update_conversation(
    changes: dict[str, Any], key: tuple[str, str], db: sqlite3.Connection
) -> sqlite3.Row | None:
    """Set ``changes`` (column -> value) on the conversation ``key`` (tenant_id, id).

    Returns its CONVERSATION_SELECT row afterwards, or None if the tenant has no such
    conversation. Call inside a write transaction.
    """
    sets = ", ".join(f"{column} = ?" for column in changes)
    sql = f"UPDATE conversations SET {sets} WHERE tenant_id = ? AND id = ?"
    db.execute(sql, (*changes.values(), *key))
    row: sqlite3.Row | None = db.execute(
        f"{CONVERSATION_SELECT} WHERE c.tenant_id = ? AND c.id = ?", key
    ).fetchone()
    return row


def append_inbox(db: sqlite3.Connection, bodies: list[bytes], now: str) -> list[int]:
    """Insert ``bodies`` as pending inbox rows; return their ids in order (ascending)."""
    ids = []
    for body in bodies:
        cur = db.execute("INSERT INTO inbox (body, received_at) VALUES (?, ?)", (body, now))
        ids.append(int(cur.lastrowid or 0))
    return ids


def set_status(
    update: str, args: tuple[Any, ...], where: str, key: tuple[Any, ...], db: sqlite3.Connection
) -> tuple[sqlite3.Row, bool] | None:
    """Run ``UPDATE messages SET {update}``; return (row, True) if it changed a row.

    Otherwise return (row, False) for the row ``where`` selects with ``key``, or None.
    The rank comparison sits in the UPDATE's WHERE, so the decision and the write are one
    statement; the follow-up SELECT only reports an unchanged row.
    """
    row = db.execute(f"UPDATE messages SET {update} RETURNING {MESSAGE_COLS}", args).fetchone()
    if row is not None:
        return row, True
    row = db.execute(f"SELECT {MESSAGE_COLS} FROM messages WHERE {where}", key).fetchone()
    return None if row is None else (row, False)


def row_user(row: sqlite3.Row) -> User:
    """Return the User of a row selected with USER_COLS."""
    return User(row[0], row[1], row[2], row[3], row[4], from_iso(row[5]))


def row_account(row: sqlite3.Row) -> Account:
    """Return the Account of a row selected with ACCOUNT_COLS."""
    return Account(row[0], row[1], row[2], row[3], row[4], row[5], from_iso(row[6]))


def row_conversation(row: sqlite3.Row) -> Conversation:
    """Return the Conversation (with its contact) of a row from CONVERSATION_SELECT."""
    contact = Contact(row[2], row[1], row[9], row[10])
    return Conversation(
        id=row[0],
        tenant_id=row[1],
        contact_id=row[2],
        account_id=row[3],
        stage=row[4],
        assignee_id=row[5],
        last_message_at=None if row[6] is None else from_iso(row[6]),
        created_at=from_iso(row[7]),
        updated_at=from_iso(row[8]),
        contact=contact,
    )


def row_message(row: sqlite3.Row) -> Message:
    """Return the Message of a row selected with MESSAGE_COLS."""
    return Message(
        id=row[0],
        tenant_id=row[1],
        conversation_id=row[2],
        contact_id=row[3],
        whatsapp_message_id=row[4],
        direction=row[5],
        type=row[6],
        content=row[7],
        metadata=orjson.loads(row[8]),
        status=row[9],
        error=None if row[10] is None else orjson.loads(row[10]),
        timestamp=from_iso(row[11]),
        created_at=from_iso(row[12]),
    )


def row_inbox(row: sqlite3.Row) -> InboxItem:
    """Return the InboxItem of an ``id, body, received_at, state, attempts, error`` row."""
    return InboxItem(row[0], bytes(row[1]), from_iso(row[2]), row[3], row[4], row[5])


def row_dead_letter(row: sqlite3.Row) -> DeadLetter:
    """Return the DeadLetter of an ``id, kind, payload, error, created_at`` row."""
    return DeadLetter(row[0], row[1], orjson.loads(row[2]), row[3], from_iso(row[4]))
