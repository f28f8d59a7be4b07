"""``GET /api/events``: the event log over REST, tenant-scoped, paginated, by the caller's rooms."""

from __future__ import annotations

import anyio
import httpx
import pytest
from _desk_harness import SocketFactory, Tenant, ZaplineServer, auth, create_tenant, post_webhook

from desk.whatsapp import text_message_webhook

pytestmark = [pytest.mark.anyio]


async def test_the_log_pages_in_seq_order_for_its_tenant_only(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, watcher = await sio(zapline.socket_url, tenant.token)
    for n in range(3):
        body = text_message_webhook(
            phone_number_id=tenant.phone_number_id, wa_id="5511750000001", wamid=f"wamid.rest.{n}"
        )
        assert (await post_webhook(http, zapline, body, secret=tenant.app_secret)).is_success
    await watcher.wait_for("message:new", count=3)
    url = f"{zapline.api_url}/api/events"
    whole = (await http.get(url, headers=auth(tenant.token))).json()
    names = [e["event"] for e in whole["events"]]
    assert names[0] == "conversation:new" and names.count("message:new") == 3
    seqs = [e["seq"] for e in whole["events"]]
    assert seqs == list(range(1, len(seqs) + 1)) and whole["hasMore"] is False
    assert whole["next"] == seqs[-1]
    wamids = [
        e["data"]["message"]["whatsappMessageId"]
        for e in whole["events"]
        if e["event"] == "message:new"
    ]
    assert wamids == [f"wamid.rest.{n}" for n in range(3)]
    assert all(e["createdAt"].endswith("Z") for e in whole["events"])
    # Pages of two, each starting after the last seq of the one before.
    pages, after = [], 0
    while True:
        page = (
            await http.get(url, params={"after": after, "limit": 2}, headers=auth(tenant.token))
        ).json()
        pages.append(page)
        after = page["next"]
        if not page["hasMore"]:
            break
    assert [e for p in pages for e in p["events"]] == whole["events"]
    # Another tenant's log is its own: empty here.
    stranger = await anyio.to_thread.run_sync(lambda: create_tenant(zapline))
    theirs = (await http.get(url, headers=auth(stranger.token))).json()
    assert theirs == {"events": [], "next": 0, "hasMore": False}


@pytest.mark.parametrize(
    "query",
    [
        {"after": "-1"},
        {"after": "x"},
        {"limit": "0"},
        {"limit": "1001"},
        # Digits to str.isdigit() but not ASCII: "²" was a 500 (int() refuses it), a
        # fullwidth "１" was read as 1.
        {"after": "\u00b2"},
        {"limit": "\u00b2"},
        {"after": "\uff11"},
    ],
)
async def test_a_bad_after_or_limit_is_a_400_in_json(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, query: dict[str, str]
) -> None:
    response = await http.get(
        f"{zapline.api_url}/api/events", params=query, headers=auth(tenant.token)
    )
    assert response.status_code == 400
    assert "error" in response.json()


async def test_the_log_needs_a_token(zapline: ZaplineServer, http: httpx.AsyncClient) -> None:
    assert (await http.get(f"{zapline.api_url}/api/events")).status_code == 401
