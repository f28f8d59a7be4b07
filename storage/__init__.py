"""Zapline storage: one async interface over SQLite (embedded default) and PostgreSQL.

Open with :func:`open_storage`, then ``await storage.migrate()`` once at start-up. The
contract every implementation keeps is written on :class:`Storage` (``storage/_base.py``);
:class:`StorageUnavailable` means "not now, retry", any other :class:`StorageError` "never".
Storage knows nothing of sockets or HTTP.

The house: the records and errors (``_records``); every method written once in SQL both
databases run (``_sql_storage``, its multi-statement writes as sans-IO steps in
``_transactions`` and ``_steps``, row mappers in ``_rows``); the few places the dialects
differ (``_dialect``); text made storable (``_text``); then one module per database for
what only it does (``sqlite`` with ``_sqlite_driver``; ``postgres`` with
``_postgres_driver`` and ``_postgres_inbound``). Only the PostgreSQL modules import asyncpg.
"""

from __future__ import annotations

import re
from typing import Final

from ._audit import AuditEntry, AuditRecord
from ._base import Storage
from ._common import redact_url
from ._events import LoggedEvent
from ._reads import ReadResult
from ._records import (
    UNSET,
    Account,
    Conflict,
    Contact,
    Conversation,
    DeadLetter,
    InboundRecord,
    InboundResult,
    InboxItem,
    Message,
    MessageChange,
    NotFound,
    StorageError,
    StorageUnavailable,
    Tenant,
    Unset,
    User,
    VersionConflict,
)

__all__ = [
    "DEFAULT_URL",
    "UNSET",
    "Account",
    "AuditEntry",
    "AuditRecord",
    "Conflict",
    "Contact",
    "Conversation",
    "DeadLetter",
    "InboundRecord",
    "InboundResult",
    "InboxItem",
    "LoggedEvent",
    "Message",
    "MessageChange",
    "NotFound",
    "ReadResult",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "Tenant",
    "Unset",
    "User",
    "VersionConflict",
    "open_storage",
    "sqlite_path",
]

DEFAULT_URL: Final = "sqlite:///./zapline.db"

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def sqlite_path(url: str) -> str:
    """Return the file path of a ``sqlite:///`` URL (``:memory:`` stays as is).

    ``sqlite:///./x.db`` and ``sqlite:///x.db`` are relative to the working directory,
    ``sqlite:////abs/x.db`` is absolute. Raises ValueError if it is not such a URL.
    """
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(f"not a SQLite URL (expected sqlite:///path): {url!r}")
    return url[len(prefix) :].split("?", 1)[0]


async def open_storage(url: str = DEFAULT_URL, *, schema: str | None = None) -> Storage:
    """Connect to the database named by ``url`` and return its storage (not yet migrated).

    ``sqlite:///./zapline.db`` (relative), ``sqlite:////abs/path.db``, ``sqlite:///:memory:``;
    ``postgresql://...`` or ``postgres://...``. ``schema`` (PostgreSQL only) is a schema put
    first on the search_path and created if missing.

    Raises StorageUnavailable (naming the URL, password hidden) when the database cannot be
    reached, ValueError for an unknown scheme, a bad schema name, or ``schema`` with SQLite.
    """
    if url.startswith("sqlite:"):
        if schema is not None:
            raise ValueError("schema= is only meaningful for PostgreSQL")
        from .sqlite import SQLiteStorage

        return await SQLiteStorage.open(sqlite_path(url))
    if url.startswith(("postgresql://", "postgres://")):
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema must be a plain SQL identifier, got {schema!r}")
        # Imported here so an embedded (SQLite) deployment never loads asyncpg.
        from .postgres import PostgresStorage

        return await PostgresStorage.open(url, schema=schema)
    raise ValueError(
        f"unknown database URL scheme in {redact_url(url)!r}:"
        " use sqlite:///path or postgresql://user@host/db"
    )
