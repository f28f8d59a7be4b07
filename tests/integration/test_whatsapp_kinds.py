"""Every inbound kind Meta documents, posted through the real intake to a listening agent.

Each webhook (``_whatsapp_kinds.py``) goes to a running ``zapline serve`` over HTTP; the test
asserts the ``message:new`` the agent's socket receives, the card's ``conversation:updated``
and the stored message the REST API returns. The ``sio`` fixture holds every event to the
README's contract, so a new type or field that the README does not declare fails here.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from _contract import violations
from _desk_harness import SocketFactory, Tenant, ZaplineServer, auth, post_webhook
from _whatsapp_kinds import KINDS, message, profile, webhook

pytestmark = pytest.mark.anyio


def new_sender() -> str:
    return "1555" + str(uuid.uuid4().int)[:8]


async def rest_message(
    http: httpx.AsyncClient, server: ZaplineServer, token: str, conversation_id: str
) -> list[dict[str, Any]]:
    url = f"{server.api_url}/api/conversations/{conversation_id}/messages"
    got = await http.get(url, headers=auth(token))
    assert got.status_code == 200, got.text
    assert violations(got.json(), "MessageList") == []
    return list(got.json()["messages"])


@pytest.mark.parametrize("name", sorted(KINDS))
async def test_each_kind_reaches_the_agent_readable(
    name: str,
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.AsyncClient,
    sio: SocketFactory,
) -> None:
    kind = KINDS[name]
    sender, wamid = new_sender(), f"wamid.{name}.{uuid.uuid4().hex[:8]}"
    raw = message(sender, wamid, kind.kind, kind.part, **kind.extra)
    # System notices carry no contacts array (Meta's reference says so).
    contacts = None if kind.kind == "system" else profile(sender, "Dana")
    _, events = await sio(zapline.socket_url, tenant.token)
    posted = await post_webhook(
        http,
        zapline,
        webhook(tenant.phone_number_id, [raw], contacts=contacts),
        secret=tenant.app_secret,
    )
    assert posted.status_code == 200, posted.text

    (new,) = await events.wait_for(
        "message:new", lambda d: d["message"]["whatsappMessageId"] == wamid
    )
    got = new["message"]
    assert (got["type"], got["content"], got["direction"], got["status"]) == (
        kind.type,
        kind.content,
        "INBOUND",
        "DELIVERED",
    )
    assert got["metadata"] == raw  # the original object, whatever its type
    assert got["error"] == kind.error
    # A number change files the notice under the customer's new number (see below).
    moved_to = kind.part.get("wa_id") if kind.kind == "system" else None
    assert got["contact"]["phoneNumber"] == (moved_to or sender)
    conversation_id = new["conversationId"]
    (card,) = await events.wait_for(
        "conversation:updated", lambda d: d["conversationId"] == conversation_id
    )
    assert card["lastMessage"]["content"] == kind.content
    assert card["lastMessage"]["type"] == kind.type

    (stored,) = await rest_message(http, zapline, tenant.token, conversation_id)
    assert stored == got


async def test_a_name_in_contacts_only_names_its_own_number(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    sender, wamid = new_sender(), f"wamid.{uuid.uuid4().hex[:10]}"
    raw = message(sender, wamid, "text", {"body": "hello"})
    _, events = await sio(zapline.socket_url, tenant.token)
    body = webhook(tenant.phone_number_id, [raw], contacts=profile("15559990000", "Somebody"))
    assert (await post_webhook(http, zapline, body, secret=tenant.app_secret)).status_code == 200
    (new,) = await events.wait_for(
        "message:new", lambda d: d["message"]["whatsappMessageId"] == wamid
    )
    assert new["message"]["contact"] == {**new["message"]["contact"], "phoneNumber": sender}
    assert new["message"]["contact"]["name"] is None


async def post(
    http: httpx.AsyncClient, server: ZaplineServer, tenant: Tenant, raw: dict[str, Any]
) -> None:
    body = webhook(tenant.phone_number_id, [raw], contacts=profile(raw["from"], "Dana"))
    response = await post_webhook(http, server, body, secret=tenant.app_secret)
    assert response.status_code == 200, response.text


async def test_reactions_edits_and_deletions_change_their_message(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    sender, target = new_sender(), f"wamid.t.{uuid.uuid4().hex[:8]}"
    _, events = await sio(zapline.socket_url, tenant.token)
    await post(http, zapline, tenant, message(sender, target, "text", {"body": "helo"}))
    (new,) = await events.wait_for(
        "message:new", lambda d: d["message"]["whatsappMessageId"] == target
    )
    original, cid = new["message"], new["conversationId"]
    assert (original["reactions"], original["edited"], original["deleted"]) == ([], False, False)
    (card,) = await events.wait_for("conversation:updated", lambda d: d["conversationId"] == cid)

    def updates() -> list[dict[str, Any]]:
        return [e["message"] for e in events.named("message:updated") if e["conversationId"] == cid]

    await post(
        http,
        zapline,
        tenant,
        message(sender, "wamid.r1." + target, "reaction", {"message_id": target, "emoji": "👍"}),
    )
    await events.wait_for("message:updated", lambda d: d["conversationId"] == cid)
    reacted = updates()[-1]
    assert reacted["id"] == original["id"]
    assert [(r["from"], r["emoji"]) for r in reacted["reactions"]] == [(sender, "👍")]
    assert reacted["content"] == "helo"
    # A reaction neither is a message nor moves the card.
    await events.expect_none(
        "conversation:updated", lambda d: d["conversationId"] == cid, within=0.5
    )

    await post(
        http,
        zapline,
        tenant,
        message(sender, "wamid.r2." + target, "reaction", {"message_id": target}),
    )
    await events.wait_for("message:updated", lambda d: d["conversationId"] == cid, count=2)
    assert updates()[-1]["reactions"] == []

    edit = {"original_message_id": target, "message": {"type": "text", "text": {"body": "hello"}}}
    await post(http, zapline, tenant, message(sender, "wamid.e." + target, "edit", edit))
    await events.wait_for("message:updated", lambda d: d["conversationId"] == cid, count=3)
    edited = updates()[-1]
    assert (edited["id"], edited["content"], edited["edited"], edited["type"]) == (
        original["id"],
        "hello",
        True,
        "TEXT",
    )
    assert edited["metadata"]["edits"][0]["previousContent"] == "helo"
    (_, card_after) = await events.wait_for(
        "conversation:updated", lambda d: d["conversationId"] == cid, count=2
    )
    assert card_after["lastMessage"]["content"] == "hello"
    assert card_after["lastMessageAt"] == card["lastMessageAt"]  # the card does not move

    await post(
        http,
        zapline,
        tenant,
        message(sender, "wamid.d." + target, "revoke", {"original_message_id": target}),
    )
    await events.wait_for("message:updated", lambda d: d["conversationId"] == cid, count=4)
    deleted = updates()[-1]
    assert (deleted["content"], deleted["deleted"], deleted["type"]) == ("", True, "TEXT")
    assert "hel" not in str(deleted["metadata"])

    (stored,) = await rest_message(http, zapline, tenant.token, cid)
    assert stored == deleted
    assert len(events.named("message:new", lambda d: d["conversationId"] == cid)) == 1


async def test_a_number_change_continues_the_conversation_under_the_new_number(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    old, new_number = new_sender(), new_sender()
    _, events = await sio(zapline.socket_url, tenant.token)
    await post(http, zapline, tenant, message(old, f"wamid.o.{old}", "text", {"body": "hi"}))
    (first,) = await events.wait_for("message:new")
    cid = first["conversationId"]
    notice = message(
        old,
        f"wamid.sys.{old}",
        "system",
        {
            "body": f"User Dana changed from {old} to {new_number}",
            "wa_id": new_number,
            "type": "user_changed_number",
        },
    )
    body = webhook(tenant.phone_number_id, [notice])  # system notices carry no contacts
    for _ in range(2):  # the same webhook twice
        response = await post_webhook(http, zapline, body, secret=tenant.app_secret)
        assert response.status_code == 200, response.text
    (moved,) = await events.wait_for(
        "message:new", lambda d: d["message"]["whatsappMessageId"] == notice["id"]
    )
    assert moved["conversationId"] == cid
    assert (moved["message"]["type"], moved["message"]["content"]) == (
        "SYSTEM",
        f"User Dana changed from {old} to {new_number}",
    )
    assert moved["message"]["contact"]["phoneNumber"] == new_number
    (card,) = await events.wait_for(
        "conversation:updated", lambda d: d["conversationId"] == cid and "contact" in d
    )
    assert card["contact"]["phoneNumber"] == new_number
    assert card["contact"]["id"] == first["message"]["contact"]["id"]

    await post(
        http, zapline, tenant, message(new_number, f"wamid.n.{new_number}", "text", {"body": "me"})
    )
    (later,) = await events.wait_for(
        "message:new", lambda d: d["message"]["whatsappMessageId"] == f"wamid.n.{new_number}"
    )
    assert later["conversationId"] == cid
    assert len(events.named("conversation:new")) == 1
    assert len(await rest_message(http, zapline, tenant.token, cid)) == 3
