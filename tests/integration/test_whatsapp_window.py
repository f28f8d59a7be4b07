"""WhatsApp's 24-hour customer service window, seen by an agent: ``windowExpiresAt`` on the
card, REST and ``conversation:updated``; free-form sends outside it refused with a 409,
templates accepted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from _contract import violations
from _desk_harness import SocketFactory, Tenant, ZaplineServer, auth, post_webhook

from desk.whatsapp import text_message_webhook

pytestmark = pytest.mark.anyio

TEMPLATE = {"name": "order_update", "language": {"code": "en_US"}, "components": []}


def iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def customer_writes(
    server: ZaplineServer,
    tenant: Tenant,
    http: httpx.AsyncClient,
    events: Any,
    phone: str,
    at: datetime,
) -> dict[str, Any]:
    """Post a customer's text sent at ``at``; return its ``conversation:updated``."""
    wamid = f"wamid.{uuid.uuid4().hex[:12]}"
    body = text_message_webhook(
        phone_number_id=tenant.phone_number_id, wa_id=phone, wamid=wamid, body="hi", timestamp=at
    )
    assert (await post_webhook(http, server, body, secret=tenant.app_secret)).status_code == 200
    (new,) = await events.wait_for(
        "message:new", lambda d: d["message"]["whatsappMessageId"] == wamid
    )
    cid = new["conversationId"]
    # The card's newest message may be ours (a template sent just now): match the window.
    updates = await events.wait_for(
        "conversation:updated",
        lambda d: (
            d["conversationId"] == cid and d.get("windowExpiresAt") == iso(at + timedelta(hours=24))
        ),
    )
    return dict(updates[-1])


async def send(
    server: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, cid: str, body: dict[str, Any]
) -> httpx.Response:
    return await http.post(
        f"{server.api_url}/api/conversations/{cid}/messages", json=body, headers=auth(tenant.token)
    )


async def card(
    server: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, cid: str
) -> dict[str, Any]:
    got = await http.get(f"{server.api_url}/api/conversations/{cid}", headers=auth(tenant.token))
    assert got.status_code == 200, got.text
    assert violations(got.json(), "ConversationResponse") == []
    return dict(got.json()["conversation"])


async def test_the_window_opens_with_each_customer_message(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    updated = await customer_writes(zapline, tenant, http, events, "5511600000001", at)
    cid = updated["conversationId"]
    assert updated["windowExpiresAt"] == iso(at + timedelta(hours=24))
    (created,) = events.named("conversation:new", lambda d: d["conversation"]["id"] == cid)
    assert created["conversation"]["windowExpiresAt"] == iso(at + timedelta(hours=24))
    assert (await card(zapline, tenant, http, cid))["windowExpiresAt"] == iso(
        at + timedelta(hours=24)
    )
    response = await send(zapline, tenant, http, cid, {"content": "within the window"})
    assert response.status_code == 202, response.text


async def test_outside_the_window_only_a_template_goes_out(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    phone = "5511600000002"
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=25)
    updated = await customer_writes(zapline, tenant, http, events, phone, old)
    cid = updated["conversationId"]
    assert updated["windowExpiresAt"] == iso(old + timedelta(hours=24))

    for body in ({"content": "are you there?"}, {"type": "IMAGE", "metadata": {"id": "m-1"}}):
        refused = await send(zapline, tenant, http, cid, body)
        assert refused.status_code == 409, refused.text
        assert violations(refused.json(), "ApiError") == []
        assert refused.json()["field"] == "type"
        assert "24-hour" in refused.json()["error"] and "TEMPLATE" in refused.json()["error"]
    await events.expect_none(
        "message:new", lambda d: d["message"]["direction"] == "OUTBOUND", within=0.3
    )

    incomplete = await send(
        zapline, tenant, http, cid, {"type": "TEMPLATE", "metadata": {"template": {"name": "x"}}}
    )
    assert incomplete.status_code == 400, incomplete.text
    assert incomplete.json()["field"] == "metadata"

    accepted = await send(
        zapline, tenant, http, cid, {"type": "TEMPLATE", "metadata": {"template": TEMPLATE}}
    )
    assert accepted.status_code == 202, accepted.text
    assert violations(accepted.json(), "SendResponse") == []
    message = accepted.json()["message"]
    assert (message["type"], message["content"], message["status"]) == (
        "TEMPLATE",
        "Template: order_update",
        "PENDING",
    )
    await events.wait_for(
        "message:status-update", lambda d: d["messageId"] == message["id"] and d["status"] == "SENT"
    )
    sent = (await http.get(f"{zapline.whatsapp_api_url}/_fake/sent")).json()["messages"]
    (ours,) = [m for m in sent if m["to"] == phone]
    assert (ours["type"], ours["template"]) == ("template", TEMPLATE)

    # The customer answers the template: the window opens again.
    now = datetime.now(UTC).replace(microsecond=0)
    again = await customer_writes(zapline, tenant, http, events, phone, now)
    assert again["windowExpiresAt"] == iso(now + timedelta(hours=24))
    assert (await send(zapline, tenant, http, cid, {"content": "thanks!"})).status_code == 202
