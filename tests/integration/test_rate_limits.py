"""Rate limits from outside: a flooding socket is throttled then disconnected, a tenant's REST
API answers 429 with Retry-After, and webhooks are never limited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from _desk_harness import SocketFactory, Tenant, ZaplineServer, auth, create_tenant, post_webhook

from desk.whatsapp import text_message_webhook

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZaplineServer]:
    """A server whose limits a test can reach quickly."""
    workdir: Path = tmp_path_factory.mktemp("limits")
    server = ZaplineServer(
        database_url=f"sqlite:///{workdir / 'desk.db'}",
        workdir=workdir,
        extra_env={
            "ZAPLINE_RATE_SOCKET": "5/5",
            "ZAPLINE_RATE_AGENT": "50/50",
            "ZAPLINE_RATE_API": "2/3",
        },
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_flooding_socket_is_throttled_then_disconnected(
    tight: ZaplineServer, sio: SocketFactory
) -> None:
    tenant: Tenant = await anyio.to_thread.run_sync(lambda: create_tenant(tight))
    client, events = await sio(tight.socket_url, tenant.token)
    answers = [await client.call("presence:set", {"status": "online"}, timeout=5) for _ in range(5)]
    assert all(a == {"ok": True} for a in answers)
    refused = await client.call("presence:set", {"status": "online"}, timeout=5)
    assert refused["ok"] is False and refused["error"] == "rate_limited"
    assert refused["retryAfterMs"] > 0
    (error,) = await events.wait_for("error")
    assert error["code"] == "rate_limited"
    for _ in range(80):  # keeps flooding: unknown events count as much as known ones
        if not client.connected:
            break
        await client.emit("made:up", {"n": 1})
        await anyio.sleep(0.005)
    await events.wait_for("disconnect")
    assert events.named("error", lambda e: e["code"] == "flooding")
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{tight.api_url}/metrics")).text
    assert "zapline_rate_limit_disconnects_total 1.0" in text


async def test_the_rest_api_answers_429_with_retry_after_and_webhooks_pass(
    tight: ZaplineServer,
) -> None:
    tenant: Tenant = await anyio.to_thread.run_sync(lambda: create_tenant(tight))
    other: Tenant = await anyio.to_thread.run_sync(lambda: create_tenant(tight))
    url = f"{tight.api_url}/api/conversations"
    async with httpx.AsyncClient(timeout=10) as http:
        codes = [(await http.get(url, headers=auth(tenant.token))).status_code for _ in range(6)]
        assert codes[:3] == [200, 200, 200] and 429 in codes[3:]
        limited = await http.get(url, headers=auth(tenant.token))
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert "too many requests" in limited.json()["error"]
        # Another tenant is not held back by this one.
        assert (await http.get(url, headers=auth(other.token))).status_code == 200
        for i in range(10):
            body = text_message_webhook(phone_number_id=tenant.phone_number_id, wa_id=f"55117{i}")
            posted = await post_webhook(http, tight, body, secret=tenant.app_secret)
            assert posted.status_code == 200, posted.text
