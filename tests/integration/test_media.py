"""Media an agent can open and send, end to end over real HTTP: a webhook names a media id,
``GET /api/messages/{id}/media`` fetches it from the fake Cloud API through the bounded disk
cache; ``POST /api/conversations/{id}/media`` checks an upload, and the send job uploads it to
the fake and sends a message naming the returned id."""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from _contract import violations
from _desk_harness import SocketFactory, Tenant, ZaplineServer, auth, create_tenant, post_webhook
from _whatsapp_kinds import message, webhook

from desk.whatsapp import text_message_webhook

pytestmark = pytest.mark.anyio

# A small cache (256 KiB) so that three 100 KB files overflow it; media lookups time out fast.
ZAPLINE_EXTRA_ENV = {"ZAPLINE_MEDIA_CACHE_MB": "0.25", "ZAPLINE_MEDIA_TIMEOUT": "1"}
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(2000)


def blob(size: int = 100_000) -> bytes:
    return b"\xff\xd8\xff" + os.urandom(size - 3)


async def fake_media(
    http: httpx.AsyncClient, server: ZaplineServer, data: bytes, mime: str, filename: str = ""
) -> str:
    """Put media on the fake Cloud API; return its media id."""
    got = await http.post(
        f"{server.whatsapp_api_url}/_fake/media",
        content=data,
        headers={"Content-Type": mime},
        params={"filename": filename} if filename else None,
    )
    assert got.status_code == 200, got.text
    return str(got.json()["id"])


async def stats(http: httpx.AsyncClient, server: ZaplineServer) -> dict[str, Any]:
    return dict((await http.get(f"{server.whatsapp_api_url}/_fake/media-stats")).json())


async def inbound(
    http: httpx.AsyncClient,
    server: ZaplineServer,
    tenant: Tenant,
    events: Any,
    kind: str,
    part: dict[str, Any],
    phone: str = "5511700000001",
) -> dict[str, Any]:
    """Post a customer's media message as a webhook; return its ``message:new`` payload."""
    wamid = f"wamid.{uuid.uuid4().hex[:12]}"
    body = webhook(tenant.phone_number_id, [message(phone, wamid, kind, part)])
    assert (await post_webhook(http, server, body, secret=tenant.app_secret)).status_code == 200
    (new,) = await events.wait_for(
        "message:new", lambda d: d["message"]["whatsappMessageId"] == wamid
    )
    return dict(new)


async def get_media(
    http: httpx.AsyncClient, server: ZaplineServer, token: str, message_id: str
) -> httpx.Response:
    return await http.get(f"{server.api_url}/api/messages/{message_id}/media", headers=auth(token))


async def customer_writes(
    http: httpx.AsyncClient,
    server: ZaplineServer,
    tenant: Tenant,
    events: Any,
    phone: str,
    at: datetime | None = None,
) -> str:
    """A customer's text (sent ``at``, default now); return its conversation id."""
    wamid = f"wamid.{uuid.uuid4().hex[:12]}"
    body = text_message_webhook(
        phone_number_id=tenant.phone_number_id,
        wa_id=phone,
        wamid=wamid,
        body="hello",
        timestamp=at or datetime.now(UTC),
    )
    assert (await post_webhook(http, server, body, secret=tenant.app_secret)).status_code == 200
    (new,) = await events.wait_for(
        "message:new", lambda d: d["message"]["whatsappMessageId"] == wamid
    )
    return str(new["conversationId"])


async def test_an_inbound_image_opens_and_the_second_request_is_served_from_the_cache(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    data = blob()
    media_id = await fake_media(http, zapline, data, "image/jpeg")
    new = await inbound(
        http, zapline, tenant, events, "image", {"mime_type": "image/jpeg", "id": media_id}
    )
    message_id = new["message"]["id"]

    first = await get_media(http, zapline, tenant.token, message_id)
    assert first.status_code == 200, first.text
    assert first.content == data
    assert first.headers["content-type"] == "image/jpeg"
    assert first.headers["content-length"] == str(len(data))
    assert first.headers["cache-control"].startswith("private")
    assert first.headers["content-disposition"] == "inline"
    again = await get_media(http, zapline, tenant.token, message_id)
    assert again.status_code == 200 and again.content == data
    counted = await stats(http, zapline)
    assert counted["downloads"][media_id] == 1
    assert counted["lookups"][media_id] == 1

    # Two agents opening the same new document at once: one download between them.
    pdf = b"%PDF-1.4 " + os.urandom(50_000)
    doc_id = await fake_media(http, zapline, pdf, "application/pdf")
    part = {"mime_type": "application/pdf", "id": doc_id, "filename": "facture été.pdf"}
    doc = await inbound(http, zapline, tenant, events, "document", part)
    both: list[httpx.Response] = []

    async def fetch() -> None:
        both.append(await get_media(http, zapline, tenant.token, doc["message"]["id"]))

    async with anyio.create_task_group() as tg:
        tg.start_soon(fetch)
        tg.start_soon(fetch)
    assert [r.status_code for r in both] == [200, 200]
    assert all(r.content == pdf for r in both)
    disposition = both[0].headers["content-disposition"]
    assert disposition.startswith('attachment; filename="facture ete.pdf"'), disposition
    assert "filename*=UTF-8''facture%20%C3%A9t%C3%A9.pdf" in disposition
    assert (await stats(http, zapline))["downloads"][doc_id] == 1


async def test_the_cache_keeps_its_bound_and_evicts_the_least_recently_used(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    ids, messages = [], []
    for _ in range(3):  # 3 x 100 KB against a 256 KiB cache
        media_id = await fake_media(http, zapline, blob(), "image/jpeg")
        new = await inbound(
            http, zapline, tenant, events, "image", {"mime_type": "image/jpeg", "id": media_id}
        )
        ids.append(media_id)
        messages.append(new["message"]["id"])
        assert (await get_media(http, zapline, tenant.token, messages[-1])).status_code == 200
    # The newest is still cached; the oldest was evicted and is downloaded again.
    assert (await get_media(http, zapline, tenant.token, messages[2])).status_code == 200
    assert (await get_media(http, zapline, tenant.token, messages[0])).status_code == 200
    downloads = (await stats(http, zapline))["downloads"]
    assert downloads[ids[2]] == 1
    assert downloads[ids[0]] == 2


async def test_only_who_may_see_the_conversation_opens_its_media(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    media_id = await fake_media(http, zapline, blob(1000), "image/jpeg")
    new = await inbound(
        http,
        zapline,
        tenant,
        events,
        "image",
        {"mime_type": "image/jpeg", "id": media_id},
        phone="5511700000003",
    )
    message_id, cid = new["message"]["id"], new["conversationId"]

    other = create_tenant(zapline)
    refused = await get_media(http, zapline, other.token, message_id)
    assert refused.status_code == 404, refused.text
    assert violations(refused.json(), "ApiError") == []

    # Assigned to our agent: another agent of the same tenant may no longer see it.
    colleague = zapline.cli(
        "user",
        "create",
        "--tenant",
        tenant.id,
        "--email",
        f"c-{uuid.uuid4().hex[:8]}@it.example",
        "--password",
        "pw-colleague",
        "--role",
        "agent",
    )
    token = zapline.token(tenant.id, colleague["id"], "agent")
    assert (await get_media(http, zapline, token, message_id)).status_code == 200
    patched = await http.patch(
        f"{zapline.api_url}/api/conversations/{cid}",
        json={"assigneeId": tenant.user_id},
        headers=auth(tenant.token),
    )
    assert patched.status_code == 200, patched.text
    assert (await get_media(http, zapline, token, message_id)).status_code == 404
    assert (await get_media(http, zapline, tenant.token, message_id)).status_code == 200

    text = await customer_writes(http, zapline, tenant, events, "5511700000004")
    listed = await http.get(
        f"{zapline.api_url}/api/conversations/{text}/messages", headers=auth(tenant.token)
    )
    no_media = await get_media(http, zapline, tenant.token, listed.json()["messages"][0]["id"])
    assert no_media.status_code == 404 and "no media" in no_media.json()["error"]
    assert (await get_media(http, zapline, tenant.token, "no-such-id")).status_code == 404
    assert (await http.get(f"{zapline.api_url}/api/messages/{message_id}/media")).status_code == 401


async def test_cloud_api_failures_answer_502_and_504_in_json(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    media_id = await fake_media(http, zapline, blob(1000), "image/jpeg")
    new = await inbound(
        http, zapline, tenant, events, "image", {"mime_type": "image/jpeg", "id": media_id}
    )
    message_id = new["message"]["id"]
    fail = f"{zapline.whatsapp_api_url}/_fake/media-fail"

    assert (await http.post(fail, json={"count": 1, "status": 500})).status_code == 200
    broken = await get_media(http, zapline, tenant.token, message_id)
    assert broken.status_code == 502, broken.text
    assert broken.json()["code"] == 131000
    assert violations(broken.json(), "ApiError") == []

    assert (await http.post(fail, json={"count": 1, "delay": 3})).status_code == 200
    slow = await get_media(http, zapline, tenant.token, message_id)
    assert slow.status_code == 504, slow.text
    assert "in time" in slow.json()["error"]

    # Unknown to the Cloud API (expired or never there): Meta's 400 and code, as a 502.
    gone = await inbound(
        http, zapline, tenant, events, "image", {"mime_type": "image/jpeg", "id": "404404"}
    )
    missing = await get_media(http, zapline, tenant.token, gone["message"]["id"])
    assert (missing.status_code, missing.json()["code"]) == (502, 100)

    healed = await get_media(http, zapline, tenant.token, message_id)
    assert healed.status_code == 200


async def test_an_upload_is_sent_through_the_cloud_api_and_flows_to_sent(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    phone = "5511700000005"
    cid = await customer_writes(http, zapline, tenant, events, phone)
    url = f"{zapline.api_url}/api/conversations/{cid}/media"

    sent = await http.post(
        url,
        files={"file": ("photo.png", PNG, "image/png")},
        data={"caption": "your receipt"},
        headers=auth(tenant.token),
    )
    assert sent.status_code == 202, sent.text
    assert violations(sent.json(), "SendResponse") == []
    msg = sent.json()["message"]
    assert (msg["type"], msg["content"], msg["status"]) == ("IMAGE", "your receipt", "PENDING")
    await events.wait_for("message:new", lambda d: d["message"]["id"] == msg["id"])
    await events.wait_for(
        "message:status-update", lambda d: d["messageId"] == msg["id"] and d["status"] == "SENT"
    )
    (upload,) = [
        u
        for u in (await stats(http, zapline))["uploads"]
        if u["sha256"] == hashlib.sha256(PNG).hexdigest()
    ]
    assert (upload["phone_number_id"], upload["type"]) == (tenant.phone_number_id, "image/png")
    outgoing = (await http.get(f"{zapline.whatsapp_api_url}/_fake/sent")).json()["messages"]
    (ours,) = [m for m in outgoing if m["to"] == phone]
    assert ours["image"] == {"id": upload["id"], "caption": "your receipt"}
    await events.wait_for(
        "message:status-update", lambda d: d["messageId"] == msg["id"] and d["status"] == "READ"
    )
    # The agent's own copy is served from the cache: no download from the Cloud API.
    mine = await get_media(http, zapline, tenant.token, msg["id"])
    assert (mine.status_code, mine.content) == (200, PNG)
    assert upload["id"] not in (await stats(http, zapline))["downloads"]

    # A raw body with its Content-Type and ?filename=: a document.
    pdf = b"%PDF-1.7 " + os.urandom(3000)
    raw = await http.post(
        url,
        content=pdf,
        params={"filename": "offer.pdf"},
        headers={**auth(tenant.token), "Content-Type": "application/pdf"},
    )
    assert raw.status_code == 202, raw.text
    doc = raw.json()["message"]
    assert (doc["type"], doc["content"]) == ("DOCUMENT", "offer.pdf")
    await events.wait_for(
        "message:status-update", lambda d: d["messageId"] == doc["id"] and d["status"] == "SENT"
    )
    outgoing = (await http.get(f"{zapline.whatsapp_api_url}/_fake/sent")).json()["messages"]
    (document,) = [m["document"] for m in outgoing if m["to"] == phone and m["type"] == "document"]
    assert document["filename"] == "offer.pdf" and "caption" not in document


async def test_uploads_wrong_in_size_type_or_window_never_reach_the_cloud_api(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    cid = await customer_writes(http, zapline, tenant, events, "5511700000006")
    url = f"{zapline.api_url}/api/conversations/{cid}/media"
    before = len((await stats(http, zapline))["uploads"])
    headers = auth(tenant.token)

    big = PNG + bytes(5 * 1024 * 1024)
    too_big = await http.post(url, content=big, headers={**headers, "Content-Type": "image/png"})
    assert too_big.status_code == 413, too_big.text
    assert violations(too_big.json(), "ApiError") == []
    multi_big = await http.post(
        url,
        files={"file": ("s.webp", b"RIFF\0\0\0\0WEBP" + bytes(600_000), "image/webp")},
        headers=headers,
    )
    assert multi_big.status_code == 413, multi_big.text
    gif = await http.post(
        url, files={"file": ("a.gif", b"GIF89a" + bytes(100), "image/gif")}, headers=headers
    )
    assert gif.status_code == 415, gif.text
    assert violations(gif.json(), "ApiError") == []
    fake_png = await http.post(
        url, files={"file": ("a.png", b"not a png at all", "image/png")}, headers=headers
    )
    assert fake_png.status_code == 415, fake_png.text
    voice_caption = await http.post(
        url,
        files={"file": ("v.ogg", b"OggS" + bytes(100), "audio/ogg")},
        data={"caption": "hi"},
        headers=headers,
    )
    assert voice_caption.status_code == 400 and voice_caption.json()["field"] == "caption"

    for content_type in ("multipart/form-data; boundary=zzz", "multipart/form-data"):
        garbage = await http.post(
            url, content=b"--zzz\r\nnot a part", headers={**headers, "Content-Type": content_type}
        )
        assert garbage.status_code == 400, garbage.text
        assert garbage.json()["field"] == "file"

    old = datetime.now(UTC) - timedelta(hours=25)
    stale = await customer_writes(http, zapline, tenant, events, "5511700000007", at=old)
    closed = await http.post(
        f"{zapline.api_url}/api/conversations/{stale}/media",
        files={"file": ("photo.png", PNG, "image/png")},
        headers=headers,
    )
    assert closed.status_code == 409, closed.text
    assert "24-hour" in closed.json()["error"]

    await events.expect_none(
        "message:new", lambda d: d["message"]["direction"] == "OUTBOUND", within=0.3
    )
    assert len((await stats(http, zapline))["uploads"]) == before
