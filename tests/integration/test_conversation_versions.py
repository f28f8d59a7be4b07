"""Concurrent moves of a card: ``expectedVersion`` on PATCH and on ``conversation:assign``.

Two agents moving the same card at once: the one whose version is stale gets a 409 (or an
ack) with the current card instead of silently overwriting the other's move. Without
``expectedVersion`` the last write wins, as before.
"""

from __future__ import annotations

import uuid

import anyio
import httpx
import pytest
from _contract import violations
from _desk_harness import SocketFactory, Tenant, ZaplineServer, auth, post_webhook

from desk.whatsapp import text_message_webhook

pytestmark = pytest.mark.anyio

# Refused alike on both paths: a bool is an int to Python; 2**63 is still an int to the
# socket's JSON decoder and 2**64 no longer is (a float), while the API's keeps both as ints.
BAD_VERSIONS: list[object] = [
    True,
    False,
    "1",
    "",
    1.0,
    1.5,
    -1,
    [1],
    {"v": 1},
    2**31,
    2**63,
    2**64,
]
REFUSED_VERSION = "expectedVersion must be an integer from 0 to 2147483647"


async def new_card(
    http: httpx.AsyncClient, server: ZaplineServer, tenant: Tenant, sio: SocketFactory
) -> tuple[str, dict[str, object]]:
    _, events = await sio(server.socket_url, tenant.token)
    wa_id = f"55118{uuid.uuid4().int % 10**8:08d}"
    body = text_message_webhook(phone_number_id=tenant.phone_number_id, wa_id=wa_id, body="oi")
    assert (await post_webhook(http, server, body, secret=tenant.app_secret)).status_code == 200
    (created,) = await events.wait_for("conversation:new")
    card = created["conversation"]
    return str(card["id"]), card


async def test_of_two_concurrent_patches_with_one_version_one_wins_one_gets_409(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    conversation_id, card = await new_card(http, zapline, tenant, sio)
    assert card["version"] == 0
    url = f"{zapline.api_url}/api/conversations/{conversation_id}"
    answers: dict[str, httpx.Response] = {}

    async def move(stage: str) -> None:
        answers[stage] = await http.patch(
            url, json={"stage": stage, "expectedVersion": 0}, headers=auth(tenant.token)
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(move, "won")
        tg.start_soon(move, "lost")
    codes = sorted(r.status_code for r in answers.values())
    assert codes == [200, 409], {s: r.text for s, r in answers.items()}
    (winner,) = [s for s, r in answers.items() if r.status_code == 200]
    (loser,) = [r for r in answers.values() if r.status_code == 409]
    won = answers[winner].json()["conversation"]
    assert (won["stage"], won["version"]) == (winner, 1)
    assert violations(loser.json(), "VersionConflict") == []
    assert "version" in loser.json()["error"]
    assert loser.json()["conversation"] == won  # the current card, as the winner left it
    now = (await http.get(url, headers=auth(tenant.token))).json()["conversation"]
    assert (now["stage"], now["version"]) == (winner, 1)

    # Retrying with the version from the 409 works; without expectedVersion, last write wins.
    retry = await http.patch(
        url, json={"stage": "later", "expectedVersion": 1}, headers=auth(tenant.token)
    )
    assert retry.status_code == 200 and retry.json()["conversation"]["version"] == 2
    blind = await http.patch(url, json={"stage": "blind"}, headers=auth(tenant.token))
    assert blind.status_code == 200 and blind.json()["conversation"]["version"] == 3
    for bad in ("1", -1, True, 1.5):
        refused = await http.patch(
            url, json={"stage": "x", "expectedVersion": bad}, headers=auth(tenant.token)
        )
        assert refused.status_code == 400, bad
        assert refused.json()["field"] == "expectedVersion"


async def test_conversation_assign_with_a_stale_version_acks_the_current_card(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    conversation_id, _ = await new_card(http, zapline, tenant, sio)
    client, events = await sio(zapline.socket_url, tenant.token)
    moved = await http.patch(
        f"{zapline.api_url}/api/conversations/{conversation_id}",
        json={"stage": "open"},
        headers=auth(tenant.token),
    )
    assert moved.json()["conversation"]["version"] == 1
    (update,) = await events.wait_for("conversation:updated", lambda e: "updates" in e)
    assert update["version"] == 1  # the event carries the version the change made

    request = {"conversationId": conversation_id, "assigneeId": tenant.user_id}
    stale = await client.call("conversation:assign", {**request, "expectedVersion": 0}, timeout=5)
    assert stale["ok"] is False and "version" in stale["error"]
    assert violations(stale, "AssignAck") == []
    assert (stale["conversation"]["version"], stale["conversation"]["assigneeId"]) == (1, None)
    fresh = await client.call("conversation:assign", {**request, "expectedVersion": 1}, timeout=5)
    assert fresh["ok"] is True, fresh
    assert (fresh["conversation"]["version"], fresh["conversation"]["assigneeId"]) == (
        2,
        tenant.user_id,
    )
    unversioned = await client.call(
        "conversation:assign", {**request, "assigneeId": None}, timeout=5
    )
    assert unversioned["ok"] is True and unversioned["conversation"]["version"] == 3
    bad = await client.call("conversation:assign", {**request, "expectedVersion": "2"}, timeout=5)
    assert bad == {"ok": False, "error": REFUSED_VERSION}


async def test_patch_refuses_a_bad_expected_version_with_400_naming_the_field(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    conversation_id, _ = await new_card(http, zapline, tenant, sio)
    url = f"{zapline.api_url}/api/conversations/{conversation_id}"
    for bad in BAD_VERSIONS:
        refused = await http.patch(
            url, json={"stage": "x", "expectedVersion": bad}, headers=auth(tenant.token)
        )
        assert refused.status_code == 400, (bad, refused.text)
        assert refused.json() == {"error": REFUSED_VERSION, "field": "expectedVersion"}, bad
    card = (await http.get(url, headers=auth(tenant.token))).json()["conversation"]
    assert (card["stage"], card["version"]) == ("new", 0)
    top = await http.patch(
        url, json={"stage": "x", "expectedVersion": 2**31 - 1}, headers=auth(tenant.token)
    )
    assert top.status_code == 409, top.text  # a valid version, just not this card's


async def test_conversation_assign_refuses_a_bad_expected_version_with_the_same_words(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    conversation_id, _ = await new_card(http, zapline, tenant, sio)
    client, _ = await sio(zapline.socket_url, tenant.token)
    request = {"conversationId": conversation_id, "assigneeId": tenant.user_id}
    for bad in BAD_VERSIONS:
        ack = await client.call(
            "conversation:assign", {**request, "expectedVersion": bad}, timeout=5
        )
        assert ack == {"ok": False, "error": REFUSED_VERSION}, bad
    url = f"{zapline.api_url}/api/conversations/{conversation_id}"
    card = (await http.get(url, headers=auth(tenant.token))).json()["conversation"]
    assert (card["assigneeId"], card["version"]) == (None, 0)
    top = await client.call(
        "conversation:assign", {**request, "expectedVersion": 2**31 - 1}, timeout=5
    )
    assert top["ok"] is False and "version conflict" in top["error"], top
