"""The orders WhatsApp does not promise, through the real intake: a status ahead of its
message, a status for a message that never comes, an edit, deletion or reaction ahead of the
message it changes, the same webhook twice.

The fake Cloud API can post a send's status webhooks before it answers the send
(``/_fake/statuses-first``), which is the race Meta produces when its status is quicker than
our commit of the WhatsApp id.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import orjson
import pytest
from _desk_harness import SocketFactory, Tenant, ZaplineServer, auth, post_webhook
from _whatsapp_kinds import message, profile, webhook

from desk.whatsapp import status_webhook, text_message_webhook

pytestmark = pytest.mark.anyio

# Kept statuses expire after a second here, so the expiry is seen within a test.
ZAPLINE_EXTRA_ENV = {"ZAPLINE_PENDING_STATUS_TTL": "1"}


@pytest.fixture
async def fake(zapline: ZaplineServer, http: httpx.AsyncClient) -> AsyncIterator[str]:
    url = zapline.whatsapp_api_url
    assert (await http.post(f"{url}/_fake/reset")).status_code == 200
    yield url
    await http.post(f"{url}/_fake/reset")


def log_since(server: ZaplineServer, offset: int) -> str:
    return server.log_path.read_bytes()[offset:].decode(errors="replace")


def new_phone() -> str:
    return f"55119{uuid.uuid4().int % 10**8:08d}"


async def test_statuses_ahead_of_their_send_are_applied_when_it_is_recorded(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory, fake: str
) -> None:
    offset = zapline.log_path.stat().st_size
    _, events = await sio(zapline.socket_url, tenant.token)
    phone = new_phone()
    body = text_message_webhook(phone_number_id=tenant.phone_number_id, wa_id=phone, body="hi")
    assert (await post_webhook(http, zapline, body, secret=tenant.app_secret)).status_code == 200
    (inbound,) = await events.wait_for("message:new")
    conversation_id = inbound["conversationId"]

    plan = await http.post(f"{fake}/_fake/statuses-first", json={"count": 1})
    assert plan.status_code == 200, plan.text
    sent = await http.post(
        f"{zapline.api_url}/api/conversations/{conversation_id}/messages",
        json={"content": "on its way"},
        headers=auth(tenant.token),
    )
    assert sent.status_code == 202, sent.text
    mid = sent.json()["message"]["id"]
    await events.wait_for(
        "message:status-update", lambda d: d["messageId"] == mid and d["status"] == "READ"
    )
    got = await http.get(
        f"{zapline.api_url}/api/conversations/{conversation_id}/messages",
        headers=auth(tenant.token),
    )
    (reply,) = [m for m in got.json()["messages"] if m["id"] == mid]
    assert reply["status"] == "READ"
    assert (
        reply["whatsappMessageId"]
        == (await http.get(f"{fake}/_fake/sent")).json()["messages"][0]["wamid"]
    )
    # An expected race: no retries, no tracebacks, no dead letter.
    log = log_since(zapline, offset)
    assert "Traceback" not in log
    assert "dead-lettered" not in log
    assert "retry" not in log.lower()


async def test_a_status_for_a_message_that_never_comes_expires_with_one_line(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    offset = zapline.log_path.stat().st_size
    _, events = await sio(zapline.socket_url, tenant.token)
    wamid = f"wamid.elsewhere.{uuid.uuid4().hex[:8]}"
    body = status_webhook(
        phone_number_id=tenant.phone_number_id, wamid=wamid, status="delivered", recipient_id="55"
    )
    for _ in range(2):  # the same webhook twice keeps one status
        assert (
            await post_webhook(http, zapline, body, secret=tenant.app_secret)
        ).status_code == 200
    for _ in range(100):  # the log is a file: poll it
        if wamid in log_since(zapline, offset):
            break
        await anyio.sleep(0.1)
    await anyio.sleep(1.0)  # another pass of the expiry: still one line
    lines = [line for line in log_since(zapline, offset).splitlines() if wamid in line]
    assert len(lines) == 1, lines
    record = orjson.loads(lines[0])
    assert (record["level"], record["tenant"]) == ("info", tenant.id)
    assert "expired" in record["msg"]
    assert "Traceback" not in log_since(zapline, offset)
    assert events.named("message:status-update") == []


async def post_messages(
    http: httpx.AsyncClient, server: ZaplineServer, tenant: Tenant, *raws: dict[str, Any]
) -> None:
    body = webhook(tenant.phone_number_id, list(raws), contacts=profile(raws[0]["from"], "Dana"))
    response = await post_webhook(http, server, body, secret=tenant.app_secret)
    assert response.status_code == 200, response.text


async def test_edit_and_reaction_ahead_of_their_message_are_in_its_message_new(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    sender, target = new_phone(), f"wamid.late.{uuid.uuid4().hex[:8]}"
    edit = {"original_message_id": target, "message": {"type": "text", "text": {"body": "fixed"}}}
    reaction = message(
        sender, f"wamid.r.{target}", "reaction", {"message_id": target, "emoji": "🙏"}
    )
    await post_messages(http, zapline, tenant, reaction)
    await post_messages(http, zapline, tenant, message(sender, f"wamid.e.{target}", "edit", edit))
    await post_messages(http, zapline, tenant, reaction)  # the same webhook twice
    await events.expect_none("message:updated", within=0.5)
    assert events.named("message:new") == []

    await post_messages(http, zapline, tenant, message(sender, target, "text", {"body": "fxied"}))
    (new,) = await events.wait_for(
        "message:new", lambda d: d["message"]["whatsappMessageId"] == target
    )
    got = new["message"]
    assert (got["content"], got["edited"], got["deleted"]) == ("fixed", True, False)
    assert [(r["from"], r["emoji"]) for r in got["reactions"]] == [(sender, "🙏")]
    (card,) = await events.wait_for(
        "conversation:updated", lambda d: d["conversationId"] == new["conversationId"]
    )
    assert card["lastMessage"]["content"] == "fixed"
    # Nothing is kept any more: the next pass announces nothing.
    await events.expect_none("message:updated", within=1.2)
    assert len(events.named("message:new")) == 1


async def test_a_deletion_ahead_of_its_message_stores_it_deleted(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    sender, target = new_phone(), f"wamid.gone.{uuid.uuid4().hex[:8]}"
    revoke = message(sender, f"wamid.d.{target}", "revoke", {"original_message_id": target})
    original = message(sender, target, "text", {"body": "oops, my card number"})
    # In one webhook, the deletion first (Meta promises no order).
    await post_messages(http, zapline, tenant, revoke, original)
    (new,) = await events.wait_for(
        "message:new", lambda d: d["message"]["whatsappMessageId"] == target
    )
    got = new["message"]
    assert (got["content"], got["deleted"], got["type"]) == ("", True, "TEXT")
    assert "card number" not in str(got["metadata"])
    await post_messages(http, zapline, tenant, revoke)  # the deletion again changes nothing
    await events.expect_none("message:updated", within=0.8)
