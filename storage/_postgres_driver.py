"""PostgreSQL's side of the seam: the pool and its connections, values in, errors out,
steps and migrations. The only storage module, with ``postgres.py`` and
``_postgres_inbound.py``, that imports asyncpg.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, TypeVar

import asyncpg
import orjson
import sniffio

from ._common import redact_url, utcnow
from ._dialect import numbered
from ._migrations import load_migrations
from ._records import Conflict, NotFound, StorageError, StorageUnavailable
from ._steps import Steps
from ._text import encode_json, storable

T = TypeVar("T")

CONNECT_TIMEOUT: Final = 10.0


def require_asyncio() -> None:
    """Return None on asyncio; raise StorageError on any other backend (asyncpg needs it)."""
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


async def run_steps(steps: Steps[T], conn: asyncpg.Connection) -> T:
    """Return the outcome of ``steps``, each query run on ``conn`` (no transaction of its own)."""
    try:
        query = next(steps)
        while True:
            sql = numbered(query.sql)
            result: Any = None
            if query.fetch == "one":
                result = await conn.fetchrow(sql, *query.args)
            elif query.fetch == "all":
                result = await conn.fetch(sql, *query.args)
            else:
                await conn.execute(sql, *query.args)
            query = steps.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    finally:
        steps.close()


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
