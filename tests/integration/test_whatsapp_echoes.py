"""Echoes of the WhatsApp Business app (``smb_message_echoes``), through the real intake:
what the business sends from its phone is an OUTBOUND message of the conversation, SENT,
announced like any other; its edits and deletions change it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from _desk_harness import SocketFactory, Tenant, ZaplineServer, auth, post_webhook
from _whatsapp_kinds import TS, message, profile, webhook

from desk.whatsapp import status_webhook

pytestmark = pytest.mark.anyio

BUSINESS = "15550001111"


def echoes(phone_number_id: str, *items: dict[str, Any]) -> dict[str, Any]:
    """The ``smb_message_echoes`` webhook around ``items`` (``message_echoes[]``)."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": BUSINESS, "phone_number_id": phone_number_id},
        "message_echoes": list(items),
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA-1", "changes": [{"value": value, "field": "smb_message_echoes"}]}],
    }


def echo(to: str, wamid: str, kind: str, part: Any) -> dict[str, Any]:
    return {"from": BUSINESS, "to": to, "id": wamid, "timestamp": TS, "type": kind, kind: part}


async def post(http: httpx.AsyncClient, server: ZaplineServer, tenant: Tenant, body: Any) -> None:
    response = await post_webhook(http, server, body, secret=tenant.app_secret)
    assert response.status_code == 200, response.text


def new_phone() -> str:
    return "1555" + str(uuid.uuid4().int)[:8]


async def test_a_reply_sent_from_the_phone_reaches_the_desk_as_outbound(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    customer = new_phone()
    first = message(customer, f"wamid.in.{customer}", "text", {"body": "is it open today?"})
    await post(
        http,
        zapline,
        tenant,
        webhook(tenant.phone_number_id, [first], contacts=profile(customer, "Dana")),
    )
    (inbound,) = await events.wait_for("message:new")
    cid = inbound["conversationId"]
    (before,) = await events.wait_for("conversation:updated", lambda d: d["conversationId"] == cid)

    wamid = f"wamid.echo.{uuid.uuid4().hex[:8]}"
    body = echoes(tenant.phone_number_id, echo(customer, wamid, "text", {"body": "Yes, until 8"}))
    await post(http, zapline, tenant, body)
    await post(http, zapline, tenant, body)  # the same webhook twice
    (new,) = await events.wait_for(
        "message:new", lambda d: d["message"]["whatsappMessageId"] == wamid
    )
    got = new["message"]
    assert new["conversationId"] == cid
    assert (got["direction"], got["status"], got["type"], got["content"]) == (
        "OUTBOUND",
        "SENT",
        "TEXT",
        "Yes, until 8",
    )
    assert got["contact"]["phoneNumber"] == customer
    (_, card) = await events.wait_for(
        "conversation:updated", lambda d: d["conversationId"] == cid, count=2
    )
    assert card["lastMessage"]["id"] == got["id"]
    assert card["windowExpiresAt"] == before["windowExpiresAt"]  # our message opens no window
    await events.expect_none(
        "message:new", lambda d: d["message"]["whatsappMessageId"] == wamid, within=0.5
    )

    edit = {
        "original_message_id": wamid,
        "message": {"type": "text", "text": {"body": "Yes, until 9"}},
    }
    await post(
        http,
        zapline,
        tenant,
        echoes(tenant.phone_number_id, echo(customer, f"e.{wamid}", "edit", edit)),
    )
    (updated,) = await events.wait_for("message:updated", lambda d: d["conversationId"] == cid)
    assert (
        updated["message"]["id"],
        updated["message"]["content"],
        updated["message"]["edited"],
    ) == (got["id"], "Yes, until 9", True)

    revoke = {"original_message_id": wamid}
    await post(
        http,
        zapline,
        tenant,
        echoes(tenant.phone_number_id, echo(customer, f"d.{wamid}", "revoke", revoke)),
    )
    (_, deleted) = await events.wait_for(
        "message:updated", lambda d: d["conversationId"] == cid, count=2
    )
    assert (
        deleted["message"]["content"],
        deleted["message"]["deleted"],
        deleted["message"]["direction"],
    ) == ("", True, "OUTBOUND")

    listed = await http.get(
        f"{zapline.api_url}/api/conversations/{cid}/messages", headers=auth(tenant.token)
    )
    assert [m["whatsappMessageId"] for m in listed.json()["messages"]].count(wamid) == 1


async def test_an_echo_opens_a_conversation_and_takes_a_status_that_came_first(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    customer, wamid = new_phone(), f"wamid.echo.{uuid.uuid4().hex[:8]}"
    status = status_webhook(
        phone_number_id=tenant.phone_number_id,
        wamid=wamid,
        status="delivered",
        recipient_id=customer,
    )
    await post(http, zapline, tenant, status)
    await post(
        http,
        zapline,
        tenant,
        echoes(tenant.phone_number_id, echo(customer, wamid, "text", {"body": "Hello!"})),
    )
    (created,) = await events.wait_for("conversation:new")
    assert created["conversation"]["windowExpiresAt"] is None  # the customer has not written
    (new,) = await events.wait_for(
        "message:new", lambda d: d["message"]["whatsappMessageId"] == wamid
    )
    assert (new["message"]["direction"], new["message"]["status"]) == ("OUTBOUND", "DELIVERED")
