"""SQLite plumbing kept out of ``sqlite.py``: connection set-up, migrations, error
translation, column lists and row mappers.

Everything here runs inside the worker thread that owns the connection at that moment.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from ._common import from_iso, to_iso, utcnow
from ._migrations import Migration, split_sqlite_script
from ._records import (
    Account,
    Conflict,
    Contact,
    Conversation,
    DeadLetter,
    InboxItem,
    Message,
    NotFound,
    StorageError,
    StorageUnavailable,
    User,
)

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


def connect(path: str) -> sqlite3.Connection:
    """Return a connection to ``path`` set up for Zapline (WAL, FULL sync, busy timeout, FKs).

    Raises sqlite3.Error if the file cannot be opened.
    """
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn


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


def guarded(fn: Callable[..., T], *args: Any) -> T:
    """Return ``fn(*args[:-1])``, translating sqlite3 errors; ``args[-1]`` is the db path.

    Raises Conflict (unique rule), NotFound (foreign key), StorageUnavailable (cannot open,
    locked past busy_timeout, I/O) or StorageError (anything else, e.g. schema missing).
    """
    *call_args, path = args
    try:
        return fn(*call_args)
    except sqlite3.IntegrityError as exc:
        text = str(exc)
        if text.startswith("UNIQUE"):
            raise Conflict(
                f"already exists: {text.removeprefix('UNIQUE constraint failed: ')}"
            ) from exc
        if text.startswith("FOREIGN KEY"):
            raise NotFound("a referenced row does not exist in this tenant") from exc
        raise StorageError(f"SQLite {path}: {text}") from exc
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            raise StorageError(f"SQLite {path}: {exc}; call storage.migrate() first") from exc
        raise StorageUnavailable(f"SQLite database {path}: {exc}") from exc
    except sqlite3.Error as exc:
        raise StorageError(f"SQLite {path}: {exc}") from exc


def in_transaction(fn: Callable[[sqlite3.Connection], T], db: sqlite3.Connection) -> T:
    """Return ``fn(db)`` run inside BEGIN IMMEDIATE ... COMMIT, rolled back if it raises.

    IMMEDIATE takes the write lock up front, so another process waits on busy_timeout at
    BEGIN instead of failing half-way when a read turns into a write.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        result = fn(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


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
