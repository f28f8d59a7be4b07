"""The live desk with real clients: presence across tabs, who is viewing, typing, isolation."""

from __future__ import annotations

import uuid

import anyio
import httpx
import pytest
from _contract import violations
from _desk_harness import (
    JWT_SECRET,
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


def second_agent(server: ZaplineServer, tenant: Tenant, name: str) -> tuple[str, str]:
    """Another agent of ``tenant`` (admin CLI); return (user id, token)."""
    tag = uuid.uuid4().hex[:8]
    user = server.cli(
        "user", "create", "--tenant", tenant.id, "--email", f"{tag}@it.example",
        "--password", "pw", "--name", name,
    )  # fmt: skip
    token = issue_token(JWT_SECRET, user_id=user["id"], tenant_id=tenant.id, role="agent")
    return user["id"], token


async def test_presence_viewers_and_typing_between_two_agents(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    bia_id, bia_token = await anyio.to_thread.run_sync(lambda: second_agent(zapline, tenant, "Bia"))
    stranger = await anyio.to_thread.run_sync(lambda: create_tenant(zapline))
    _, strangers = await sio(zapline.socket_url, stranger.token)
    bia, bia_events = await sio(zapline.socket_url, bia_token)
    ana1, ana1_events = await sio(zapline.socket_url, tenant.token)
    (online,) = await bia_events.wait_for("presence:update")
    assert (online["userId"], online["status"]) == (tenant.user_id, "online")
    ana2, ana2_events = await sio(zapline.socket_url, tenant.token)  # a second tab
    await bia_events.expect_none("presence:update", within=0.5)
    assert ana1_events.named("presence:update", lambda d: d["userId"] == tenant.user_id) == []

    listed = await http.get(f"{zapline.api_url}/api/presence", headers=auth(bia_token))
    assert listed.status_code == 200 and violations(listed.json(), "PresenceList") == []
    status = {a["userId"]: a["status"] for a in listed.json()["agents"]}
    assert status[tenant.user_id] == "online" and status[bia_id] == "online"

    body = text_message_webhook(phone_number_id=tenant.phone_number_id, wa_id="5511700000901")
    assert (await post_webhook(http, zapline, body, secret=tenant.app_secret)).status_code == 200
    (new,) = await bia_events.wait_for("message:new")
    conversation_id = new["conversationId"]

    assert (await ana1.call("conversation:join", conversation_id, timeout=5))["ok"]
    assert (await bia.call("conversation:join", conversation_id, timeout=5))["ok"]
    views = await bia_events.wait_for("conversation:viewers", lambda d: len(d["viewers"]) == 2)
    assert {v["name"] for v in views[0]["viewers"]} == {"Bia", f"Agent {tenant.email[6:16]}"}

    assert await ana1.call("typing:start", {"conversationId": conversation_id}, timeout=5) == {
        "ok": True
    }
    (typing,) = await bia_events.wait_for("typing")
    assert typing == {"conversationId": conversation_id, "userId": tenant.user_id, "isTyping": True}
    await ana2_events.expect_none("typing", within=0.3)  # never to the typist's own tabs
    assert ana1_events.named("typing") == []
    await ana1.call("typing:stop", {"conversationId": conversation_id}, timeout=5)
    stopped = await bia_events.wait_for("typing", count=2)
    assert stopped[1]["isTyping"] is False

    refused = await bia.call("typing:start", {"conversationId": "not-joined"}, timeout=5)
    assert refused["ok"] is False
    away = await ana2.call("presence:set", {"status": "away"}, timeout=5)
    assert away == {"ok": True}
    await bia_events.wait_for("presence:update", lambda d: d["status"] == "away")

    await ana1.disconnect()  # Ana leaves the conversation with her last viewing tab
    await bia_events.wait_for("conversation:viewers", lambda d: len(d["viewers"]) == 1)

    leaked = [name for name, _ in strangers.events if name != "connect"]
    assert leaked == [], f"another tenant's agent received {leaked}"
