"""A new user's first ten minutes: the specification's own webhook, refusals, sends, card order.

Everything here goes through a real ``zapline serve`` and a python-socketio client; every event
those clients receive is also held to the README's wire contract by the ``sio`` fixture.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import orjson
import pytest
from _contract import violations
from _desk_harness import (
    SocketFactory,
    Tenant,
    ZaplineServer,
    auth,
    get_all_pages,
    post_webhook,
)

from desk.whatsapp import text_message_webhook

pytestmark = pytest.mark.anyio

# The product specification's "test via webhook" body, byte for byte (no ``object``, no
# ``field``), addressed to the demo number.
SPEC_BODY = (
    b'{"entry":[{"id":"test-entry","changes":[{"value":{"messaging_product":"whatsapp",'
    b'"metadata":{"display_phone_number":"5511999999999","phone_number_id":"test-phone-id"},'
    b'"messages":[{"from":"5511888888888","id":"test-msg-id","timestamp":"1699999999",'
    b'"type":"text","text":{"body":"Mensagem de teste Socket.io"}}]}}]}]}'
)
JSON = {"Content-Type": "application/json"}


async def demo_token(http: httpx.AsyncClient, server: ZaplineServer) -> str:
    login = await http.post(
        f"{server.api_url}/api/auth/login", json={"email": "agent@demo", "password": "demo"}
    )
    assert login.status_code == 200, login.text
    assert violations(login.json(), "LoginResponse") == []
    return str(login.json()["token"])


async def webhook_posts(http: httpx.AsyncClient, server: ZaplineServer, result: str) -> float:
    text = (await http.get(f"{server.api_url}/metrics")).text
    for line in text.splitlines():
        if line.startswith(f'zapline_webhook_posts_total{{result="{result}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_the_specifications_curl_reaches_an_agent_as_three_events(
    zapline: ZaplineServer, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    token = await demo_token(http, zapline)
    _, events = await sio(zapline.socket_url, token)
    first = await http.post(zapline.webhook_url, content=SPEC_BODY, headers=JSON)
    assert first.status_code == 200, first.text
    assert violations(first.json(), "WebhookAccepted") == []

    (created,) = await events.wait_for("conversation:new")
    (new,) = await events.wait_for("message:new")
    conversation_id = new["conversationId"]
    (updated,) = await events.wait_for(
        "conversation:updated", lambda d: d["conversationId"] == conversation_id
    )
    assert created["conversation"]["id"] == conversation_id
    message = new["message"]
    assert (message["direction"], message["status"], message["type"]) == (
        "INBOUND",
        "DELIVERED",
        "TEXT",
    )
    assert message["content"] == "Mensagem de teste Socket.io"
    assert message["whatsappMessageId"] == "test-msg-id"
    assert message["contact"]["phoneNumber"] == "5511888888888"
    assert updated["lastMessage"]["direction"] == "INBOUND"

    again = await http.post(zapline.webhook_url, content=SPEC_BODY, headers=JSON)
    assert again.status_code == 200, again.text
    await events.expect_none("message:new", within=1.0)
    assert len(events.named("conversation:new")) == 1


async def test_a_body_naming_another_object_is_refused_and_counted(
    zapline: ZaplineServer, http: httpx.AsyncClient
) -> None:
    before = await webhook_posts(http, zapline, "wrong_object")
    body = {**orjson.loads(SPEC_BODY), "object": "page"}
    refused = await http.post(zapline.webhook_url, content=orjson.dumps(body), headers=JSON)
    assert refused.status_code == 400
    assert "expected 'whatsapp_business_account'" in refused.json()["error"]
    assert violations(refused.json(), "ApiError") == []
    assert await webhook_posts(http, zapline, "wrong_object") == before + 1


async def test_a_late_older_message_never_moves_the_card_back(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    phone = "5511700000123"
    newer = text_message_webhook(
        phone_number_id=tenant.phone_number_id,
        wa_id=phone,
        wamid="wamid.newer",
        body="newer",
        timestamp=1_700_000_600,
    )
    older = text_message_webhook(
        phone_number_id=tenant.phone_number_id,
        wa_id=phone,
        wamid="wamid.older",
        body="older",
        timestamp=1_700_000_000,
    )
    for body in (newer, older):
        response = await post_webhook(http, zapline, body, secret=tenant.app_secret)
        assert response.status_code == 200, response.text
        await events.wait_for(
            "message:new", lambda d, b=body: d["message"]["whatsappMessageId"] == _wamid(b)
        )
    updates = await events.wait_for("conversation:updated", lambda d: "lastMessage" in d, count=2)
    late = updates[1]
    assert late["lastMessage"]["content"] == "newer"
    assert late["lastMessageAt"] == "2023-11-14T22:23:20.000Z"
    card = await http.get(
        f"{zapline.api_url}/api/conversations/{late['conversationId']}",
        headers=auth(tenant.token),
    )
    assert card.json()["conversation"]["lastMessageAt"] == late["lastMessageAt"]


def _wamid(body: dict[str, Any]) -> str:
    return str(body["entry"][0]["changes"][0]["value"]["messages"][0]["id"])


async def _conversation(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, phone: str
) -> str:
    body = text_message_webhook(phone_number_id=tenant.phone_number_id, wa_id=phone)
    response = await post_webhook(http, zapline, body, secret=tenant.app_secret)
    assert response.status_code == 200, response.text
    url = f"{zapline.api_url}/api/conversations"
    with anyio.fail_after(10):
        while True:
            cards = await get_all_pages(
                http, url, tenant.token, "conversations", limit=200, cursor_param="cursor"
            )
            found = [c["id"] for c in cards if c["contact"]["phoneNumber"] == phone]
            if found:
                return str(found[0])
            await anyio.sleep(0.05)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([1, 2], "body"),
        ("text", "body"),
        ({"type": "NOPE", "content": "x"}, "type"),
        ({"type": 7, "content": "x"}, "type"),
        ({"content": 5}, "content"),
        ({"content": "   "}, "content"),
        ({"content": "x" * 5000}, "content"),
        ({"content": "x", "metadata": [1]}, "metadata"),
        ({"type": "AUDIO"}, "metadata"),
        ({"type": "IMAGE", "content": "caption only"}, "metadata"),
        ({"type": "LOCATION", "metadata": {"latitude": 1}}, "metadata"),
        ({"type": "TEMPLATE"}, "metadata"),
    ],
)
async def test_a_send_that_could_never_go_out_is_a_400_naming_the_field(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, body: Any, field: str
) -> None:
    conversation_id = await _conversation(zapline, tenant, http, "5511700000456")
    url = f"{zapline.api_url}/api/conversations/{conversation_id}/messages"
    response = await http.post(
        url, content=orjson.dumps(body), headers={**JSON, **auth(tenant.token)}
    )
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert violations(response.json(), "ApiError") == []


async def test_media_without_content_is_sent_with_an_empty_string(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient
) -> None:
    conversation_id = await _conversation(zapline, tenant, http, "5511700000789")
    url = f"{zapline.api_url}/api/conversations/{conversation_id}/messages"
    response = await http.post(
        url,
        json={"type": "AUDIO", "metadata": {"id": "media-123"}},
        headers=auth(tenant.token),
    )
    assert response.status_code == 202, response.text
    assert violations(response.json(), "SendResponse") == []
    message = response.json()["message"]
    assert (message["type"], message["content"], message["direction"]) == ("AUDIO", "", "OUTBOUND")
