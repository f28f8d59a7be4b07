"""Unread counters and read receipts with real clients: tabs, roles, tenants, REST and socket.

Every socket's log is held to the README's contract (the ``sio`` fixture), and to who may see
what: an agent who may not see a conversation never gets its ``unread:update``.
"""

from __future__ import annotations

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
from test_permissions import add_user

from desk.whatsapp import text_message_webhook

pytestmark = pytest.mark.anyio


async def customer_writes(
    http: httpx.AsyncClient, server: ZaplineServer, tenant: Tenant, phone: str, text: str
) -> None:
    body = text_message_webhook(phone_number_id=tenant.phone_number_id, wa_id=phone, body=text)
    assert (await post_webhook(http, server, body, secret=tenant.app_secret)).status_code == 200


async def fake_reads(http: httpx.AsyncClient, server: ZaplineServer, tenant: Tenant) -> list[str]:
    """The wamids the fake Cloud API was asked to mark read for ``tenant``'s number."""
    found = (await http.get(f"{server.whatsapp_api_url}/_fake/reads")).json()["reads"]
    return [r["message_id"] for r in found if r["phone_number_id"] == tenant.phone_number_id]


async def settled_reads(
    http: httpx.AsyncClient, server: ZaplineServer, tenant: Tenant, count: int
) -> list[str]:
    """The fake's mark-as-read calls for ``tenant`` once ``count`` arrived and 0.3 s passed
    without more (a duplicate would show up in that time); fails after 5 s without them."""
    for _ in range(100):
        if len(await fake_reads(http, server, tenant)) >= count:
            break
        await anyio.sleep(0.05)
    await anyio.sleep(0.3)
    return await fake_reads(http, server, tenant)


def unread_of(events: EventLog, conversation_id: str) -> list[tuple[int, int]]:
    return [
        (e["unreadCount"], e["totalUnread"])
        for e in events.named("unread:update", lambda d: d["conversationId"] == conversation_id)
    ]


async def test_tabs_roles_tenants_and_both_read_paths(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    admin_id, admin_token = await anyio.to_thread.run_sync(
        lambda: add_user(zapline, tenant, "admin")
    )
    y_id, y_token = await anyio.to_thread.run_sync(lambda: add_user(zapline, tenant, "agent"))
    stranger = await anyio.to_thread.run_sync(lambda: create_tenant(zapline))
    tab1, tab1_events = await sio(zapline.socket_url, tenant.token)
    _, tab2_events = await sio(zapline.socket_url, tenant.token)
    _, admin_events = await sio(zapline.socket_url, admin_token)
    y, y_events = await sio(zapline.socket_url, y_token)
    _, z_events = await sio(zapline.socket_url, stranger.token)

    # Unassigned: every agent of the tenant may see it, and counts it once (two tabs or not).
    await customer_writes(http, zapline, tenant, "5511700100001", "first")
    (first,) = await tab1_events.wait_for("message:new")
    conv = first["conversationId"]
    for events in (tab1_events, tab2_events, admin_events, y_events):
        await events.wait_for("unread:update", lambda d: d["conversationId"] == conv)
        assert unread_of(events, conv) == [(1, 1)]

    # Given to X: Y loses it (its counter says so), then hears nothing of it.
    patched = await http.patch(
        f"{zapline.api_url}/api/conversations/{conv}",
        json={"assigneeId": tenant.user_id},
        headers=auth(admin_token),
    )
    assert patched.status_code == 200, patched.text
    await y_events.wait_for("unread:update", lambda d: d["unreadCount"] == 0)
    assert unread_of(y_events, conv) == [(1, 1), (0, 0)]
    await customer_writes(http, zapline, tenant, "5511700100001", "second")
    for events in (tab1_events, tab2_events, admin_events):
        await events.wait_for("unread:update", lambda d: d["unreadCount"] == 2)
        assert unread_of(events, conv) == [(1, 1), (2, 2)]
    (second,) = await tab1_events.wait_for(
        "message:new", lambda d: d["message"]["content"] == "second"
    )
    await y_events.expect_none("unread:update", within=0.5)
    assert y_events.named("message:new", lambda d: d["message"]["content"] == "second") == []

    # The listing and /api/me carry the caller's counts.
    listed = await http.get(f"{zapline.api_url}/api/conversations", headers=auth(tenant.token))
    (card,) = [c for c in listed.json()["conversations"] if c["id"] == conv]
    assert card["unreadCount"] == 2
    me = (await http.get(f"{zapline.api_url}/api/me", headers=auth(tenant.token))).json()
    assert (me["user"]["id"], me["totalUnread"]) == (tenant.user_id, 2)
    y_me = (await http.get(f"{zapline.api_url}/api/me", headers=auth(y_token))).json()
    assert y_me["totalUnread"] == 0

    # A read from one tab reaches both tabs; the customer's first message becomes READ.
    ack = await tab1.call(
        "conversation:read", {"conversationId": conv, "messageId": first["message"]["id"]}
    )
    assert ack == {"ok": True, "unreadCount": 1}
    for events in (tab1_events, tab2_events):
        await events.wait_for("unread:update", lambda d: d["unreadCount"] == 1, count=2)
        assert unread_of(events, conv)[-1] == (1, 1)
    await admin_events.wait_for(
        "message:status-update",
        lambda d: d["messageId"] == first["message"]["id"] and d["status"] == "READ",
    )

    # Never back: reading up to the first message again changes nothing (REST path).
    read_url = f"{zapline.api_url}/api/conversations/{conv}/read"
    back = await http.post(
        read_url, json={"messageId": first["message"]["id"]}, headers=auth(tenant.token)
    )
    assert back.json() == {"ok": True, "unreadCount": 1}
    everything = await http.post(read_url, headers=auth(tenant.token))
    assert everything.json() == {"ok": True, "unreadCount": 0}
    me = (await http.get(f"{zapline.api_url}/api/me", headers=auth(tenant.token))).json()
    assert me["totalUnread"] == 0
    # The admin's counter is their own.
    admin_me = (await http.get(f"{zapline.api_url}/api/me", headers=auth(admin_token))).json()
    assert admin_me["totalUnread"] == 2

    # Y may not read it, by either path; another tenant's agent neither.
    denied = await y.call("conversation:read", {"conversationId": conv})
    assert denied == {"ok": False, "error": "conversation not found"}
    assert (await http.post(read_url, headers=auth(y_token))).status_code == 404
    assert (await http.post(read_url, headers=auth(stranger.token))).status_code == 404
    bad = await http.post(read_url, json={"messageId": "nope"}, headers=auth(tenant.token))
    assert bad.status_code == 400 and bad.json()["field"] == "messageId"

    # Each customer message was marked read on WhatsApp once, however many agents read.
    assert (await http.post(read_url, headers=auth(admin_token))).json()["unreadCount"] == 0
    wamids = [first["message"]["whatsappMessageId"], second["message"]["whatsappMessageId"]]
    assert await settled_reads(http, zapline, tenant, 2) == wamids
    leaked = [name for name, _ in z_events.events if name != "connect"]
    assert leaked == [], f"another tenant received {leaked}"


async def test_two_agents_reading_at_once_mark_it_read_once(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, admin_token = await anyio.to_thread.run_sync(lambda: add_user(zapline, tenant, "admin"))
    _, events = await sio(zapline.socket_url, tenant.token)
    await customer_writes(http, zapline, tenant, "5511700100002", "anyone there?")
    (new,) = await events.wait_for("message:new")
    conv, message = new["conversationId"], new["message"]
    url = f"{zapline.api_url}/api/conversations/{conv}/read"
    answers: list[Any] = []

    async def read(token: str) -> None:
        answers.append((await http.post(url, json={}, headers=auth(token))).json())

    async with anyio.create_task_group() as tg:
        tg.start_soon(read, tenant.token)
        tg.start_soon(read, admin_token)
    assert answers == [{"ok": True, "unreadCount": 0}] * 2
    (status,) = await events.wait_for(
        "message:status-update", lambda d: d["messageId"] == message["id"]
    )
    assert status["status"] == "READ"
    assert await settled_reads(http, zapline, tenant, 1) == [message["whatsappMessageId"]]
    assert len(events.named("message:status-update", lambda d: d["status"] == "READ")) == 1
    page = await http.get(
        f"{zapline.api_url}/api/conversations/{conv}/messages", headers=auth(tenant.token)
    )
    assert [m["status"] for m in page.json()["messages"]] == ["READ"]


async def test_receipts_off_for_a_number_reads_without_telling_whatsapp(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    await customer_writes(http, zapline, tenant, "5511700100003", "quietly")
    (new,) = await events.wait_for("conversation:new")
    account_id = new["conversation"]["accountId"]
    switched = await anyio.to_thread.run_sync(
        lambda: zapline.cli(
            "account", "read-receipts", "--tenant", tenant.id, "--account", account_id, "off"
        )
    )
    assert switched == {"accountId": account_id, "readReceipts": False}
    conv = new["conversation"]["id"]
    read = await http.post(
        f"{zapline.api_url}/api/conversations/{conv}/read", headers=auth(tenant.token)
    )
    assert read.json() == {"ok": True, "unreadCount": 0}
    await events.wait_for("message:status-update", lambda d: d["status"] == "READ")
    await anyio.sleep(0.5)
    assert await fake_reads(http, zapline, tenant) == []
