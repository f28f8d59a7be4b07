"""Fresh databases for the integration suite: a temp SQLite file, or a PostgreSQL database.

PostgreSQL databases (``zt_<random>``) are created on ``DATABASE_URL`` and dropped with
``WITH (FORCE)``. Without a reachable server the caller is skipped, except under ``CI=true``,
where a missing service is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import anyio
import pytest


def _pg_unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


async def _pg_admin(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _pg_url_for(url: str, database: str) -> str:
    base, _, rest = url.rpartition("/")
    query = rest.partition("?")[2]
    return f"{base}/{database}" + (f"?{query}" if query else "")


def make_database(backend: str, workdir: Path) -> tuple[str, Callable[[], None]]:
    """Return a fresh database URL of ``backend`` and the function that drops it.

    Skips (or fails under CI) when PostgreSQL is wanted but unreachable.
    """
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'zapline.db'}", lambda: None
    admin_url = os.environ.get("DATABASE_URL", "")
    if not admin_url:
        _pg_unavailable("DATABASE_URL is not set")
    name = f"zt_{uuid.uuid4().hex[:12]}"
    try:
        anyio.run(_pg_admin, admin_url, f'CREATE DATABASE "{name}"')
    except (OSError, TimeoutError) as exc:
        _pg_unavailable(f"{admin_url}: {exc!r}")
    except Exception as exc:  # asyncpg's errors: auth, missing database, ...
        if type(exc).__module__.startswith("asyncpg"):
            _pg_unavailable(f"{admin_url}: {exc!r}")
        raise

    def drop() -> None:
        anyio.run(_pg_admin, admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return _pg_url_for(admin_url, name), drop
