"""Recovery on another node: a session opened on node A is recovered on node B (one
PostgreSQL database, one Redis channel) with everything it missed, from the log."""

from __future__ import annotations

import httpx
import pytest
from _desk_harness import SocketFactory, ZaplineServer, create_tenant, post_webhook
from test_recovery_wire import WireClient, _connect_reply, _events
from test_scaleout import cluster, redis_url

from desk.whatsapp import text_message_webhook

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.redis]

__all__ = ["cluster", "redis_url"]  # fixtures shared with test_scaleout


async def test_a_session_of_node_a_is_recovered_on_node_b(
    cluster: tuple[ZaplineServer, ZaplineServer], sio: SocketFactory, http: httpx.AsyncClient
) -> None:
    a, b = cluster
    tenant = create_tenant(a)
    _, watcher = await sio(b.socket_url, tenant.token)
    pid = _connect_reply(await WireClient(http, a).connect({"token": tenant.token}))["pid"]
    wamids = [f"wamid.cluster.{n}" for n in range(3)]
    for wamid in wamids:
        body = text_message_webhook(
            phone_number_id=tenant.phone_number_id, wa_id="5511770000001", wamid=wamid
        )
        assert (await post_webhook(http, a, body, secret=tenant.app_secret)).status_code == 200
    await watcher.wait_for("message:new", count=3)  # B's sockets have them: B's journal too
    packets = await WireClient(http, b).connect({"token": tenant.token, "pid": pid})
    assert _connect_reply(packets)["pid"] == pid, "recovered on the other node"
    replayed = [e for e in _events(packets) if e[0] == "message:new"]
    assert [e[1]["message"]["whatsappMessageId"] for e in replayed] == wamids
    offsets = [int(e[-1]) for e in replayed]
    assert offsets == sorted(set(offsets))
    # B's own sockets got each once, in seq order, though A logged them.
    got = [e["message"]["whatsappMessageId"] for e in watcher.named("message:new")]
    assert got == wamids
