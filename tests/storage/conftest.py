"""Fixtures for the storage contract suite: one ``storage`` per implementation.

PostgreSQL runs on ``DATABASE_URL`` in a fresh schema per test, dropped afterwards. Without a
reachable server the PostgreSQL cases are skipped, except under ``CI=true``, where a missing
service is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NoReturn

import pytest

from storage import Storage, StorageUnavailable, open_storage


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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str
) -> AsyncIterator[Storage]:
    """A migrated, empty storage of each implementation, closed (and dropped) afterwards."""
    url = f"sqlite:///{tmp_path / 'zapline.db'}"
    schema = None
    if request.param == "postgres":
        url = os.environ.get("DATABASE_URL", "")
        if not url:
            _unavailable("DATABASE_URL is not set")
        schema = f"test_{uuid.uuid4().hex[:16]}"
    try:
        store = await open_storage(url, schema=schema)
    except StorageUnavailable as exc:
        _unavailable(str(exc))
    try:
        applied = await store.migrate()
        assert applied == list(range(1, len(applied) + 1)) and len(applied) >= 4
        yield store
    finally:
        await store.aclose()
        if schema is not None:
            await _drop_schema(url, schema)
