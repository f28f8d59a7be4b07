"""Unread counters with the official JavaScript client (socket.io-client 4.8,
tests/js/unread.mjs): two tabs of one agent hear a customer message and their own read."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import orjson
import pytest
from _contract import event_violations
from _desk_harness import Tenant, ZaplineServer, post_webhook
from _node import JS_DIR, require_node

from desk.whatsapp import text_message_webhook

pytestmark = [pytest.mark.anyio, pytest.mark.node]


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_two_tabs_with_the_official_client(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, transport: str
) -> None:
    node = require_node()
    command = [
        node, str(JS_DIR / "unread.mjs"), "--url", zapline.socket_url,
        "--token", tenant.token, "--transport", transport,
    ]  # fmt: skip
    lines: list[bytes] = []
    with anyio.fail_after(30):
        async with await anyio.open_process(command) as process:
            assert process.stdout is not None
            buffered = b""
            async for chunk in process.stdout:
                buffered += chunk
                *done, buffered = buffered.split(b"\n")
                for line in done:
                    lines.append(line)
                    if orjson.loads(line).get("ready"):
                        body = text_message_webhook(
                            phone_number_id=tenant.phone_number_id,
                            wa_id=f"55117098{transport[:2]}",
                        )
                        posted = await post_webhook(http, zapline, body, secret=tenant.app_secret)
                        assert posted.status_code == 200
            if buffered.strip():
                lines.append(buffered)
            await process.wait()
    report: dict[str, Any] = orjson.loads(lines[-1])
    assert report["ok"], report["errors"]
    results = report["results"]
    raised = results["raised"]
    assert [(u["unreadCount"], u["totalUnread"]) for u in raised] == [(1, 1), (1, 1)]
    conversation_id = raised[0]["conversationId"]
    assert results["ack"] == {"ok": True, "unreadCount": 0}
    assert [u["conversationId"] for u in results["cleared"]] == [conversation_id] * 2
    assert [u["totalUnread"] for u in results["cleared"]] == [0, 0]
    assert results["denied"] == {"ok": False, "error": "conversation not found"}
    # Each tab counted the message once, and heard the read once.
    for seen in results["seen"]:
        assert [(u["unreadCount"], u["totalUnread"]) for u in seen] == [(1, 1), (0, 0)]
        for payload in seen:
            assert event_violations("unread:update", payload) == []
