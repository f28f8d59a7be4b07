"""Issue 5: ``GET /api/socket/stats``, the seed's shape, scoped by role.

A tenant ``admin`` sees only their own tenant, a token with role ``ops`` sees every tenant, an
``agent`` is refused (403) and no token is unauthenticated (401). Counted are connected
Socket.IO sockets, whatever their transport. The endpoint reads engine state only, so one
backend (SQLite) is enough.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
import socketio
from _desk_db import make_database
from _desk_harness import SocketFactory, Tenant, ZaplineServer, auth, create_tenant

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLite only: the stats come from the engine, not from storage."""
    url, drop = make_database("sqlite", Path(tmp_path_factory.mktemp("db")))
    try:
        yield url
    finally:
        drop()


async def stats(
    http: httpx.AsyncClient, server: ZaplineServer, token: str | None
) -> httpx.Response:
    """GET /api/socket/stats with ``token`` as bearer (no header when None)."""
    return await http.get(
        f"{server.api_url}/api/socket/stats", headers=auth(token) if token else {}
    )


async def stats_body(http: httpx.AsyncClient, server: ZaplineServer, token: str) -> dict[str, Any]:
    """The 200 body of /api/socket/stats, its exact shape asserted."""
    response = await stats(http, server, token)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = orjson.loads(response.content)
    assert set(body) == {"totalConnections", "connectionsByTenant"}, body
    assert isinstance(body["totalConnections"], int)
    assert all(isinstance(n, int) for n in body["connectionsByTenant"].values())
    return dict(body)


async def until(
    http: httpx.AsyncClient,
    server: ZaplineServer,
    token: str,
    check: Callable[[dict[str, Any]], bool],
    *,
    within: float = 5.0,
) -> dict[str, Any]:
    """Poll the stats until ``check`` holds; return them. AssertionError with the last body."""
    body: dict[str, Any] = {}
    with anyio.move_on_after(within):
        while True:
            body = await stats_body(http, server, token)
            if check(body):
                return body
            await anyio.sleep(0.05)
    raise AssertionError(f"socket stats never matched within {within} s: {body}")


def admin_of(server: ZaplineServer, tenant: Tenant) -> str:
    """An ``admin`` token of ``tenant`` (same user, admin role)."""
    return server.token(tenant.id, tenant.user_id, role="admin")


async def test_the_stats_need_a_token_and_an_admin_or_ops_role(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient
) -> None:
    for token, status in ((None, 401), ("not-a-jwt", 401), (tenant.token, 403)):
        response = await stats(http, zapline, token)
        assert response.status_code == status, (token, response.text)
        assert response.headers["content-type"] == "application/json"
        body = orjson.loads(response.content)
        assert isinstance(body["error"], str) and body["error"]
        assert "totalConnections" not in body
    forged = zapline.token(tenant.id, tenant.user_id, role="ops").rsplit(".", 1)[0] + ".x"
    assert (await stats(http, zapline, forged)).status_code == 401


async def test_an_admin_sees_their_tenant_and_ops_sees_all(
    zapline: ZaplineServer, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    a, b = [await anyio.to_thread.run_sync(create_tenant, zapline) for _ in range(2)]
    ops = zapline.token(f"ops-{uuid.uuid4().hex[:8]}", "operator", role="ops")
    a1, _ = await sio(zapline.socket_url, a.token)
    a2, _ = await sio(zapline.socket_url, a.token, transports=("polling",))
    b1, _ = await sio(zapline.socket_url, b.token)

    assert await stats_body(http, zapline, admin_of(zapline, a)) == {
        "totalConnections": 2,
        "connectionsByTenant": {a.id: 2},
    }
    assert await stats_body(http, zapline, admin_of(zapline, b)) == {
        "totalConnections": 1,
        "connectionsByTenant": {b.id: 1},
    }
    everything = await stats_body(http, zapline, ops)
    assert everything["connectionsByTenant"][a.id] == 2
    assert everything["connectionsByTenant"][b.id] == 1
    assert everything["totalConnections"] == sum(everything["connectionsByTenant"].values())
    assert everything["totalConnections"] >= 3

    await a2.disconnect()
    await until(
        http,
        zapline,
        admin_of(zapline, a),
        lambda s: s == {"totalConnections": 1, "connectionsByTenant": {a.id: 1}},
    )
    await a1.disconnect()
    await b1.disconnect()
    await until(
        http,
        zapline,
        admin_of(zapline, a),
        lambda s: s == {"totalConnections": 0, "connectionsByTenant": {a.id: 0}},
    )
    after = await until(
        http,
        zapline,
        ops,
        lambda s: a.id not in s["connectionsByTenant"] and b.id not in s["connectionsByTenant"],
    )
    assert after["totalConnections"] == sum(after["connectionsByTenant"].values())


async def test_a_refused_connect_is_not_counted(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    forged = zapline.token(tenant.id, tenant.user_id).rsplit(".", 1)[0] + ".forged"
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio(zapline.socket_url, forged)
    assert await stats_body(http, zapline, admin_of(zapline, tenant)) == {
        "totalConnections": 0,
        "connectionsByTenant": {tenant.id: 0},
    }
