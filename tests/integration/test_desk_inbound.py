"""Inbound webhooks end to end: README's curl, verification, signatures, batches, message types."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from _desk_harness import (
    WEBHOOK_MAX_BYTES,
    ZAPLINE,
    SocketFactory,
    Tenant,
    ZaplineServer,
    auth,
    create_tenant,
    get_all_pages,
    post_webhook,
)
from anyio.streams.buffered import BufferedByteReceiveStream

from desk.whatsapp import text_message_webhook

pytestmark = pytest.mark.anyio
# The webhook POST is served on both listeners, one intake (api/webhook_intake.py): the
# contract tests below run on each.
PORTS = pytest.mark.parametrize("port", ["api", "socket"])

README = Path(__file__).resolve().parents[2] / "README.md"
MESSAGE_KEYS = {
    "id",
    "whatsappMessageId",
    "direction",
    "type",
    "content",
    "metadata",
    "status",
    "timestamp",
    "contact",
}


def readme_curl_body() -> bytes:
    """The ``-d '...'`` body of the quick start's curl, byte for byte."""
    text = README.read_text()
    found = re.search(
        r"curl -s -X POST http://127\.0\.0\.1:3333/webhooks/whatsapp .*?-d '(.+?)'", text
    )
    assert found is not None, "README's quick start has no webhook curl"
    return found.group(1).encode()


async def stored_messages(
    http: httpx.AsyncClient, server: ZaplineServer, token: str, conversation_id: str
) -> list[dict[str, Any]]:
    """Every stored message of one conversation, newest first (following the cursor)."""
    url = f"{server.api_url}/api/conversations/{conversation_id}/messages"
    return await get_all_pages(http, url, token, "messages", limit=200, cursor_param="before")


async def test_readme_curl_reaches_a_logged_in_agent_once(
    zapline: ZaplineServer, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    login = await http.post(
        f"{zapline.api_url}/api/auth/login", json={"email": "agent@demo", "password": "demo"}
    )
    assert login.status_code == 200, login.text
    token = login.json()["token"]
    _, events = await sio(zapline.socket_url, token)
    raw = readme_curl_body()
    original = orjson.loads(raw)["entry"][0]["changes"][0]["value"]["messages"][0]

    first = await http.post(
        zapline.webhook_url, content=raw, headers={"Content-Type": "application/json"}
    )
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "ok"

    (new_message,) = await events.wait_for("message:new")
    (new_conversation,) = await events.wait_for("conversation:new")
    conversation_id = new_message["conversationId"]
    assert new_conversation["conversation"]["id"] == conversation_id
    assert new_conversation["conversation"]["contact"]["phoneNumber"] == "5511999999999"
    message = new_message["message"]
    assert MESSAGE_KEYS <= message.keys()
    assert message["whatsappMessageId"] == "wamid.TEST123"
    assert message["direction"] == "INBOUND"
    assert message["type"] == "TEXT"
    assert message["content"] == "Hello from WhatsApp!"
    assert message["status"] == "DELIVERED"
    assert message["timestamp"] == "2023-11-14T22:13:20.000Z"
    assert message["metadata"] == original
    contact = message["contact"]
    assert set(contact) == {"id", "phoneNumber", "name"}
    assert (contact["phoneNumber"], contact["name"]) == ("5511999999999", "Test User")
    (updated,) = await events.wait_for(
        "conversation:updated", lambda d: d.get("conversationId") == conversation_id
    )
    assert updated["lastMessage"]["id"] == message["id"]
    assert updated["lastMessage"]["content"] == "Hello from WhatsApp!"
    assert updated["lastMessageAt"] == message["timestamp"]
    names = [name for name, _ in events.events if name != "connect"]
    assert names.index("conversation:new") < names.index("message:new")

    again = await http.post(
        zapline.webhook_url, content=raw, headers={"Content-Type": "application/json"}
    )
    assert again.status_code == 200, again.text
    await events.expect_none("message:new", within=1.0)
    assert len(events.named("conversation:new")) == 1
    stored = await stored_messages(http, zapline, token, conversation_id)
    assert [m["whatsappMessageId"] for m in stored] == ["wamid.TEST123"]
    assert stored[0]["id"] == message["id"]


async def test_verification_handshake(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient
) -> None:
    url = zapline.webhook_url
    ok = await http.get(
        url,
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": tenant.verify_token,
            "hub.challenge": "1158201444",
        },
    )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    for params in (
        {"hub.mode": "subscribe", "hub.verify_token": "not-the-token", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": tenant.verify_token, "hub.challenge": "1"},
        {"hub.challenge": "1"},
    ):
        refused = await http.get(url, params=params)
        assert refused.status_code == 403, params
        assert "error" in refused.json()


@PORTS
async def test_signature_is_enforced_for_an_account_with_an_app_secret(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory, port: str
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    pnid = tenant.phone_number_id
    unsigned = text_message_webhook(phone_number_id=pnid, wamid="wamid.unsigned", body="x")
    forged = text_message_webhook(phone_number_id=pnid, wamid="wamid.forged", body="x")
    good = text_message_webhook(phone_number_id=pnid, wamid="wamid.signed", body="signed")

    missing = await post_webhook(http, zapline, unsigned, port=port)
    assert missing.status_code == 401
    assert "error" in missing.json()
    bad = await post_webhook(http, zapline, forged, secret="some-other-secret", port=port)
    assert bad.status_code == 401
    assert "error" in bad.json()
    tampered_raw = orjson.dumps(good)
    from desk.whatsapp import sign

    header = {"X-Hub-Signature-256": sign(tampered_raw, tenant.app_secret or "")}
    tampered = await post_webhook(
        http, zapline, tampered_raw.replace(b"signed", b"SIGNED"), headers=header, port=port
    )
    assert tampered.status_code == 401

    accepted = await post_webhook(http, zapline, good, secret=tenant.app_secret, port=port)
    assert accepted.status_code == 200, accepted.text
    (event,) = await events.wait_for("message:new")
    assert event["message"]["whatsappMessageId"] == "wamid.signed"
    await events.expect_none("message:new", within=0.5)
    stored = await stored_messages(http, zapline, tenant.token, event["conversationId"])
    assert [m["whatsappMessageId"] for m in stored] == ["wamid.signed"]


@PORTS
async def test_malformed_oversized_and_unroutable_posts(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory, port: str
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    malformed = await http.post(
        zapline.webhook_url_of(port),
        content=b'{"object": "whatsapp_business_account", "entry": [',
        headers={"Content-Type": "application/json"},
    )
    assert malformed.status_code == 400
    assert "error" in malformed.json()

    big = text_message_webhook(phone_number_id=tenant.phone_number_id, body="a" * WEBHOOK_MAX_BYTES)
    too_large = await post_webhook(http, zapline, big, secret=tenant.app_secret, port=port)
    assert too_large.status_code == 413
    assert "error" in too_large.json()

    unknown = text_message_webhook(phone_number_id="pn-nobody-has-this", body="lost?")
    unroutable = await post_webhook(http, zapline, unknown, port=port)
    assert unroutable.status_code == 200, unroutable.text
    await events.expect_none("message:new", within=1.0)
    listed = await http.get(f"{zapline.api_url}/api/conversations", headers=auth(tenant.token))
    assert listed.json()["conversations"] == []


def _value(
    pnid: str,
    messages: list[dict[str, Any]],
    contacts: list[tuple[str, str]],
    statuses: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": pnid},
        "contacts": [{"profile": {"name": n}, "wa_id": w} for w, n in contacts],
        "messages": messages,
    }
    if statuses is not None:
        value["statuses"] = statuses
    return {"value": value, "field": "messages"}


def _text(wa_id: str, wamid: str, body: str, ts: int = 1_700_000_100) -> dict[str, Any]:
    return {
        "from": wa_id,
        "id": wamid,
        "timestamp": str(ts),
        "type": "text",
        "text": {"body": body},
    }


async def test_one_post_with_many_entries_changes_and_messages(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    pnid = tenant.phone_number_id
    a, b, c = "5511000000001", "5511000000002", "5511000000003"
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "waba-1",
                "changes": [
                    _value(
                        pnid,
                        [_text(a, "wamid.b1", "a1"), _text(a, "wamid.b2", "a2", 1_700_000_101)],
                        [(a, "Ana")],
                    ),
                    _value(pnid, [_text(b, "wamid.b3", "b1")], [(b, "Bruno")]),
                ],
            },
            {
                "id": "waba-2",
                "changes": [
                    _value(
                        pnid,
                        [_text(c, "wamid.b4", "c1"), _text(b, "wamid.b5", "b2", 1_700_000_102)],
                        [(c, "Caio"), (b, "Bruno")],
                    ),
                ],
            },
        ],
    }
    response = await post_webhook(http, zapline, body, secret=tenant.app_secret)
    assert response.status_code == 200, response.text
    news = await events.wait_for("message:new", count=5)
    assert sorted(e["message"]["whatsappMessageId"] for e in news) == [
        f"wamid.b{i}" for i in range(1, 6)
    ]
    await events.wait_for("conversation:new", count=3)
    by_phone = {e["message"]["contact"]["phoneNumber"]: e["conversationId"] for e in news}
    assert set(by_phone) == {a, b, c}
    names = {e["message"]["contact"]["phoneNumber"]: e["message"]["contact"]["name"] for e in news}
    assert names == {a: "Ana", b: "Bruno", c: "Caio"}
    stored_b = await stored_messages(http, zapline, tenant.token, by_phone[b])
    assert [m["content"] for m in stored_b] == ["b2", "b1"]
    await events.expect_none("message:new", within=0.3)
    assert len(events.named("message:new")) == 5


async def post_messages(
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.AsyncClient,
    events: Any,
    originals: dict[str, dict[str, Any]],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Post ``originals`` (wamid -> Meta message object) in one webhook from one contact.

    Returns (live ``message`` payloads, stored messages), each by wamid.
    """
    wa_id = next(iter(originals.values()))["from"]
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "waba",
                "changes": [
                    _value(tenant.phone_number_id, list(originals.values()), [(wa_id, "Types")])
                ],
            }
        ],
    }
    response = await post_webhook(http, zapline, body, secret=tenant.app_secret)
    assert response.status_code == 200, response.text
    news = await events.wait_for("message:new", count=len(originals), within=5)
    live = {e["message"]["whatsappMessageId"]: e["message"] for e in news}
    stored = {
        m["whatsappMessageId"]: m
        for m in await stored_messages(http, zapline, tenant.token, news[0]["conversationId"])
    }
    return live, stored


async def test_message_types_keep_their_content_and_original_object(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    base = {"from": "5511000000009", "timestamp": "1700000200"}
    originals = {
        "wamid.img": {
            **base,
            "id": "wamid.img",
            "type": "image",
            "image": {
                "id": "media-1",
                "mime_type": "image/jpeg",
                "sha256": "abc",
                "caption": "my receipt",
            },
        },
        "wamid.loc": {
            **base,
            "id": "wamid.loc",
            "type": "location",
            "location": {
                "latitude": -23.5,
                "longitude": -46.6,
                "name": "Office",
                "address": "Av. Paulista 1000",
            },
        },
    }
    live, stored = await post_messages(zapline, tenant, http, events, originals)
    expected = {
        "wamid.img": ("IMAGE", "my receipt"),
        "wamid.loc": ("LOCATION", "Office, Av. Paulista 1000 (-23.5, -46.6)"),
    }
    for wamid, (kind, content) in expected.items():
        for source in (live, stored):
            message = source[wamid]
            assert (message["type"], message["content"]) == (kind, content), wamid
            assert message["metadata"] == originals[wamid], wamid
            assert message["direction"] == "INBOUND"


async def test_messages_without_text_are_stored_too(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    # A voice note has no caption and an unsupported message no text at all: both must still be
    # stored and announced (with their original object), not dead-lettered.
    _, events = await sio(zapline.socket_url, tenant.token)
    base = {"from": "5511000000008", "timestamp": "1700000300"}
    originals = {
        "wamid.aud": {
            **base,
            "id": "wamid.aud",
            "type": "audio",
            "audio": {"id": "media-2", "mime_type": "audio/ogg; codecs=opus", "voice": True},
        },
        "wamid.uns": {
            **base,
            "id": "wamid.uns",
            "type": "unsupported",
            "errors": [{"code": 131051, "title": "Message type unknown"}],
        },
    }
    live, stored = await post_messages(zapline, tenant, http, events, originals)
    # The unsupported message has no text, but Meta's error says what it was.
    expected = {"wamid.aud": ("AUDIO", ""), "wamid.uns": ("UNSUPPORTED", "Message type unknown")}
    for wamid, (kind, content) in expected.items():
        for source in (live, stored):
            message = source[wamid]
            assert message["type"] == kind, wamid
            assert message["content"] == content, wamid
            assert message["metadata"] == originals[wamid], wamid
    assert live["wamid.uns"]["error"] == {
        "code": 131051,
        "title": "Message type unknown",
        "details": None,
    }


async def _lines(stream: BufferedByteReceiveStream) -> bytes:
    return await stream.receive_until(b"\n", 1 << 20)


async def test_zapline_listen_prints_message_new(
    zapline: ZaplineServer, http: httpx.AsyncClient
) -> None:
    fresh = await anyio.to_thread.run_sync(lambda: create_tenant(zapline, app_secret=None))
    command = [ZAPLINE, "listen", "--url", zapline.socket_url, "--token", fresh.token]
    listen = await anyio.open_process(command, env=zapline.env(), stdin=subprocess.DEVNULL)
    try:
        assert listen.stdout is not None and listen.stderr is not None
        out = BufferedByteReceiveStream(listen.stdout)
        err = BufferedByteReceiveStream(listen.stderr)
        with anyio.fail_after(15):
            line = b""
            while b"connected to" not in line:
                line = await _lines(err)
        body = text_message_webhook(
            phone_number_id=fresh.phone_number_id, wamid="wamid.listen", body="hi listen"
        )
        response = await post_webhook(http, zapline, body)
        assert response.status_code == 200, response.text
        printed: list[dict[str, Any]] = []
        with anyio.fail_after(15):
            while not any(p["event"] == "message:new" for p in printed):
                printed.append(orjson.loads(await _lines(out)))
        (event,) = [p for p in printed if p["event"] == "message:new"]
        assert event["data"]["message"]["whatsappMessageId"] == "wamid.listen"
        assert event["data"]["message"]["content"] == "hi listen"
        assert event["data"]["conversationId"] == printed[0]["data"]["conversation"]["id"]
        assert printed[0]["event"] == "conversation:new"
    finally:
        listen.terminate()
        with anyio.move_on_after(10):
            await listen.wait()
        if listen.returncode is None:
            listen.kill()
            await listen.wait()
        await listen.aclose()


@PORTS
async def test_webhook_posts_keep_request_ids_and_refuse_streamed_oversize_bodies(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, port: str
) -> None:
    # The post route is served in front of Quart (api/webhook_post.py) and on the engine's
    # listener (api/webhook_engine.py): it must still answer what every API route answers,
    # and bound a body that declares no length.
    pnid = tenant.phone_number_id
    body = text_message_webhook(phone_number_id=pnid, wamid=f"wamid.rid.{port}", body="rid")
    kept = await post_webhook(
        http,
        zapline,
        body,
        secret=tenant.app_secret,
        headers={"X-Request-Id": "desk-rid-1"},
        port=port,
    )
    assert kept.status_code == 200, kept.text
    assert kept.headers["x-request-id"] == "desk-rid-1"
    assert kept.headers["content-type"] == "application/json"
    assert set(kept.json()) == {"status", "inboxId"}
    generated = await post_webhook(
        http, zapline, b"{not json", headers={"X-Request-Id": "x" * 65}, port=port
    )
    assert generated.status_code == 400
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])

    async def chunks() -> Any:
        for _ in range(WEBHOOK_MAX_BYTES // 4096 + 2):
            yield b" " * 4096

    streamed = await http.post(
        zapline.webhook_url_of(port),
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert streamed.status_code == 413, streamed.text
    assert "error" in streamed.json()
    rid = generated.headers["x-request-id"]
    with anyio.fail_after(5):  # the request id is on the log line of its request
        while True:
            lines = zapline.log_path.read_text().splitlines()
            if any(rid in line and "malformed JSON" in line for line in lines):
                break
            await anyio.sleep(0.05)
