"""The Cloud API failing (throttled with 130429, then down with 500s): a reply retries with
backoff and ends FAILED with Meta's reason, and the desk keeps taking customers' messages
meanwhile: inbound work is not queued behind failing sends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from _desk_harness import SocketFactory, Tenant, ZaplineServer, post_webhook
from test_desk_outbound import open_conversation, send, statuses_of, stored

from desk.whatsapp import text_message_webhook

pytestmark = pytest.mark.anyio


@pytest.fixture
async def fake(zapline: ZaplineServer, http: httpx.AsyncClient) -> AsyncIterator[str]:
    """The fake Cloud API's base URL, its memory and failure plan cleared for this test."""
    url = zapline.whatsapp_api_url
    assert (await http.post(f"{url}/_fake/reset")).status_code == 200
    yield url
    await http.post(f"{url}/_fake/reset")


@pytest.mark.parametrize(("status", "code"), [(429, 130429), (500, 131000)])
async def test_failing_sends_retry_then_fail_with_the_reason_and_inbound_keeps_flowing(
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.AsyncClient,
    sio: SocketFactory,
    fake: str,
    status: int,
    code: int,
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    conversation_id, _ = await open_conversation(zapline, tenant, http, events)
    plan = await http.post(f"{fake}/_fake/fail", json={"count": 50, "status": status, "code": code})
    assert plan.status_code == 200
    reply = await send(zapline, tenant, http, conversation_id, "are you there?")

    # While the send is failing and backing off, customers keep writing: every message is
    # stored and announced (the send's retries wait in the queue's timer, holding no worker).
    for n in range(5):
        body = text_message_webhook(
            phone_number_id=tenant.phone_number_id, wa_id=f"55118800000{n:02d}", body=f"n{n}"
        )
        assert (
            await post_webhook(http, zapline, body, secret=tenant.app_secret)
        ).status_code == 200
        await events.wait_for("message:new", lambda d, n=n: d["message"]["content"] == f"n{n}")

    (failed,) = await events.wait_for(
        "message:status-update",
        lambda d: d["messageId"] == reply["id"] and d["status"] == "FAILED",
        within=30,
    )
    assert str(code) in str(failed.get("error")), failed
    final = (await stored(zapline, tenant, http, conversation_id))[reply["id"]]
    assert final["status"] == "FAILED" and str(code) in str(final["error"])
    assert statuses_of(events, reply["id"]) == ["FAILED"]
    assert (await http.get(f"{fake}/_fake/sent")).json()["messages"] == []
