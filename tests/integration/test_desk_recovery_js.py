"""Connection state recovery with the official socket.io-client (tests/js/recover.mjs), its
options unchanged: the transport dies, webhooks arrive meanwhile, the client reconnects by
itself, ``socket.recovered`` is true and every missed ``message:new`` arrives once, in order."""

from __future__ import annotations

import anyio
import httpx
import pytest
from _desk_harness import SocketFactory, Tenant, ZaplineServer, post_webhook
from _js_listener import js_listener

from desk.whatsapp import text_message_webhook

pytestmark = [pytest.mark.anyio, pytest.mark.node]


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_client_that_lost_its_transport_recovers_what_it_missed(
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.AsyncClient,
    sio: SocketFactory,
    transport: str,
) -> None:
    _, watcher = await sio(zapline.socket_url, tenant.token)  # sees when they are processed
    phone = f"55117300{transport[:3]}"

    def webhook(n: int) -> dict[str, object]:
        return text_message_webhook(
            phone_number_id=tenant.phone_number_id,
            wa_id=phone,
            wamid=f"wamid.recover.{transport}.{n}",
            body=f"message {n}",
            timestamp=1_700_200_000 + n,
        )

    async with js_listener(zapline.socket_url, tenant.token, transport=transport) as client:
        assert client.lines[0]["pid"], "the CONNECT reply carries a pid"
        assert (await post_webhook(http, zapline, webhook(0), secret=tenant.app_secret)).is_success
        first = await client.step("first")
        assert first["offset"] is not None and first["offset"].isdigit()
        await client.send("cut")
        await client.step("cut")
        for n in range(1, 6):
            response = await post_webhook(http, zapline, webhook(n), secret=tenant.app_secret)
            assert response.status_code == 200, response.text
        await watcher.wait_for(
            "message:new",
            lambda d: d["message"]["whatsappMessageId"].startswith(f"wamid.recover.{transport}."),
            count=6,
        )
        reconnected = await client.step("reconnected", within=20)
        await anyio.sleep(1.0)  # the replay follows the CONNECT reply; duplicates would too
        report = await client.report()
    wamids = [m["wamid"] for m in report["messages"]]
    assert reconnected["recovered"] is True, report
    assert report["recoveries"] == [True]
    assert wamids == [f"wamid.recover.{transport}.{n}" for n in range(6)], report
    offsets = [int(m["offset"]) for m in report["messages"]]
    assert offsets == sorted(set(offsets)), "offsets grow: one per event, in order"
    assert len(set(report["pids"])) == 1, "the same pid: the session was recovered"
    assert len(set(report["ids"])) == 1, "the same socket id, as socket.io restores it"
    assert report["resync"] == [] and report["errors"] == []
