"""``POST /webhooks/whatsapp`` on the Socket.IO port (api/webhook_engine.py, issue 16).

The contract tests of test_desk_inbound.py (signatures, malformed and oversized bodies,
request ids) run on both ports; these cover what is the engine port's own: the answer of a
real server through the engine's listener, the counters, several posts (and a refused
oversized one) on one kept-alive connection, and the GET that belongs to the API port.
The 503 while draining is test_ops_drain.py's, on both ports.
"""

from __future__ import annotations

import re

import anyio
import anyio.abc
import h11
import httpx
import orjson
import pytest
from _desk_harness import (
    WEBHOOK_MAX_BYTES,
    SocketFactory,
    Tenant,
    ZaplineServer,
    auth,
    post_webhook,
)

from desk.whatsapp import sign, text_message_webhook

pytestmark = pytest.mark.anyio

PATH = "/webhooks/whatsapp"


class KeepAlive:
    """One HTTP/1.1 connection to the socket port that every request of a test reuses."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def post(
        self, body: bytes, headers: list[tuple[str, str]] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """POST ``body``; return (status, headers, body). Fails if the server closed."""
        if self.conn.our_state is h11.DONE:
            assert self.conn.their_state is h11.DONE, "the server did not keep the connection"
            self.conn.start_next_cycle()
        sent = [("host", "127.0.0.1"), ("content-length", str(len(body))), *(headers or [])]
        data = self.conn.send(h11.Request(method="POST", target=PATH, headers=sent))
        data += self.conn.send(h11.Data(data=body)) + self.conn.send(h11.EndOfMessage())
        await self.stream.send(data)
        status, got, parts = 0, {}, []
        with anyio.fail_after(10):
            while True:
                event = self.conn.next_event()
                if event is h11.NEED_DATA:
                    self.conn.receive_data(await self.stream.receive())
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    got = {k.decode(): v.decode() for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    parts.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    return status, got, b"".join(parts)
                else:
                    raise AssertionError(f"unexpected {event!r}")


async def counters(http: httpx.AsyncClient, server: ZaplineServer) -> dict[str, float]:
    """``zapline_webhook_posts_total`` by result and the ledger's ``http`` passes, from /metrics."""
    text = (await http.get(f"{server.api_url}/metrics")).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r'zapline_webhook_posts_total\{result="(\w+)"\} (\S+)', line)
        if match:
            found[match.group(1)] = float(match.group(2))
        elif line.startswith('zapline_stage_passes_total{stage="http"}'):
            found["http_passes"] = float(line.rsplit(" ", 1)[1])
    return found


async def test_a_post_on_the_socket_port_is_stored_announced_and_counted(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, events = await sio(zapline.socket_url, tenant.token)
    before = await counters(http, zapline)
    body = text_message_webhook(
        phone_number_id=tenant.phone_number_id, wamid="wamid.engine.port", body="via engine"
    )
    answer = await post_webhook(http, zapline, body, secret=tenant.app_secret, port="socket")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"])
    reply = answer.json()
    assert reply["status"] == "ok" and isinstance(reply["inboxId"], int), reply

    (event,) = await events.wait_for("message:new")
    assert event["message"]["whatsappMessageId"] == "wamid.engine.port"
    assert event["message"]["content"] == "via engine"
    url = f"{zapline.api_url}/api/conversations/{event['conversationId']}/messages"
    stored = (await http.get(url, headers=auth(tenant.token))).json()["messages"]
    assert [m["whatsappMessageId"] for m in stored] == ["wamid.engine.port"]
    after = await counters(http, zapline)
    assert after["ok"] == before.get("ok", 0) + 1
    assert after["http_passes"] >= before.get("http_passes", 0) + 1


async def test_malformed_json_and_a_wrong_object_are_400_with_json_errors(
    zapline: ZaplineServer, http: httpx.AsyncClient
) -> None:
    before = await counters(http, zapline)
    malformed = await post_webhook(http, zapline, b'{"object": ', port="socket")
    assert malformed.status_code == 400
    assert malformed.json()["error"].startswith("malformed JSON")
    wrong = await post_webhook(http, zapline, {"object": "page", "entry": []}, port="socket")
    assert wrong.status_code == 400
    assert wrong.json()["error"].startswith("not a WhatsApp webhook")
    assert wrong.headers["content-type"] == "application/json"
    after = await counters(http, zapline)
    assert after["bad_json"] == before.get("bad_json", 0) + 1
    assert after["wrong_object"] == before.get("wrong_object", 0) + 1


async def test_many_posts_and_a_refused_one_share_one_kept_alive_connection(
    zapline: ZaplineServer, tenant: Tenant
) -> None:
    pnid, secret = tenant.phone_number_id, tenant.app_secret or ""
    async with await anyio.connect_tcp("127.0.0.1", zapline.socket_port) as stream:
        client = KeepAlive(stream)
        ids = []
        for i in range(4):
            raw = orjson.dumps(text_message_webhook(phone_number_id=pnid, wamid=f"wamid.ka.{i}"))
            status, headers, body = await client.post(
                raw, [("x-hub-signature-256", sign(raw, secret)), ("x-request-id", f"ka-{i}")]
            )
            assert status == 200, body
            assert headers["x-request-id"] == f"ka-{i}"
            ids.append(orjson.loads(body)["inboxId"])
        assert ids == sorted(set(ids)), ids
        # Over the limit by Content-Length, sent whole: refused, and the connection stays.
        status, headers, body = await client.post(b" " * (WEBHOOK_MAX_BYTES + 1))
        assert status == 413
        assert "connection" not in headers
        assert orjson.loads(body) == {"error": f"body larger than {WEBHOOK_MAX_BYTES} bytes"}
        status, _, body = await client.post(b"[]", [("x-hub-signature-256", "sha256=00")])
        assert status == 400, body
        raw = orjson.dumps(text_message_webhook(phone_number_id=pnid, wamid="wamid.ka.bad"))
        status, _, body = await client.post(raw, [("x-hub-signature-256", sign(raw, "nope"))])
        assert status == 401
        assert orjson.loads(body) == {"error": "invalid X-Hub-Signature-256"}


async def test_the_verification_get_belongs_to_the_api_port(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient
) -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": tenant.verify_token,
        "hub.challenge": "1158201444",
    }
    on_socket = await http.get(zapline.socket_webhook_url, params=params)
    assert on_socket.status_code == 405
    assert on_socket.headers["allow"] == "POST"
    assert "API port" in on_socket.json()["error"]
    on_api = await http.get(zapline.webhook_url, params=params)
    assert (on_api.status_code, on_api.text) == (200, "1158201444")
