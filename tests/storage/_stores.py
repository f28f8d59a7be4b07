"""Opening a test storage of either implementation (the fixtures and single-backend tests).

PostgreSQL runs on ``DATABASE_URL`` in a fresh schema per test, dropped afterwards. Without a
reachable server the PostgreSQL cases are skipped, except under ``CI=true``, where a missing
service is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import NoReturn

import pytest

from storage import Storage, StorageUnavailable, open_storage
from storage._migrations import load_migrations


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


async def _drop_schema(url: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def all_versions(dialect: str) -> list[int]:
    """Every migration version of ``dialect``: what ``migrate()`` applies to a new database."""
    return [m.version for m in load_migrations(dialect)]


@asynccontextmanager
async def migrated(kind: str, tmp_path: Path) -> AsyncIterator[tuple[Storage, str, str | None]]:
    """Yield a migrated, empty storage of ``kind`` with its URL and schema (None for SQLite).

    PostgreSQL gets a schema of its own, dropped afterwards: other suites share the database.
    """
    url = f"sqlite:///{tmp_path / 'zapline.db'}"
    schema = None
    if kind == "postgres":
        url = os.environ.get("DATABASE_URL", "")
        if not url:
            _unavailable("DATABASE_URL is not set")
        schema = f"test_{uuid.uuid4().hex[:16]}"
    try:
        store = await open_storage(url, schema=schema)
    except StorageUnavailable as exc:
        _unavailable(str(exc))
    try:
        assert await store.migrate() == all_versions("postgres" if schema else "sqlite")
        yield store, url, schema
    finally:
        await store.aclose()
        if schema is not None:
            await _drop_schema(url, schema)
