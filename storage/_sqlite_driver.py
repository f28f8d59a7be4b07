"""SQLite's side of the seam: the connection, values in, errors out, steps and migrations.

Everything here runs inside the worker thread that owns the connection at that moment.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any, Final, TypeVar

from ._common import to_iso, utcnow
from ._migrations import Migration, split_sqlite_script
from ._records import Conflict, NotFound, StorageError, StorageUnavailable
from ._steps import Steps
from ._text import encode_json, storable, storable_text

T = TypeVar("T")

BUSY_TIMEOUT_MS: Final = 10_000

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


def stored_value(value: Any) -> Any:
    """Return ``value`` as SQLite stores it, made :func:`storable` on the way.

    Text is made storable; a datetime becomes fixed-width ISO-8601 UTC text (so it sorts as
    text); a dict or list becomes JSON text (:func:`encode_json`); anything else (int,
    float, bytes, None) is bound as it is. Raises ValueError for a naive datetime.
    """
    kind = type(value)
    if kind is str:
        return storable_text(value)
    if value is None or kind is int or kind is bytes or kind is float:
        return value
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, dict | list):
        return encode_json(value)
    return storable(value)


# A transaction binds the same "now" several times: format each distinct instant once.
_iso: Final = lru_cache(maxsize=256)(to_iso)


class StorableConnection(sqlite3.Connection):
    """A connection whose ``execute`` binds every parameter as SQLite stores it.

    The seam where values enter SQLite: :func:`stored_value`, which applies the same text
    rule as PostgreSQL's connection (``storage/_text.py``) and SQLite's stored forms.
    """

    # The synchronous level this connection was last set to ("" before the first set):
    # ``in_transaction`` sets it only when a commit needs another one.
    synchronous = ""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        """Return the cursor of ``sql`` run with the stored form of ``parameters``.

        Positional parameters only (a sequence); storage never binds by name, and never
        calls ``executemany``, which this seam does not cover.
        """
        return super().execute(sql, [stored_value(v) for v in parameters])


def connect(path: str) -> tuple[sqlite3.Connection, str]:
    """Return a connection to ``path`` set up for Zapline and its journal mode.

    The mode is "wal" unless the file system refused it ("memory" for ``:memory:``).
    The connection is a :class:`StorableConnection` and starts with synchronous=FULL,
    busy timeout and foreign keys on. Raises sqlite3.Error if the file cannot be opened.
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
        conn.synchronous = "FULL"
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn, mode


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
    under a queued call, Conflict (unique rule), NotFound (foreign key) or StorageError
    (anything else, e.g. schema missing).
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


def run_steps(steps: Steps[T], db: sqlite3.Connection) -> T:
    """Return the outcome of ``steps``, each query run on ``db`` (no transaction of its own)."""
    try:
        query = next(steps)
        while True:
            cursor = db.execute(query.sql, query.args)
            result: Any = None
            if query.fetch == "one":
                result = cursor.fetchone()
            elif query.fetch == "all":
                result = cursor.fetchall()
            query = steps.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    finally:
        steps.close()


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
    # The level can only change outside a transaction. Set only when it changes: a webhook
    # alone in its commit found the PRAGMA at 5-80 us of CPU (warm, cold), at 10 webhooks/s.
    if getattr(db, "synchronous", None) != synchronous:
        db.execute(f"PRAGMA synchronous={synchronous}")
        if isinstance(db, StorableConnection):
            db.synchronous = synchronous
    db.execute("BEGIN IMMEDIATE")
    try:
        result = fn(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


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
