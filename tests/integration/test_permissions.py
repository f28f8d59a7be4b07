"""Who sees what: every server event type, two tenants, an admin and two agents at once.

An agent sees their own and the unassigned conversations; an admin sees all of the tenant;
another tenant sees nothing. Every socket's whole log is checked against what it may see,
not only the events a test waits for.
"""

from __future__ import annotations

import uuid

import anyio
import httpx
import pytest
from _contract import violations
from _desk_harness import (
    JWT_SECRET,
    EventLog,
    SocketFactory,
    Tenant,
    ZaplineServer,
    auth,
    create_tenant,
    post_webhook,
)

from desk.auth import issue_token
from desk.whatsapp import text_message_webhook

pytestmark = pytest.mark.anyio


def add_user(server: ZaplineServer, tenant: Tenant, role: str) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    user = server.cli(
        "user", "create", "--tenant", tenant.id, "--email", f"{role}-{tag}@it.example",
        "--password", "pw", "--role", role, "--name", f"{role} {tag}",
    )  # fmt: skip
    return user["id"], issue_token(JWT_SECRET, user_id=user["id"], tenant_id=tenant.id, role=role)


def about(events: EventLog, conversation_id: str, since: int = 0) -> list[str]:
    """Names of the events a socket got about one conversation, from index ``since``."""
    out = []
    for name, data in events.events[since:]:
        if isinstance(data, dict) and (
            data.get("conversationId") == conversation_id
            or (data.get("conversation") or {}).get("id") == conversation_id
        ):
            out.append(name)
    return out


async def test_no_socket_receives_what_its_role_may_not_see(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    admin_id, admin_token = await anyio.to_thread.run_sync(
        lambda: add_user(zapline, tenant, "admin")
    )
    y_id, y_token = await anyio.to_thread.run_sync(lambda: add_user(zapline, tenant, "agent"))
    stranger = await anyio.to_thread.run_sync(lambda: create_tenant(zapline))
    x_id, x_token = tenant.user_id, tenant.token
    admin, admin_events = await sio(zapline.socket_url, admin_token)
    x, x_events = await sio(zapline.socket_url, x_token)
    y, y_events = await sio(zapline.socket_url, y_token)
    _, z_events = await sio(zapline.socket_url, stranger.token)

    # Unassigned: every agent of the tenant sees it.
    phone = "5511700000777"
    body = text_message_webhook(phone_number_id=tenant.phone_number_id, wa_id=phone, body="oi")
    assert (await post_webhook(http, zapline, body, secret=tenant.app_secret)).status_code == 200
    for events in (admin_events, x_events, y_events):
        (new,) = await events.wait_for("message:new")
    conversation_id = new["conversationId"]
    for client in (admin, x, y):
        assert (await client.call("conversation:join", conversation_id, timeout=5))["ok"]
    await y.call("typing:start", {"conversationId": conversation_id}, timeout=5)
    await x_events.wait_for("typing")
    await y_events.wait_for("unread:update")  # Y counts the unassigned conversation's message

    # The admin gives it to X: Y is told it left, then sees nothing more of it.
    marks = {
        name: len(e.events) for name, e in (("a", admin_events), ("x", x_events), ("y", y_events))
    }
    patched = await http.patch(
        f"{zapline.api_url}/api/conversations/{conversation_id}",
        json={"assigneeId": x_id},
        headers=auth(admin_token),
    )
    assert patched.status_code == 200, patched.text
    for events in (admin_events, x_events, y_events):
        (update,) = await events.wait_for(
            "conversation:updated", lambda d: "assigneeId" in d.get("updates", {})
        )
        assert (update["updates"]["assigneeId"], update["updatedBy"]) == (x_id, admin_id)
    # Y was typing and viewing: its typing ends and it stops viewing.
    await x_events.wait_for("typing", lambda d: d["userId"] == y_id and not d["isTyping"])
    await x_events.wait_for(
        "conversation:viewers", lambda d: y_id not in [v["userId"] for v in d["viewers"]]
    )

    body = text_message_webhook(phone_number_id=tenant.phone_number_id, wa_id=phone, body="2")
    assert (await post_webhook(http, zapline, body, secret=tenant.app_secret)).status_code == 200
    reply = await http.post(
        f"{zapline.api_url}/api/conversations/{conversation_id}/messages",
        json={"content": "answering"},
        headers=auth(x_token),
    )
    assert reply.status_code == 202, reply.text
    for events in (admin_events, x_events):
        await events.wait_for("message:new", count=3)  # the first, the second, the reply
        await events.wait_for("message:status-update")  # the fake Cloud API's statuses
    await y_events.expect_none("message:new", within=1.0)
    # unread:update is gathered (ZAPLINE_UNREAD_INTERVAL): wait for Y's drop to arrive.
    await y_events.wait_for(
        "unread:update", lambda d: d["conversationId"] == conversation_id and d["unreadCount"] == 0
    )

    after_y = about(y_events, conversation_id, marks["y"])
    # The card leaves Y's board, and its unread message leaves Y's counters; nothing after.
    assert after_y == ["conversation:updated", "unread:update"], after_y
    (dropped,) = y_events.named("unread:update")[-1:]
    assert (dropped["unreadCount"], dropped["totalUnread"]) == (0, 0)
    assert "message:status-update" in about(admin_events, conversation_id, marks["a"])
    leaked = [name for name, _ in z_events.events if name != "connect"]
    assert leaked == [], f"another tenant received {leaked}"

    # Y's every way in is closed.
    refused = await y.call("conversation:join", conversation_id, timeout=5)
    assert refused == {"ok": False, "error": "conversation not found"}
    base = f"{zapline.api_url}/api/conversations/{conversation_id}"
    as_y = auth(y_token)
    for response in (
        await http.get(base, headers=as_y),
        await http.get(f"{base}/messages", headers=as_y),
        await http.patch(base, json={"stage": "won"}, headers=as_y),
        await http.post(f"{base}/messages", json={"content": "me too"}, headers=as_y),
    ):
        assert response.status_code == 404, (response.request.method, response.text)
    listed = await http.get(f"{zapline.api_url}/api/conversations", headers=as_y)
    assert conversation_id not in [c["id"] for c in listed.json()["conversations"]]
    mine = await http.get(f"{zapline.api_url}/api/conversations", headers=auth(x_token))
    assert conversation_id in [c["id"] for c in mine.json()["conversations"]]
    everything = await http.get(f"{zapline.api_url}/api/conversations", headers=auth(admin_token))
    assert conversation_id in [c["id"] for c in everything.json()["conversations"]]


async def test_assign_and_transfer_from_a_socket(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    y_id, y_token = await anyio.to_thread.run_sync(lambda: add_user(zapline, tenant, "agent"))
    x, x_events = await sio(zapline.socket_url, tenant.token)
    y, y_events = await sio(zapline.socket_url, y_token)
    body = text_message_webhook(phone_number_id=tenant.phone_number_id, wa_id="5511700000778")
    assert (await post_webhook(http, zapline, body, secret=tenant.app_secret)).status_code == 200
    (new,) = await y_events.wait_for("message:new")
    conversation_id = new["conversationId"]

    # X takes it: no conversation:assigned to X (it was X's own doing).
    taken = await x.call(
        "conversation:assign",
        {"conversationId": conversation_id, "assigneeId": tenant.user_id},
        timeout=5,
    )
    assert taken["ok"] and taken["conversation"]["assigneeId"] == tenant.user_id
    assert violations(taken, "AssignAck") == []
    # X transfers it to Y: Y is told who gave it; X keeps no right to it.
    moved = await x.call(
        "conversation:assign", {"conversationId": conversation_id, "assigneeId": y_id}, timeout=5
    )
    assert moved["ok"], moved
    (assigned,) = await y_events.wait_for("conversation:assigned")
    assert (assigned["conversation"]["id"], assigned["by"]) == (conversation_id, tenant.user_id)
    assert x_events.named("conversation:assigned") == []
    again = await x.call(
        "conversation:assign",
        {"conversationId": conversation_id, "assigneeId": tenant.user_id},
        timeout=5,
    )
    assert again == {"ok": False, "error": "conversation not found"}
    for bad in ({"conversationId": conversation_id}, {"assigneeId": y_id}, "x"):
        refused = await y.call("conversation:assign", bad, timeout=5)
        assert refused["ok"] is False
    stranger = await y.call(
        "conversation:assign",
        {"conversationId": conversation_id, "assigneeId": "nobody"},
        timeout=5,
    )
    assert stranger == {"ok": False, "error": "assigneeId is not a user of this tenant"}
