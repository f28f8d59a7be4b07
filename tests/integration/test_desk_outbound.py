"""Outbound sends through the fake Cloud API, and status updates, seen live over Socket.IO."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from _desk_harness import (
    EventLog,
    SocketFactory,
    Tenant,
    ZaplineServer,
    auth,
    create_tenant,
    post_webhook,
)

from desk.whatsapp import status_webhook, text_message_webhook

pytestmark = pytest.mark.anyio


@pytest.fixture
async def fake(zapline: ZaplineServer, http: httpx.AsyncClient) -> AsyncIterator[str]:
    """The fake Cloud API's base URL, its memory and failure plan cleared for this test."""
    url = zapline.whatsapp_api_url
    assert (await http.post(f"{url}/_fake/reset")).status_code == 200
    yield url
    await http.post(f"{url}/_fake/reset")


async def open_conversation(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, events: EventLog
) -> tuple[str, str]:
    """Have a customer write in; return (conversation id, the customer's phone number)."""
    phone = f"55119{uuid.uuid4().int % 10**8:08d}"
    body = text_message_webhook(phone_number_id=tenant.phone_number_id, wa_id=phone, body="hi")
    response = await post_webhook(http, zapline, body, secret=tenant.app_secret)
    assert response.status_code == 200, response.text
    (event,) = await events.wait_for(
        "message:new", lambda d: d["message"]["direction"] == "INBOUND"
    )
    return event["conversationId"], phone


async def send(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, conversation_id: str, text: str
) -> dict[str, Any]:
    """POST a reply; assert the 202 and return its PENDING message."""
    response = await http.post(
        f"{zapline.api_url}/api/conversations/{conversation_id}/messages",
        json={"content": text},
        headers=auth(tenant.token),
    )
    assert response.status_code == 202, response.text
    message = response.json()["message"]
    assert (message["status"], message["direction"], message["type"]) == (
        "PENDING",
        "OUTBOUND",
        "TEXT",
    )
    assert message["content"] == text
    return dict(message)


def statuses_of(events: EventLog, message_id: str) -> list[str]:
    """The ``message:status-update`` statuses received for one message, in order."""
    return [
        e["status"] for e in events.named("message:status-update") if e["messageId"] == message_id
    ]


async def stored(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, conversation_id: str
) -> dict[str, dict[str, Any]]:
    """The conversation's stored messages by id."""
    response = await http.get(
        f"{zapline.api_url}/api/conversations/{conversation_id}/messages",
        params={"limit": 200},
        headers=auth(tenant.token),
    )
    assert response.status_code == 200, response.text
    return {m["id"]: m for m in response.json()["messages"]}


async def test_reply_round_trips_through_the_fake_cloud_api(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory, fake: str
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    conversation_id, phone = await open_conversation(zapline, tenant, http, events)
    text = "Olá! Como posso ajudar?"
    message = await send(zapline, tenant, http, conversation_id, text)

    (live,) = await events.wait_for("message:new", lambda d: d["message"]["id"] == message["id"])
    assert live["conversationId"] == conversation_id
    assert live["message"]["status"] == "PENDING"
    assert live["message"]["contact"]["phoneNumber"] == phone
    await events.wait_for(
        "message:status-update",
        lambda d: d["messageId"] == message["id"] and d["status"] == "READ",
    )
    assert statuses_of(events, message["id"]) == ["SENT", "DELIVERED", "READ"]
    for update in events.named("message:status-update"):
        assert update["conversationId"] == conversation_id

    sent = (await http.get(f"{fake}/_fake/sent")).json()["messages"]
    assert len(sent) == 1
    assert sent[0]["to"] == phone
    assert sent[0]["phone_number_id"] == tenant.phone_number_id
    assert sent[0]["messaging_product"] == "whatsapp"
    assert sent[0]["text"]["body"] == text
    final = (await stored(zapline, tenant, http, conversation_id))[message["id"]]
    assert final["status"] == "READ"
    assert final["whatsappMessageId"] == sent[0]["wamid"]


async def test_a_refused_send_fails_without_retry(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory, fake: str
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    conversation_id, _ = await open_conversation(zapline, tenant, http, events)
    # Two failures armed: had the first 400 been retried, the first send would use up both and
    # then go through; not retrying a 4xx leaves the second failure to the second send.
    plan = await http.post(f"{fake}/_fake/fail", json={"count": 2, "status": 400})
    assert plan.status_code == 200
    first = await send(zapline, tenant, http, conversation_id, "this one bounces")
    await events.wait_for(
        "message:status-update",
        lambda d: d["messageId"] == first["id"] and d["status"] == "FAILED",
    )
    second = await send(zapline, tenant, http, conversation_id, "and so does this one")
    await events.wait_for(
        "message:status-update",
        lambda d: d["messageId"] == second["id"] and d["status"] == "FAILED",
    )
    await events.expect_none("message:status-update", within=0.5)
    assert statuses_of(events, first["id"]) == ["FAILED"]
    assert statuses_of(events, second["id"]) == ["FAILED"]
    messages = await stored(zapline, tenant, http, conversation_id)
    for message in (first, second):
        assert messages[message["id"]]["status"] == "FAILED"
        assert "100" in str(messages[message["id"]]["error"]), "the API's error is kept"
    assert (await http.get(f"{fake}/_fake/sent")).json()["messages"] == []


async def test_server_errors_are_retried_until_sent(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory, fake: str
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    conversation_id, phone = await open_conversation(zapline, tenant, http, events)
    plan = await http.post(f"{fake}/_fake/fail", json={"count": 2, "status": 500})
    assert plan.status_code == 200
    message = await send(zapline, tenant, http, conversation_id, "third time lucky")
    await events.wait_for(
        "message:status-update",
        lambda d: d["messageId"] == message["id"] and d["status"] == "READ",
        within=20,
    )
    assert statuses_of(events, message["id"]) == ["SENT", "DELIVERED", "READ"]
    sent = (await http.get(f"{fake}/_fake/sent")).json()["messages"]
    assert [(m["to"], m["text"]["body"]) for m in sent] == [(phone, "third time lucky")]
    final = (await stored(zapline, tenant, http, conversation_id))[message["id"]]
    assert (final["status"], final["whatsappMessageId"]) == ("READ", sent[0]["wamid"])


async def test_statuses_out_of_order_only_move_forward_and_failed_wins(
    zapline: ZaplineServer, http: httpx.AsyncClient, sio: SocketFactory, fake: str
) -> None:
    # The number's app secret differs from the fake's, so the fake's own status webhooks are
    # refused (401) and this test alone decides which statuses arrive, and in what order.
    secret = f"own-{uuid.uuid4().hex}"
    tenant = await anyio.to_thread.run_sync(lambda: create_tenant(zapline, app_secret=secret))
    _, events = await sio(zapline.socket_url, tenant.token)
    conversation_id, phone = await open_conversation(zapline, tenant, http, events)
    message = await send(zapline, tenant, http, conversation_id, "status ladder")
    mid = message["id"]
    await events.wait_for(
        "message:status-update", lambda d: d["messageId"] == mid and d["status"] == "SENT"
    )
    wamid = (await stored(zapline, tenant, http, conversation_id))[mid]["whatsappMessageId"]
    assert wamid

    async def status(name: str, **extra: Any) -> None:
        body = status_webhook(
            phone_number_id=tenant.phone_number_id,
            wamid=wamid,
            status=name,
            recipient_id=phone,
            **extra,
        )
        response = await post_webhook(http, zapline, body, secret=secret)
        assert response.status_code == 200, response.text

    await status("read")
    await events.wait_for(
        "message:status-update", lambda d: d["messageId"] == mid and d["status"] == "READ"
    )
    await status("delivered")
    await status("sent")
    await events.expect_none("message:status-update", lambda d: d["messageId"] == mid, within=1.0)
    assert (await stored(zapline, tenant, http, conversation_id))[mid]["status"] == "READ"

    errors = [{"code": 131026, "title": "Message undeliverable"}]
    await status("failed", errors=errors)
    await events.wait_for(
        "message:status-update", lambda d: d["messageId"] == mid and d["status"] == "FAILED"
    )
    await status("read")
    await status("delivered")
    await events.expect_none("message:status-update", lambda d: d["messageId"] == mid, within=1.0)
    assert statuses_of(events, mid) == ["SENT", "READ", "FAILED"]
    final = (await stored(zapline, tenant, http, conversation_id))[mid]
    assert final["status"] == "FAILED"
    assert "131026" in str(final["error"])
