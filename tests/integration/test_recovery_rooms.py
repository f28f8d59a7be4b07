"""A session recovered on a fresh process (after ``kill -9``) is back in the conversation
rooms it had joined: they are saved behind the hot path (recovery_sessions) and restored."""

from __future__ import annotations

import anyio
import httpx
import orjson
import pytest
from _desk_harness import SocketFactory, Tenant, ZaplineServer, post_webhook
from test_live_desk import second_agent
from test_recovery_wire import WireClient, _connect_reply, _events

from desk.whatsapp import text_message_webhook

pytestmark = [pytest.mark.anyio]


async def test_a_session_recovered_after_a_kill_is_back_in_its_conversation_room(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, watcher = await sio(zapline.socket_url, tenant.token)
    body = text_message_webhook(phone_number_id=tenant.phone_number_id, wa_id="5511760000001")
    assert (await post_webhook(http, zapline, body, secret=tenant.app_secret)).is_success
    (new,) = await watcher.wait_for("message:new")
    conversation_id = new["conversationId"]

    first = WireClient(http, zapline)
    pid = _connect_reply(await first.connect({"token": tenant.token}))["pid"]
    join = b"421" + orjson.dumps(["conversation:join", conversation_id])
    await http.post(f"{first.base}&sid={first.sid}", content=join)
    with anyio.fail_after(10):
        while not any(p.startswith("431") for p in await first.poll()):
            pass
    await anyio.sleep(1.5)  # the joined rooms are saved behind, every second
    await anyio.to_thread.run_sync(zapline.kill)
    await anyio.to_thread.run_sync(zapline.start)

    again = WireClient(http, zapline)
    packets = await again.connect({"token": tenant.token, "pid": pid})
    assert _connect_reply(packets)["pid"] == pid, "recovered on the fresh process"
    assert not [e for e in _events(packets) if e[0] == "resync:required"]
    # Typing goes to the conversation room only: the recovered socket is in it again.
    _, bia_token = await anyio.to_thread.run_sync(lambda: second_agent(zapline, tenant, "Bia"))
    bia, _ = await sio(zapline.socket_url, bia_token)
    assert (await bia.call("conversation:join", conversation_id, timeout=5))["ok"]
    assert await bia.call("typing:start", {"conversationId": conversation_id}, timeout=5) == {
        "ok": True
    }
    with anyio.fail_after(10):
        while True:
            typing = [e for e in _events(await again.poll()) if e[0] == "typing"]
            if typing:
                break
    assert typing[0][1]["conversationId"] == conversation_id
