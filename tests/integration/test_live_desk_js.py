"""The live desk with the official JavaScript client (socket.io-client 4.8, tests/js/desk.mjs):
presence, who is viewing, typing and assignment between two agents, on both transports."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from _contract import event_violations
from _desk_harness import SocketFactory, Tenant, ZaplineServer, post_webhook
from test_live_desk import second_agent

from desk.whatsapp import text_message_webhook

pytestmark = [pytest.mark.anyio, pytest.mark.node]

JS_DIR = Path(__file__).resolve().parents[1] / "js"


def node_binary() -> str:
    node = shutil.which("node")
    reason = None
    if node is None:
        reason = "Node.js is not installed (needed for the socket.io-client tests)"
    elif not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        reason = f"socket.io-client is not installed: run `npm ci` in {JS_DIR}"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    assert node is not None
    return node


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_two_agents_with_the_official_client(
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.AsyncClient,
    sio: SocketFactory,
    transport: str,
) -> None:
    node = node_binary()
    b_id, b_token = await anyio.to_thread.run_sync(lambda: second_agent(zapline, tenant, "Bia"))
    _, events = await sio(zapline.socket_url, b_token)  # B online already; A comes later
    body = text_message_webhook(
        phone_number_id=tenant.phone_number_id, wa_id=f"55117099{transport[:2]}"
    )
    assert (await post_webhook(http, zapline, body, secret=tenant.app_secret)).status_code == 200
    (new,) = await events.wait_for("message:new")
    command = [
        node, str(JS_DIR / "desk.mjs"), "--url", zapline.socket_url,
        "--conversation", new["conversationId"], "--transport", transport,
        "--token-a", tenant.token, "--token-b", b_token,
        "--user-a", tenant.user_id, "--user-b", b_id,
    ]  # fmt: skip
    with anyio.fail_after(30):
        done = await anyio.run_process(command, check=False)
    lines = done.stdout.decode().strip().splitlines()
    assert lines, f"node printed nothing (exit {done.returncode}): {done.stderr.decode()[-2000:]}"
    report: dict[str, Any] = orjson.loads(lines[-1])
    assert report["ok"], report["errors"]
    results = report["results"]

    assert results["presence"]["status"] == "online"
    assert results["viewers"]["joinA"]["ok"] and results["viewers"]["joinB"]["ok"]
    viewers = results["viewers"]["event"]["viewers"]
    assert {v["userId"] for v in viewers} == {tenant.user_id, b_id}
    typing = results["typing"]
    assert typing["ack"] == {"ok": True}
    assert typing["event"] == {
        "conversationId": new["conversationId"],
        "userId": tenant.user_id,
        "isTyping": True,
    }
    assert typing["stop"]["isTyping"] is False
    assert results["ownTyping"] == [], "the typist's own socket got its typing back"
    assert results["assign"]["ack"]["ok"] is True
    assert results["assign"]["event"]["by"] == tenant.user_id
    assert [v["userId"] for v in results["assign"]["viewers"]["viewers"]] == [b_id]
    for name, payload in (
        ("presence:update", results["presence"]),
        ("conversation:viewers", results["viewers"]["event"]),
        ("typing", typing["event"]),
        ("conversation:assigned", results["assign"]["event"]),
    ):
        assert event_violations(name, payload) == [], name
