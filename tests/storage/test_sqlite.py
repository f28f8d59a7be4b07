"""SQLite-only behaviour: the file outlives the process, URLs, pragmas, and trio support.

These run on asyncio and trio (the shared ``anyio_backend`` fixture): the SQLite
implementation is plain anyio and must work on both.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _stores import all_versions

from storage import (
    Conflict,
    Storage,
    StorageError,
    StorageUnavailable,
    open_storage,
    sqlite_path,
)
from storage._migrations import load_migrations
from storage._sqlite_driver import is_transient
from storage.sqlite import SQLiteStorage

pytestmark = pytest.mark.anyio


async def test_data_survives_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    async with await open_storage(url) as store:
        assert await store.migrate() == all_versions("sqlite")
        tenant = await store.create_tenant("Acme")
        ids = await store.inbox_append([b"a", b"b"])
        account = await store.add_account(tenant.id, "pn")
        contact = await store.upsert_contact(tenant.id, "5511", "Ana")
        conv, _ = await store.get_or_create_conversation(tenant.id, contact.id, account.id)
        at = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
        message, _ = await store.insert_message(
            tenant_id=tenant.id,
            conversation_id=conv.id,
            contact_id=contact.id,
            direction="inbound",
            type="TEXT",
            content="olá",
            metadata={"k": "v"},
            status="DELIVERED",
            timestamp=at,
            whatsapp_message_id="wamid.1",
        )

    async with await open_storage(url) as store:
        assert await store.migrate() == []
        assert await store.get_tenant(tenant.id) == tenant
        assert [item.id for item in await store.inbox_pending()] == ids
        assert await store.get_message(tenant.id, message.id) == message
        assert await store.get_conversation(tenant.id, conv.id) == conv

    # WAL is a property of the file, so any later opener (the admin CLI) sees it too.
    with sqlite3.connect(tmp_path / "desk.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = raw.execute("SELECT version, name FROM schema_migrations").fetchall()
        assert versions == [(m.version, m.name) for m in load_migrations("sqlite")]
    raw.close()


async def test_second_process_can_write_while_first_is_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    async with await open_storage(url) as server:
        await server.migrate()
        async with await open_storage(url) as cli:
            tenant = await cli.create_tenant("From the CLI")
        assert await server.get_tenant(tenant.id) == tenant


async def test_memory_database_works() -> None:
    async with await open_storage("sqlite:///:memory:") as store:
        assert await store.migrate() == all_versions("sqlite")
        tenant = await store.create_tenant("Acme")
        assert await store.get_tenant(tenant.id) == tenant


async def test_unopenable_file_is_unavailable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}"
    with pytest.raises(StorageUnavailable, match="missing-dir"):
        await open_storage(url)


async def test_unmigrated_database_says_what_to_do(tmp_path: Path) -> None:
    async with await open_storage(f"sqlite:///{tmp_path / 'x.db'}") as store:
        with pytest.raises(StorageError, match="migrate"):
            await store.create_tenant("Acme")


async def test_unknown_scheme_and_misplaced_schema() -> None:
    with pytest.raises(ValueError, match="scheme"):
        await open_storage("mysql://root:hunter2@localhost/db")
    with pytest.raises(ValueError, match="PostgreSQL"):
        await open_storage("sqlite:///:memory:", schema="s")


def test_sqlite_url_forms() -> None:
    assert sqlite_path("sqlite:///./zapline.db") == "./zapline.db"
    assert sqlite_path("sqlite:///zapline.db") == "zapline.db"
    assert sqlite_path("sqlite:////abs/path.db") == "/abs/path.db"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"
    with pytest.raises(ValueError):
        sqlite_path("sqlite://")


async def test_connection_is_durable_and_patient(tmp_path: Path) -> None:
    store = await SQLiteStorage.open(str(tmp_path / "x.db"))
    try:
        names = ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
        values = await store._call(
            lambda db: [db.execute(f"PRAGMA {name}").fetchone()[0] for name in names]
        )
        # The connection starts at synchronous=2 (FULL); each write transaction then sets
        # its own level (test_only_the_inbox_commit_is_fsynced).
        assert values == ["wal", 2, 10_000, 1]
    finally:
        await store.aclose()


async def _synchronous(store: SQLiteStorage) -> int:
    return int(await store._call(lambda db: db.execute("PRAGMA synchronous").fetchone()[0]))


async def _record(store: Storage, tenant_id: str, account_id: str, wamid: str) -> None:
    await store.record_inbound(
        tenant_id=tenant_id,
        account_id=account_id,
        phone_number="5511",
        contact_name="Ana",
        whatsapp_message_id=wamid,
        type="TEXT",
        content="hi",
        metadata={},
        timestamp=datetime(2024, 1, 2, tzinfo=UTC),
    )


async def test_only_the_inbox_commit_is_fsynced(tmp_path: Path) -> None:
    store = await SQLiteStorage.open(str(tmp_path / "x.db"))
    try:
        await store.migrate()
        tenant = await store.create_tenant("Acme")
        account = await store.add_account(tenant.id, "pn")
        # synchronous is set per transaction and stays as the last one left it:
        # 2 is FULL (fsync at commit), 1 is NORMAL (ordered, no fsync) in WAL mode.
        await _record(store, tenant.id, account.id, "wamid.1")
        assert await _synchronous(store) == 1
        ids = await store.inbox_append([b"{}"])
        assert await _synchronous(store) == 2
        await store.inbox_mark(ids, "done")
        assert await _synchronous(store) == 1
        assert await store.count_messages(tenant.id) == 1
    finally:
        await store.aclose()


async def test_the_level_is_set_only_when_a_commit_needs_another(tmp_path: Path) -> None:
    store = await SQLiteStorage.open(str(tmp_path / "x.db"))
    try:
        await store.migrate()
        seen: list[str] = []
        await store._call(lambda db: db.set_trace_callback(seen.append))
        for _ in range(3):
            await store.inbox_append([b"{}"])  # FULL (migrate left NORMAL), then as it is
        await store.inbox_mark([1], "done")  # NORMAL
        await store.inbox_append([b"{}"])  # FULL again
        await store._call(lambda db: db.set_trace_callback(None))
        pragmas = [sql for sql in seen if sql.startswith("PRAGMA synchronous")]
        expected = [
            "PRAGMA synchronous=FULL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA synchronous=FULL",
        ]
        assert pragmas == expected
        assert await _synchronous(store) == 2
    finally:
        await store.aclose()


async def test_without_wal_every_commit_is_fsynced() -> None:
    store = await SQLiteStorage.open(":memory:")  # no WAL for an in-memory database
    try:
        await store.migrate()
        tenant = await store.create_tenant("Acme")
        account = await store.add_account(tenant.id, "pn")
        await _record(store, tenant.id, account.id, "wamid.1")
        assert await _synchronous(store) == 2
    finally:
        await store.aclose()


def test_a_killed_process_loses_no_unsynced_commit(tmp_path: Path) -> None:
    # NORMAL commits are not fsynced, but a process that dies without closing anything
    # must still leave them to the next opener (they are in the WAL, in the OS cache).
    path = tmp_path / "crash.db"
    script = textwrap.dedent(
        f"""
        import os
        from datetime import UTC, datetime
        import anyio
        from storage import open_storage

        async def main():
            store = await open_storage({f"sqlite:///{path}"!r})
            await store.migrate()
            tenant = await store.create_tenant("Acme")
            account = await store.add_account(tenant.id, "pn")
            ids = await store.inbox_append([b"{{}}"])
            for i in range(5):
                await store.record_inbound(
                    tenant_id=tenant.id, account_id=account.id, phone_number="5511",
                    contact_name="Ana", whatsapp_message_id=f"wamid.{{i}}", type="TEXT",
                    content="hi", metadata={{}}, timestamp=datetime.now(UTC),
                )
            await store.inbox_mark(ids, "done")
            os._exit(0)  # no close, no checkpoint, no atexit

        anyio.run(main)
        """
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", script], cwd=root, check=True, timeout=30)
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*) FROM messages").fetchone()[0] == 5
        assert raw.execute("SELECT state FROM inbox").fetchall() == [("done",)]
        last = raw.execute("SELECT last_message_at FROM conversations").fetchone()[0]
        assert last is not None
    raw.close()


# -- transient failures are StorageUnavailable, permanent ones are not -----------------------


async def _fill_up(store: SQLiteStorage) -> None:
    """Cap the file at the pages it has, then write until not even a small row fits.

    What a full disk looks like to SQLite: SQLITE_FULL on any write that needs a page, with
    the free pages (the freelist) used up first, as writes in production use them up.
    """
    await store._call(
        lambda db: db.execute(
            f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}"
        )
    )
    for size in (4000, 1000, 100, 1):
        with contextlib.suppress(StorageUnavailable):
            while True:
                await store.add_dead_letter("filler", {"pad": "x" * size}, "")


async def test_disk_full_is_unavailable_and_passes_when_space_returns(tmp_path: Path) -> None:
    store = await SQLiteStorage.open(str(tmp_path / "full.db"))
    try:
        await store.migrate()
        kept = await store.create_tenant("Acme")
        await _fill_up(store)
        with pytest.raises(StorageUnavailable, match="full"):
            await store.add_dead_letter("job", {"blob": "x" * 200_000}, "boom")
        with pytest.raises(StorageUnavailable, match="full"):
            await store.inbox_append([b"y" * 200_000])
        await store._call(lambda db: db.execute("PRAGMA max_page_count = 1073741823"))
        assert await store.add_dead_letter("job", {"blob": "x" * 200_000}, "boom") > 0
        assert await store.get_tenant(kept.id) == kept
    finally:
        await store.aclose()


async def test_check_writable_fails_while_full_although_reads_work(tmp_path: Path) -> None:
    store = await SQLiteStorage.open(str(tmp_path / "full.db"))
    try:
        await store.migrate()
        await store.check_writable()
        await _fill_up(store)
        await store.ping()  # a read still answers: this is why readiness needs a write
        with pytest.raises(StorageUnavailable, match="full"):
            await store.check_writable()
        await store._call(lambda db: db.execute("PRAGMA max_page_count = 1073741823"))
        await store.check_writable()
    finally:
        await store.aclose()


async def test_locked_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = await SQLiteStorage.open(str(path))
    other = sqlite3.connect(path, isolation_level=None)
    try:
        await store.migrate()
        await store._call(lambda db: db.execute("PRAGMA busy_timeout = 50"))
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(StorageUnavailable, match="locked"):
            await store.create_tenant("Acme")
        other.execute("ROLLBACK")
        tenant = await store.create_tenant("Acme")
        assert await store.get_tenant(tenant.id) == tenant
    finally:
        other.close()
        await store.aclose()


async def test_read_only_database_is_unavailable(tmp_path: Path) -> None:
    # query_only makes SQLite answer writes as it does on a read-only file system
    # (SQLITE_READONLY); as root, file permissions could not show it.
    store = await SQLiteStorage.open(str(tmp_path / "ro.db"))
    try:
        await store.migrate()
        await store._call(lambda db: db.execute("PRAGMA query_only = 1"))
        with pytest.raises(StorageUnavailable, match="readonly"):
            await store.set_meta("k", "v")
        await store._call(lambda db: db.execute("PRAGMA query_only = 0"))
        await store.set_meta("k", "v")
        assert await store.get_meta("k") == "v"
    finally:
        await store.aclose()


async def test_permanent_errors_are_not_unavailable(tmp_path: Path) -> None:
    store = await SQLiteStorage.open(str(tmp_path / "x.db"))
    try:
        await store.migrate()
        with pytest.raises(StorageError) as info:
            await store._one("SELEC 1")
        assert not isinstance(info.value, StorageUnavailable)
        tenant = await store.create_tenant("Acme")
        await store.add_account(tenant.id, "pn")
        with pytest.raises(Conflict):
            await store.add_account(tenant.id, "pn")
    finally:
        await store.aclose()


def _sqlite_error(code: int) -> sqlite3.Error:
    exc = sqlite3.OperationalError("injected")
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    ("code", "transient"),
    [
        (5, True),  # SQLITE_BUSY
        (517, True),  # SQLITE_BUSY_SNAPSHOT: extended codes keep the primary in the low byte
        (6, True),  # SQLITE_LOCKED
        (7, True),  # SQLITE_NOMEM
        (8, True),  # SQLITE_READONLY
        (10, True),  # SQLITE_IOERR
        (778, True),  # SQLITE_IOERR_WRITE
        (13, True),  # SQLITE_FULL
        (14, True),  # SQLITE_CANTOPEN
        (15, True),  # SQLITE_PROTOCOL
        (1, False),  # SQLITE_ERROR: SQL errors, missing tables
        (11, False),  # SQLITE_CORRUPT
        (18, False),  # SQLITE_TOOBIG
        (19, False),  # SQLITE_CONSTRAINT
        (20, False),  # SQLITE_MISMATCH
        (26, False),  # SQLITE_NOTADB
    ],
)
def test_sqlite_error_classification(code: int, transient: bool) -> None:
    assert is_transient(_sqlite_error(code)) is transient
    assert not is_transient(sqlite3.InterfaceError("bad parameter type"))


def test_an_embedded_deployment_never_imports_asyncpg(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from datetime import UTC, datetime
        import anyio
        import storage.sqlite
        from storage import open_storage

        async def main():
            async with await open_storage({f"sqlite:///{tmp_path / 'embedded.db'}"!r}) as store:
                await store.migrate()
                tenant = await store.create_tenant("Acme")
                account = await store.add_account(tenant.id, "pn")
                ids = await store.inbox_append([b"{{}}"])
                await store.record_inbound(
                    tenant_id=tenant.id, account_id=account.id, phone_number="5511",
                    contact_name="Ana", whatsapp_message_id="wamid.1", type="TEXT",
                    content="hi", metadata={{}}, timestamp=datetime.now(UTC),
                )
                await store.inbox_mark(ids, "done")
                await store.check_writable()
                assert len(await store.recent_messages(window_seconds=60)) == 1

        anyio.run(main)
        loaded = sorted(name for name in sys.modules if name.split(".")[0] == "asyncpg")
        assert not loaded, loaded
        assert "storage.postgres" not in sys.modules
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
