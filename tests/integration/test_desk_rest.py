"""The REST API and the socket's access rules, from a client's side: auth, Kanban, isolation."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
import socketio
from _desk_harness import (
    JWT_SECRET,
    EventLog,
    SocketFactory,
    Tenant,
    ZaplineServer,
    auth,
    create_tenant,
    get_all_pages,
    post_webhook,
)

from desk.auth import issue_token
from desk.whatsapp import text_message_webhook

pytestmark = pytest.mark.anyio

T0 = 1_700_001_000


def batch_webhook(pnid: str, items: list[tuple[str, str, int]]) -> dict[str, Any]:
    """One webhook carrying ``(wa_id, text, unix time)`` messages, each with a fresh wamid."""
    body = text_message_webhook(phone_number_id=pnid)
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": f"Client {w}"}, "wa_id": w} for w, _, _ in items]
    value["messages"] = [
        text_message_webhook(phone_number_id=pnid, wa_id=w, body=t, timestamp=ts)["entry"][0][
            "changes"
        ][0]["value"]["messages"][0]
        for w, t, ts in items
    ]
    return body


async def deliver(
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.AsyncClient,
    events: EventLog,
    items: list[tuple[str, str, int]],
) -> list[dict[str, Any]]:
    """Post ``items`` in one webhook and wait for their ``message:new``; return those events."""
    response = await post_webhook(
        http, zapline, batch_webhook(tenant.phone_number_id, items), secret=tenant.app_secret
    )
    assert response.status_code == 200, response.text
    return await events.wait_for("message:new", count=len(items))


async def test_login(zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient) -> None:
    url = f"{zapline.api_url}/api/auth/login"
    ok = await http.post(url, json={"email": tenant.email, "password": tenant.password})
    assert ok.status_code == 200, ok.text
    user = ok.json()["user"]
    assert user["id"] == tenant.user_id
    assert (user["tenantId"], user["role"], user["email"]) == (tenant.id, "agent", tenant.email)
    assert "name" in user
    token = ok.json()["token"]
    listed = await http.get(f"{zapline.api_url}/api/conversations", headers=auth(token))
    assert listed.status_code == 200
    for wrong in (
        {"email": tenant.email, "password": tenant.password + "x"},
        {"email": "nobody@it.example", "password": tenant.password},
    ):
        refused = await http.post(url, json=wrong)
        assert refused.status_code == 401
        assert "error" in refused.json()
        assert "token" not in refused.json()


async def test_api_requires_a_valid_token(zapline: ZaplineServer, http: httpx.AsyncClient) -> None:
    url = f"{zapline.api_url}/api/conversations"
    foreign = issue_token("another-secret-" + "x" * 40, user_id="u", tenant_id="t")
    expired = issue_token(JWT_SECRET, user_id="u", tenant_id="t", ttl=-10)
    for headers in ({}, auth("not-a-jwt"), auth(foreign), auth(expired)):
        response = await http.get(url, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["error"]


async def test_socket_refuses_a_bad_token(zapline: ZaplineServer) -> None:
    expired = issue_token(JWT_SECRET, user_id="u", tenant_id="t", ttl=-10)
    for token, detail in (("garbage", "invalid token"), (expired, "expired"), (None, "no token")):
        log = EventLog()
        client = socketio.AsyncClient(reconnection=False)
        client.on("connect_error", lambda data, log=log: log.record("connect_error", data))
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                zapline.socket_url,
                auth={"token": token} if token else None,
                transports=["websocket"],
                wait_timeout=5,
            )
        (error,) = await log.wait_for("connect_error", within=5)
        message = error["message"] if isinstance(error, dict) else str(error)
        assert message.startswith("Authentication error"), message
        assert detail in message, message
        assert not client.connected


async def test_kanban_filters_and_cursor_pagination(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    phones = [f"55117000000{i:02d}" for i in range(5)]
    news = await deliver(
        zapline, tenant, http, events, [(p, f"hello {i}", T0 + i) for i, p in enumerate(phones)]
    )
    conversation_of = {e["message"]["contact"]["phoneNumber"]: e["conversationId"] for e in news}
    url = f"{zapline.api_url}/api/conversations"

    async def pages(**params: str) -> list[dict[str, Any]]:
        return await get_all_pages(
            http, url, tenant.token, "conversations", limit=2, cursor_param="cursor", params=params
        )

    everything = await pages()
    assert [c["contact"]["phoneNumber"] for c in everything] == phones[::-1], "newest first"
    assert len({c["id"] for c in everything}) == 5
    assert all(c["stage"] == "new" for c in everything)

    won = [conversation_of[phones[1]], conversation_of[phones[3]]]
    for conversation_id in won:
        patched = await http.patch(
            f"{url}/{conversation_id}", json={"stage": "won"}, headers=auth(tenant.token)
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["conversation"]["stage"] == "won"
        (update,) = await events.wait_for(
            "conversation:updated",
            lambda d, cid=conversation_id: d["conversationId"] == cid and "updates" in d,
        )
        assert update["updates"] == {"stage": "won"}
    assert [c["id"] for c in await pages(stage="won")] == won[::-1]
    assert {c["id"] for c in await pages(stage="new")} == set(conversation_of.values()) - set(won)

    target = conversation_of[phones[0]]
    patched = await http.patch(
        f"{url}/{target}", json={"assigneeId": tenant.user_id}, headers=auth(tenant.token)
    )
    assert patched.status_code == 200, patched.text
    (update,) = await events.wait_for(
        "conversation:updated",
        lambda d: d["conversationId"] == target and "assigneeId" in d.get("updates", {}),
    )
    assert update["updates"] == {"assigneeId": tenant.user_id}
    assert [c["id"] for c in await pages(assignee=tenant.user_id)] == [target]
    card = await http.get(f"{url}/{target}", headers=auth(tenant.token))
    assert card.json()["conversation"]["assigneeId"] == tenant.user_id
    bad = await http.get(url, params={"cursor": "not-a-cursor"}, headers=auth(tenant.token))
    assert bad.status_code == 400


async def test_messages_cursor_pagination(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    phone = "5511700000099"
    news = await deliver(
        zapline, tenant, http, events, [(phone, f"line {i}", T0 + i) for i in range(7)]
    )
    (conversation_id,) = {e["conversationId"] for e in news}
    url = f"{zapline.api_url}/api/conversations/{conversation_id}/messages"
    first = await http.get(url, params={"limit": 3}, headers=auth(tenant.token))
    assert len(first.json()["messages"]) == 3 and first.json()["nextCursor"]
    messages = await get_all_pages(
        http, url, tenant.token, "messages", limit=3, cursor_param="before"
    )
    assert [m["content"] for m in messages] == [f"line {i}" for i in range(6, -1, -1)]
    assert len({m["id"] for m in messages}) == 7


async def test_another_tenant_sees_nothing(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    other = await anyio.to_thread.run_sync(lambda: create_tenant(zapline))
    client_a, events_a = await sio(zapline.socket_url, tenant.token)
    client_b, events_b = await sio(zapline.socket_url, other.token)
    (news,) = await deliver(zapline, tenant, http, events_a, [("5511700000077", "private", T0)])
    conversation_id = news["conversationId"]
    base = f"{zapline.api_url}/api/conversations/{conversation_id}"
    as_b = auth(other.token)
    attempts = [
        await http.get(base, headers=as_b),
        await http.get(f"{base}/messages", headers=as_b),
        await http.patch(base, json={"stage": "stolen"}, headers=as_b),
        await http.post(f"{base}/messages", json={"content": "hijack"}, headers=as_b),
    ]
    for response in attempts:
        assert response.status_code == 404, (response.request.method, response.request.url)
        assert "error" in response.json()
    listed = await http.get(f"{zapline.api_url}/api/conversations", headers=as_b)
    assert listed.json()["conversations"] == []

    denied = await client_b.call("conversation:join", conversation_id, timeout=5)
    assert denied["ok"] is False
    allowed = await client_a.call("conversation:join", conversation_id, timeout=5)
    assert allowed["ok"] is True

    card = await http.get(base, headers=auth(tenant.token))
    assert card.json()["conversation"]["stage"] == "new"
    mine = await http.get(f"{base}/messages", headers=auth(tenant.token))
    assert [m["content"] for m in mine.json()["messages"]] == ["private"]
    await events_b.expect_none("message:new", within=0.3)
    leaked = [name for name, _ in events_b.events if name not in ("connect",)]
    assert leaked == [], f"tenant B received {leaked}"


async def test_a_stage_with_control_characters_is_refused_naming_the_field(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    (new,) = await deliver(zapline, tenant, http, events, [("5511700000900", "oi", T0)])
    url = f"{zapline.api_url}/api/conversations/{new['conversationId']}"
    headers = {**auth(tenant.token), "Content-Type": "application/json"}
    control = ["a\x00b", "tab\there", "two\nlines", "\x1b[31mred", "del\x7f", "c1\x85", "\ud800"]
    for stage in control + ["x" * 65, "   ", "", 7]:
        # json.dumps escapes them all (a lone surrogate too), as a browser's JSON.stringify does.
        refused = await http.patch(url, content=json.dumps({"stage": stage}), headers=headers)
        assert refused.status_code == 400, (stage, refused.text)
        assert refused.json()["field"] == "stage", stage
        wanted = "control characters" if stage in control else "at most 64 characters"
        assert wanted in refused.json()["error"], (stage, refused.json())
    card = (await http.get(url, headers=auth(tenant.token))).json()["conversation"]
    assert (card["stage"], card["version"]) == ("new", 0)

    # Any printable text is a stage, emoji sequences (joined by U+200D) included.
    stage = "👩\u200d💻 suporte".ljust(64, ".")
    moved = await http.patch(url, content=json.dumps({"stage": stage}), headers=headers)
    assert moved.status_code == 200, moved.text
    assert moved.json()["conversation"]["stage"] == stage
