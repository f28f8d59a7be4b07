"""Fixtures of the integration suite: a real ``zapline serve`` subprocess per module and backend.

Each test module gets, for every storage backend, a fresh database (a temp SQLite file, or a
``zt_<random>`` PostgreSQL database created on ``DATABASE_URL`` and dropped afterwards), a
``zapline fake-whatsapp`` subprocess, and a server pointed at both. Tests isolate themselves
with a fresh tenant each (``tenant`` fixture, made through the admin CLI). Without a reachable
PostgreSQL the postgres cases skip, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import socketio
from _desk_db import make_database
from _desk_harness import (
    EventLog,
    FakeCloud,
    SocketFactory,
    Tenant,
    ZaplineServer,
    connect_client,
    create_tenant,
)

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """python-socketio, httpx and the admin CLI's clients: the suite runs on asyncio only."""
    return "asyncio"


@pytest.fixture(scope="module", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh, empty database of each backend for one test module."""
    url, drop = make_database(str(request.param), tmp_path_factory.mktemp("db"))
    try:
        yield url
    finally:
        drop()


@pytest.fixture(scope="module")
def zapline(
    request: pytest.FixtureRequest, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ZaplineServer]:
    """``zapline serve`` on free loopback ports, with a fake Cloud API that posts back to it.

    A test module may set ``ZAPLINE_EXTRA_ENV`` (a dict) for its server's environment.
    """
    workdir = tmp_path_factory.mktemp("zapline")
    extra_env = dict(getattr(request.module, "ZAPLINE_EXTRA_ENV", {}))
    server = ZaplineServer(database_url=database_url, workdir=workdir, extra_env=extra_env)
    fake = FakeCloud(workdir=workdir, webhook_url=server.webhook_url)
    server.whatsapp_api_url = fake.url
    try:
        fake.start()
        server.start()
        yield server
        alive = server.proc is not None and server.proc.poll() is None
        assert alive, f"zapline serve died during the tests:\n{server.log_tail()}"
        code = server.stop()
        assert code == 0, f"zapline serve exited with {code} on SIGTERM:\n{server.log_tail()}"
    finally:
        try:
            server.stop()
        finally:
            fake.stop()


@pytest.fixture
def tenant(zapline: ZaplineServer) -> Tenant:
    """A fresh tenant with an agent and a number whose app secret is the fake Cloud API's."""
    return create_tenant(zapline)


@pytest.fixture
async def http(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client for the API."""
    async with httpx.AsyncClient(timeout=15.0) as client:
        yield client


@pytest.fixture
async def sio(anyio_backend: str) -> AsyncIterator[SocketFactory]:
    """``await sio(url, token, **kw)`` -> ``(client, events)``; every client disconnects at teardown."""
    clients: list[socketio.AsyncClient] = []
    logs: list[EventLog] = []

    async def factory(url: str, token: str | None, **kwargs: Any) -> Any:
        client, log = await connect_client(url, token, **kwargs)
        clients.append(client)
        logs.append(log)
        return client, log

    try:
        yield factory
    finally:
        for client in clients:
            if client.connected:
                await client.disconnect()
    # Every event any of the test's clients received is held to the README's contract.
    broken = [v for log in logs for v in log.violations]
    assert not broken, f"events broke the README's wire contract: {broken[:20]}"
