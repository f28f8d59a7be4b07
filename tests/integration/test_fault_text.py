"""Text PostgreSQL refuses (NUL, lone surrogates) in a webhook is stored, not lost.

Once, on PostgreSQL, ``"body":"a\\u0000b"`` was answered 200, failed its insert, failed its
dead letter the same way, and the inbox row was marked done: the message was gone for good.
"""

from __future__ import annotations

import httpx
import orjson
import pytest
from _desk_harness import SocketFactory, Tenant, ZaplineServer, auth, post_webhook

from desk.whatsapp import text_message_webhook

pytestmark = pytest.mark.anyio


async def test_nul_and_lone_surrogates_in_a_message_are_stored_and_announced(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    body = text_message_webhook(
        phone_number_id=tenant.phone_number_id,
        wa_id="5511700000555",
        name="Ana\u0000",
        wamid="wamid.nul",
        body="a\u0000b",
    )
    raw = orjson.dumps(body)
    # A lone surrogate cannot be encoded by orjson; JSON carries it escaped, as Meta would.
    raw = raw.replace(b"a\\u0000b", b"a\\u0000b \\ud800 c")
    response = await post_webhook(http, zapline, raw, secret=tenant.app_secret)
    assert response.status_code == 200, response.text

    (new,) = await events.wait_for("message:new")
    stored = await http.get(
        f"{zapline.api_url}/api/conversations/{new['conversationId']}/messages",
        headers=auth(tenant.token),
    )
    (message,) = stored.json()["messages"]
    assert message["content"] == "a\ufffdb \ufffd c"
    assert message["contact"]["name"] == "Ana\ufffd"
    assert message["whatsappMessageId"] == "wamid.nul"
    await events.expect_none("message:new", within=0.5)
