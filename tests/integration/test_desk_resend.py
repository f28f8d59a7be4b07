"""Crash recovery of outbound replies: a reply a killed server left PENDING is sent at restart.

Each test runs its own ``zapline serve`` (it SIGKILLs it) on a fresh database of each backend,
with its own fake Cloud API. The fake fails every send with a retryable 500, so the reply is
still PENDING (its ``send`` job retrying in memory) when the server is killed; the fake is then
healed and the server started again on the same database and ports.

Single node (no ``REDIS_URL``): the restarted server sends the reply, once. Several nodes
(``REDIS_URL`` set): it leaves the reply alone (another node may be about to send it) and logs
it. Without Redis the second test skips, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import anyio
import httpx
import orjson
import pytest
from _desk_db import make_database
from _desk_harness import FakeCloud, Tenant, ZaplineServer, auth, create_tenant, post_webhook

from desk.whatsapp import text_message_webhook

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
# Seconds the restarted server waits before recovering (the default, 5 s, would slow the tests).
RECOVERY_GRACE = "0.3"
# The first attempt failing shows in the server's log as the job's retry.
SEND_RETRY_LOGGED = "(send) failed on attempt"


def _redis_unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Redis is required in CI: {reason}")
    pytest.skip(f"Redis not available: {reason}")


@pytest.fixture
def redis_url() -> str:
    """REDIS_URL if a Redis answers there; skips (fails under CI) otherwise."""
    url = os.environ.get("REDIS_URL", "")
    if not url:
        _redis_unavailable("REDIS_URL is not set")
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        _redis_unavailable(f"{url}: {exc!r}")
    finally:
        client.close()
    return url


@pytest.fixture(params=BACKENDS)
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each backend for one test (its PENDING rows are its own)."""
    url, drop = make_database(str(request.param), tmp_path)
    try:
        yield url
    finally:
        drop()


@dataclass
class Rig:
    """A server of the test's own and the fake Cloud API it sends through."""

    server: ZaplineServer
    fake: FakeCloud


@pytest.fixture
def start_rig(fresh_database_url: str, tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Rig]]:
    """``start_rig(env)`` starts a fake and a server with ``env``; both stop at teardown."""
    rigs: list[Rig] = []

    def start(env: dict[str, str]) -> Rig:
        workdir = tmp_path / f"rig{len(rigs)}"
        workdir.mkdir()
        server = ZaplineServer(
            database_url=fresh_database_url,
            workdir=workdir,
            extra_env={"ZAPLINE_RECOVERY_GRACE": RECOVERY_GRACE, **env},
        )
        fake = FakeCloud(workdir=workdir, webhook_url=server.webhook_url)
        server.whatsapp_api_url = fake.url
        rig = Rig(server, fake)
        rigs.append(rig)
        fake.start()
        server.start()
        return rig

    try:
        yield start
    finally:
        for rig in rigs:
            try:
                rig.server.stop()
            finally:
                rig.fake.stop()


async def wait_until(
    check: Callable[[], Awaitable[Any]], what: str, server: ZaplineServer, within: float = 10.0
) -> Any:
    """Poll ``check`` until it returns something truthy; return it. Bounded by ``within``."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within} s\n{server.log_tail(30)}")
        await anyio.sleep(0.05)


async def messages_by_id(
    http: httpx.AsyncClient, server: ZaplineServer, tenant: Tenant, conversation_id: str
) -> dict[str, dict[str, Any]]:
    """The conversation's stored messages, by id, through the REST API."""
    response = await http.get(
        f"{server.api_url}/api/conversations/{conversation_id}/messages",
        params={"limit": 200},
        headers=auth(tenant.token),
    )
    assert response.status_code == 200, response.text
    return {m["id"]: m for m in response.json()["messages"]}


async def sent_by_fake(http: httpx.AsyncClient, fake: FakeCloud) -> list[dict[str, Any]]:
    """What the fake Cloud API accepted since its last reset."""
    response = await http.get(f"{fake.url}/_fake/sent")
    assert response.status_code == 200, response.text
    return list(response.json()["messages"])


def log_since_last_start(server: ZaplineServer) -> list[dict[str, Any]]:
    """The server's JSON log records written since it was last started."""
    text = server.log_path.read_text(errors="replace")
    records = []
    for line in text.rpartition(f"--- start {server.starts} ---")[2].splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a line of a library printing on its own, not a log record
        if isinstance(record, dict):
            records.append(record)
    return records


async def crash_with_a_pending_reply(
    rig: Rig, http: httpx.AsyncClient
) -> tuple[Tenant, str, str, dict[str, Any]]:
    """Store a reply the fake refuses to take, SIGKILL the server while it is PENDING.

    Returns (tenant, conversation id, customer's phone, the reply as the API returned it),
    with the fake healed (no failures armed, nothing sent) and the server down.
    """
    server, fake = rig.server, rig.fake
    tenant = await anyio.to_thread.run_sync(lambda: create_tenant(server))
    phone = f"55119{uuid.uuid4().int % 10**8:08d}"
    body = text_message_webhook(phone_number_id=tenant.phone_number_id, wa_id=phone, body="oi")
    response = await post_webhook(http, server, body, secret=tenant.app_secret)
    assert response.status_code == 200, response.text

    async def conversation() -> str | None:
        response = await http.get(f"{server.api_url}/api/conversations", headers=auth(tenant.token))
        assert response.status_code == 200, response.text
        found = response.json()["conversations"]
        return str(found[0]["id"]) if found else None

    conversation_id: str = await wait_until(conversation, "the customer's conversation", server)

    plan = await http.post(f"{fake.url}/_fake/fail", json={"count": 10_000, "status": 500})
    assert plan.status_code == 200, plan.text
    text = f"reply {uuid.uuid4().hex[:8]}"
    response = await http.post(
        f"{server.api_url}/api/conversations/{conversation_id}/messages",
        json={"content": text},
        headers=auth(tenant.token),
    )
    assert response.status_code == 202, response.text
    reply = dict(response.json()["message"])
    assert (reply["status"], reply["direction"], reply["content"]) == ("PENDING", "OUTBOUND", text)

    async def first_attempt_refused() -> bool:
        return SEND_RETRY_LOGGED in server.log_path.read_text(errors="replace")

    await wait_until(first_attempt_refused, "a refused send attempt", server, within=5)
    stored = (await messages_by_id(http, server, tenant, conversation_id))[reply["id"]]
    assert stored["status"] == "PENDING", f"not PENDING at the kill: {stored}"
    await anyio.to_thread.run_sync(server.kill)

    assert await sent_by_fake(http, fake) == [], "the fake accepted a send while failing"
    assert (await http.post(f"{fake.url}/_fake/reset")).status_code == 200
    return tenant, conversation_id, phone, reply


async def test_a_reply_left_pending_by_a_killed_server_is_sent_once_at_restart(
    start_rig: Callable[[dict[str, str]], Rig], http: httpx.AsyncClient
) -> None:
    # Single node: REDIS_URL, maybe set for the test run, must not reach the server ("" is unset).
    rig = await anyio.to_thread.run_sync(start_rig, {"REDIS_URL": ""})
    server, fake = rig.server, rig.fake
    tenant, conversation_id, phone, reply = await crash_with_a_pending_reply(rig, http)

    await anyio.to_thread.run_sync(server.start)

    async def sent_status() -> dict[str, Any] | None:
        message = (await messages_by_id(http, server, tenant, conversation_id))[reply["id"]]
        return message if message["status"] != "PENDING" else None

    final = await wait_until(sent_status, "the PENDING reply sent after the restart", server)
    # SENT, or further already: the fake posts delivered/read webhooks right after a send.
    assert final["status"] in ("SENT", "DELIVERED", "READ"), final
    sent = await sent_by_fake(http, fake)
    assert [(m["to"], m["phone_number_id"], m["text"]["body"]) for m in sent] == [
        (phone, tenant.phone_number_id, reply["content"])
    ]
    assert final["whatsappMessageId"] == sent[0]["wamid"]
    # And only once: nothing else sends it a little later.
    await anyio.sleep(0.5)
    assert len(await sent_by_fake(http, fake)) == 1
    assert server.starts == 2
    code = await anyio.to_thread.run_sync(server.stop)
    assert code == 0, f"zapline serve exited with {code} on SIGTERM:\n{server.log_tail()}"


@pytest.mark.redis
async def test_with_several_nodes_a_pending_reply_is_logged_not_resent(
    start_rig: Callable[[dict[str, str]], Rig], http: httpx.AsyncClient, redis_url: str
) -> None:
    env = {
        "REDIS_URL": redis_url,
        # Pub/Sub channels are global to a Redis server: keep other suites' nodes out.
        "ZAPLINE_BROKER_CHANNEL": f"zapline-test:{uuid.uuid4().hex}",
    }
    rig = await anyio.to_thread.run_sync(start_rig, env)
    server, fake = rig.server, rig.fake
    tenant, conversation_id, _, reply = await crash_with_a_pending_reply(rig, http)

    await anyio.to_thread.run_sync(server.start)

    async def pending_logged() -> list[dict[str, Any]]:
        records = log_since_last_start(server)
        return [r for r in records if "PENDING" in str(r.get("msg"))]

    records = await wait_until(pending_logged, "a log line about the PENDING reply", server)
    # A warning naming the one message (not the single node's "sending ... PENDING" info).
    assert [(r["level"], "1 outbound messages" in r["msg"]) for r in records] == [
        ("warning", True)
    ], records
    # Give a wrongful re-send time to happen (it would take a few ms against the healed fake).
    await anyio.sleep(1.0)
    stored = (await messages_by_id(http, server, tenant, conversation_id))[reply["id"]]
    assert (stored["status"], stored["whatsappMessageId"]) == ("PENDING", None), stored
    assert await sent_by_fake(http, fake) == []
    code = await anyio.to_thread.run_sync(server.stop)
    assert code == 0, f"zapline serve exited with {code} on SIGTERM:\n{server.log_tail()}"
