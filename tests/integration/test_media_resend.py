"""An upload a killed server had not sent yet is sent at restart, from the file it kept on disk.

The fake Cloud API refuses every media upload with a retryable 500, so the reply is still
PENDING (its send job retrying) when the server is SIGKILLed; the fake is then healed and the
server started again on the same database, ports and media directory. The same file reaches
the fake, once, and the message it sends names the id the upload got.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from _desk_db import make_database
from _desk_harness import FakeCloud, ZaplineServer, auth, create_tenant, post_webhook

from desk.whatsapp import text_message_webhook

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(4000)


@pytest.fixture(params=BACKENDS)
def rig(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[ZaplineServer, FakeCloud]]:
    """A server of this test's own (single node, quick recovery) and its fake Cloud API."""
    url, drop = make_database(str(request.param), tmp_path)
    server = ZaplineServer(
        database_url=url,
        workdir=tmp_path,
        extra_env={"ZAPLINE_RECOVERY_GRACE": "0.3", "REDIS_URL": ""},
    )
    fake = FakeCloud(workdir=tmp_path, webhook_url=server.webhook_url)
    server.whatsapp_api_url = fake.url
    try:
        fake.start()
        server.start()
        yield server, fake
    finally:
        try:
            server.stop()
        finally:
            fake.stop()
            drop()


async def until(check: Any, what: str, server: ZaplineServer, within: float = 10.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within} s\n{server.log_tail(30)}")
        await anyio.sleep(0.05)


async def test_an_upload_pending_at_a_crash_is_sent_from_disk_at_restart(
    rig: tuple[ZaplineServer, FakeCloud], http: httpx.AsyncClient
) -> None:
    server, fake = rig
    tenant = await anyio.to_thread.run_sync(lambda: create_tenant(server))
    phone = f"55118{uuid.uuid4().int % 10**8:08d}"
    body = text_message_webhook(phone_number_id=tenant.phone_number_id, wa_id=phone, body="oi")
    assert (await post_webhook(http, server, body, secret=tenant.app_secret)).status_code == 200

    async def conversation() -> str | None:
        got = await http.get(f"{server.api_url}/api/conversations", headers=auth(tenant.token))
        found = got.json()["conversations"]
        return str(found[0]["id"]) if found else None

    cid = await until(conversation, "the customer's conversation", server)
    armed = await http.post(
        f"{fake.url}/_fake/media-fail", json={"count": 10_000, "status": 500, "target": "upload"}
    )
    assert armed.status_code == 200
    sent = await http.post(
        f"{server.api_url}/api/conversations/{cid}/media",
        files={"file": ("plan.png", PNG, "image/png")},
        headers=auth(tenant.token),
    )
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["message"]["id"]

    async def retried() -> bool:
        return "(send) failed on attempt" in server.log_path.read_text(errors="replace")

    await until(retried, "a refused upload", server, within=5)
    await anyio.to_thread.run_sync(server.kill)
    assert (await http.post(f"{fake.url}/_fake/media-fail", json={"count": 0})).status_code == 200

    await anyio.to_thread.run_sync(server.start)

    async def status() -> str | None:
        got = await http.get(
            f"{server.api_url}/api/conversations/{cid}/messages", headers=auth(tenant.token)
        )
        found = [m for m in got.json()["messages"] if m["id"] == message_id]
        return found[0]["status"] if found and found[0]["status"] != "PENDING" else None

    assert await until(status, "the upload sent after the restart", server) in (
        "SENT",
        "DELIVERED",
        "READ",
    )
    uploads = (await http.get(f"{fake.url}/_fake/media-stats")).json()["uploads"]
    assert [u["sha256"] for u in uploads] == [hashlib.sha256(PNG).hexdigest()]
    outgoing = (await http.get(f"{fake.url}/_fake/sent")).json()["messages"]
    assert [m["image"]["id"] for m in outgoing if m["to"] == phone] == [uploads[0]["id"]]
