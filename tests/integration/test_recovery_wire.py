"""Connection state recovery's refusals and resyncs, on the wire (Engine.IO long-polling
spoken by hand, as the official client would), and python-socketio's clients left alone.

The server keeps its event log one second (``ZAPLINE_EVENT_RETENTION=1``) so that an offset
falls out of it within a test.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import orjson
import pytest
import socketio
from _desk_harness import JWT_SECRET, SocketFactory, Tenant, ZaplineServer, post_webhook
from test_live_desk import second_agent

from desk.auth import issue_token
from desk.whatsapp import text_message_webhook

pytestmark = [pytest.mark.anyio]

ZAPLINE_EXTRA_ENV = {"ZAPLINE_EVENT_RETENTION": "1"}


class WireClient:
    """One Socket.IO session over long-polling, spoken by hand."""

    def __init__(self, http: httpx.AsyncClient, server: ZaplineServer) -> None:
        self.http = http
        self.base = f"{server.socket_url}/socket.io/?EIO=4&transport=polling"
        self.sid = ""

    async def connect(self, auth: dict[str, Any]) -> list[str]:
        """Open a session, send CONNECT with ``auth``; return the packets answered."""
        opened = await self.http.get(self.base)
        assert opened.text.startswith("0"), opened.text
        self.sid = orjson.loads(opened.text[1:])["sid"]
        sent = await self.http.post(
            f"{self.base}&sid={self.sid}", content=b"40" + orjson.dumps(auth)
        )
        assert sent.status_code == 200, sent.text
        return await self.poll()

    async def poll(self) -> list[str]:
        """One GET: the packets waiting (Engine.IO "4" prefix kept)."""
        got = await self.http.get(f"{self.base}&sid={self.sid}")
        assert got.status_code == 200, got.text
        return got.text.split("\x1e")


def _connect_reply(packets: list[str]) -> dict[str, Any]:
    assert packets[0].startswith("40"), packets
    reply: dict[str, Any] = orjson.loads(packets[0][2:])
    return reply


def _events(packets: list[str]) -> list[list[Any]]:
    return [orjson.loads(p[2:]) for p in packets if p.startswith("42")]


async def _webhook(http: httpx.AsyncClient, server: ZaplineServer, tenant: Tenant, n: int) -> None:
    body = text_message_webhook(
        phone_number_id=tenant.phone_number_id, wa_id="5511740000001", wamid=f"wamid.wire.{n}"
    )
    assert (await post_webhook(http, server, body, secret=tenant.app_secret)).status_code == 200


async def test_every_connect_gets_a_pid_and_a_forged_one_a_resync(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient
) -> None:
    first = _connect_reply(await WireClient(http, zapline).connect({"token": tenant.token}))
    assert isinstance(first["pid"], str) and first["pid"]
    forged = first["pid"][:-4] + ("AAAA" if not first["pid"].endswith("AAAA") else "BBBB")
    packets = await WireClient(http, zapline).connect({"token": tenant.token, "pid": forged})
    reply = _connect_reply(packets)
    assert reply["pid"] not in (forged, first["pid"])
    assert ["resync:required", {"reason": "unknown_session"}] in _events(packets)


async def test_an_offset_ahead_of_the_log_gets_a_resync(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient
) -> None:
    pid = _connect_reply(await WireClient(http, zapline).connect({"token": tenant.token}))["pid"]
    auth = {"token": tenant.token, "pid": pid, "offset": "999999"}
    packets = await WireClient(http, zapline).connect(auth)
    assert _connect_reply(packets)["pid"] != pid
    assert ["resync:required", {"reason": "offset_ahead"}] in _events(packets)


@pytest.mark.parametrize("offset", ["\u00b2", "\uff11", "-1", "x"])
async def test_an_offset_that_is_not_ascii_digits_gets_a_resync(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, offset: str
) -> None:
    # "²" passes str.isdigit() but not int(): it was a CONNECT_ERROR "Internal server error"
    # with a traceback in the log; a fullwidth "１" was read as offset 1.
    pid = _connect_reply(await WireClient(http, zapline).connect({"token": tenant.token}))["pid"]
    auth = {"token": tenant.token, "pid": pid, "offset": offset}
    packets = await WireClient(http, zapline).connect(auth)
    assert _connect_reply(packets)["pid"] != pid
    assert ["resync:required", {"reason": "bad_offset"}] in _events(packets)


async def test_an_expired_token_is_refused_on_recovery(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient
) -> None:
    pid = _connect_reply(await WireClient(http, zapline).connect({"token": tenant.token}))["pid"]
    expired = issue_token(JWT_SECRET, user_id=tenant.user_id, tenant_id=tenant.id, ttl=-5)
    packets = await WireClient(http, zapline).connect({"token": expired, "pid": pid})
    assert packets[0].startswith("44"), packets
    assert "expired" in orjson.loads(packets[0][2:])["message"]


async def test_a_pid_of_another_user_or_tenant_is_refused(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient
) -> None:
    pid = _connect_reply(await WireClient(http, zapline).connect({"token": tenant.token}))["pid"]
    _, other_token = await anyio.to_thread.run_sync(lambda: second_agent(zapline, tenant, "Bia"))
    elsewhere = issue_token(JWT_SECRET, user_id=tenant.user_id, tenant_id="another-tenant")
    for token in (other_token, elsewhere):
        packets = await WireClient(http, zapline).connect({"token": token, "pid": pid})
        assert packets[0].startswith("44"), packets
        assert "another user" in orjson.loads(packets[0][2:])["message"]


async def test_an_offset_older_than_the_retention_gets_a_resync(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, watcher = await sio(zapline.socket_url, tenant.token)
    pid = _connect_reply(await WireClient(http, zapline).connect({"token": tenant.token}))["pid"]
    await _webhook(http, zapline, tenant, 1)
    await watcher.wait_for("message:new")
    await anyio.sleep(2.5)  # retention 1 s, pruned every 0.1 s
    packets = await WireClient(http, zapline).connect({"token": tenant.token, "pid": pid})
    assert _connect_reply(packets)["pid"] != pid, "not recovered"
    assert ["resync:required", {"reason": "offset_expired"}] in _events(packets)


async def test_a_recovery_in_the_log_replays_with_offsets(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, watcher = await sio(zapline.socket_url, tenant.token)
    pid = _connect_reply(await WireClient(http, zapline).connect({"token": tenant.token}))["pid"]
    await _webhook(http, zapline, tenant, 2)
    await watcher.wait_for("message:new")
    packets = await WireClient(http, zapline).connect({"token": tenant.token, "pid": pid})
    assert _connect_reply(packets)["pid"] == pid, "recovered: the same pid"
    replayed = [e for e in _events(packets) if e[0] == "message:new"]
    assert len(replayed) == 1 and replayed[0][1]["message"]["whatsappMessageId"] == "wamid.wire.2"
    assert isinstance(replayed[0][-1], str) and replayed[0][-1].isdigit(), "the offset, last"


async def test_python_socketio_gets_no_pid_no_offsets_and_no_replay(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    pid = _connect_reply(await WireClient(http, zapline).connect({"token": tenant.token}))["pid"]
    _, watcher = await sio(zapline.socket_url, tenant.token)
    await _webhook(http, zapline, tenant, 3)
    await watcher.wait_for("message:new")  # one argument each: the contract check says so
    assert not watcher.violations
    # Even with a pid in its auth, a python-socketio client is connected afresh: no replay.
    client = socketio.AsyncClient(reconnection=False)
    got: list[tuple[str, tuple[Any, ...]]] = []
    new = anyio.Event()

    @client.on("*")
    async def any_event(event: str, *data: Any) -> None:
        got.append((event, data))
        if event == "message:new":
            new.set()

    auth = {"token": tenant.token, "pid": pid, "offset": "0"}
    await client.connect(zapline.socket_url, auth=auth, transports=["websocket"], wait_timeout=10)
    try:
        await anyio.sleep(1.0)
        assert [e for e, _ in got if e in ("message:new", "resync:required")] == []
        await _webhook(http, zapline, tenant, 4)
        with anyio.fail_after(10):
            await new.wait()
        assert all(len(data) == 1 for _, data in got), got  # never an offset argument
    finally:
        await client.disconnect()
