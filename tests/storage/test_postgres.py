"""PostgreSQL-only behaviour: connection failures, error classes and the asyncio-only rule."""

from __future__ import annotations

from pathlib import Path

import anyio
import asyncpg
import asyncpg.exceptions as pg
import pytest
from _stores import migrated
from asyncpg.exceptions._base import DataError

from storage import Conflict, StorageError, StorageUnavailable, open_storage
from storage._postgres_driver import is_transient

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_unreachable_server_is_unavailable_and_hides_the_password() -> None:
    # Port 9 on loopback: nothing listens there, so the connection is refused at once.
    url = "postgresql://zapline:hunter2@127.0.0.1:9/zapline"
    with pytest.raises(StorageUnavailable) as info:
        await open_storage(url)
    message = str(info.value)
    assert "127.0.0.1:9" in message and "hunter2" not in message and "***" in message


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_bad_schema_name_is_refused() -> None:
    with pytest.raises(ValueError, match="identifier"):
        await open_storage("postgres://u@127.0.0.1:9/db", schema='x"; DROP TABLE users; --')


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_backend_gets_a_clear_error() -> None:
    with pytest.raises(StorageError, match="asyncio"):
        await open_storage("postgresql://u@127.0.0.1:9/db")


# -- transient failures are StorageUnavailable, permanent ones are not -----------------------


async def _blocked_by(locker: asyncpg.Connection) -> int:
    """Return the pid of the backend waiting on ``locker``'s lock (polls up to 10 s)."""
    with anyio.fail_after(10):
        while True:
            pid = await locker.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                locker.get_server_pid(),
            )
            if pid is not None:
                return int(pid)
            await anyio.sleep(0.02)


@pytest.mark.postgres
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_terminated_connection_is_unavailable_then_recovers(tmp_path: Path) -> None:
    async with migrated("postgres", tmp_path) as (store, url, schema):
        tenant = await store.create_tenant("Acme")
        locker = await asyncpg.connect(url, server_settings={"search_path": f'"{schema}"'})
        try:
            # Only this test's own backend is terminated: the one waiting on our lock
            # (other suites share the database).
            async with locker.transaction():
                await locker.execute("LOCK TABLE meta IN ACCESS EXCLUSIVE MODE")
                result: list[BaseException] = []

                async def write() -> None:
                    try:
                        await store.set_meta("k", "v")
                    except BaseException as exc:  # recorded for the assertion below
                        result.append(exc)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(write)
                    victim = await _blocked_by(locker)
                    assert await locker.fetchval("SELECT pg_terminate_backend($1)", victim)
            assert len(result) == 1 and isinstance(result[0], StorageUnavailable), result
        finally:
            await locker.close()
        # The pool replaces the lost connection: the next calls work again.
        await store.set_meta("k", "v")
        assert await store.get_meta("k") == "v"
        assert await store.get_tenant(tenant.id) == tenant


@pytest.mark.postgres
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_bad_data_and_constraints_are_permanent(tmp_path: Path) -> None:
    async with migrated("postgres", tmp_path) as (store, _, _):
        tenant = await store.create_tenant("Acme")
        await store.add_account(tenant.id, "pn")
        with pytest.raises(Conflict):
            await store.add_account(tenant.id, "pn")
        with pytest.raises(StorageError) as info:
            await store.set_meta("k", 42)  # type: ignore[arg-type]
        assert not isinstance(info.value, StorageUnavailable)


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ConnectionRefusedError(111, "refused"), True),
        (ConnectionResetError(104, "reset"), True),
        (TimeoutError(), True),
        (pg.ConnectionDoesNotExistError("connection was closed in the middle"), True),
        (pg.ConnectionFailureError("08006"), True),
        (pg.AdminShutdownError("terminating connection"), True),
        (pg.CrashShutdownError("57P02"), True),
        (pg.CannotConnectNowError("the database system is starting up"), True),
        (pg.TooManyConnectionsError("too many clients"), True),
        (pg.DiskFullError("53100"), True),
        (pg.OutOfMemoryError("53200"), True),
        (pg.SerializationError("could not serialize"), True),
        (pg.DeadlockDetectedError("deadlock detected"), True),
        (pg.LockNotAvailableError("55P03"), True),
        (pg.ReadOnlySQLTransactionError("read-only transaction"), True),
        (pg.QueryCanceledError("statement timeout"), True),
        (asyncpg.InterfaceError("connection is closed"), True),
        (asyncpg.InterfaceError("pool is closing"), True),
        (pg.UniqueViolationError("duplicate key"), False),
        (pg.ForeignKeyViolationError("fk"), False),
        (pg.CharacterNotInRepertoireError('invalid byte sequence for encoding "UTF8"'), False),
        (pg.UntranslatableCharacterError("unsupported Unicode escape sequence"), False),
        (pg.UndefinedTableError("relation does not exist"), False),
        (pg.PostgresSyntaxError("syntax error"), False),
        (pg.InternalServerError("XX000"), False),
        (asyncpg.InterfaceError("the server expects 2 arguments, 1 was passed"), False),
        (DataError("invalid input for query argument $1: 'is closed' (expected int)"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_postgres_error_classification(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient
