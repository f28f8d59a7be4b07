"""PostgreSQL-only behaviour: connection failures and the asyncio-only rule."""

from __future__ import annotations

import pytest

from storage import StorageError, StorageUnavailable, open_storage

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
