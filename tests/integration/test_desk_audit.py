"""The audit log from outside: every audited action leaves exactly one row with the right
fields, only the tenant's admins list it (by pages, filtered), and a clean stop loses none."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from _contract import violations
from _desk_harness import (
    JWT_SECRET,
    SocketFactory,
    Tenant,
    ZaplineServer,
    auth,
    create_tenant,
    get_all_pages,
    post_webhook,
)

from desk.auth import issue_token
from desk.whatsapp import text_message_webhook
from storage import AuditRecord, open_storage

pytestmark = pytest.mark.anyio


def add_user(server: ZaplineServer, tenant: Tenant, role: str) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    user = server.cli(
        "user", "create", "--tenant", tenant.id, "--email", f"{role}-{tag}@it.example",
        "--password", "pw", "--role", role, "--name", f"{role} {tag}",
    )  # fmt: skip
    return user["id"], issue_token(JWT_SECRET, user_id=user["id"], tenant_id=tenant.id, role=role)


async def audit_rows(
    http: httpx.AsyncClient,
    server: ZaplineServer,
    admin_token: str,
    *,
    expect: int,
    **params: str,
) -> list[dict[str, Any]]:
    """Every row ``GET /api/audit`` lists with ``params``, once ``expect`` of them are there
    (rows are written every half second), checked against the contract."""
    rows: list[dict[str, Any]] = []
    with anyio.fail_after(10):
        while True:
            response = await http.get(
                f"{server.api_url}/api/audit", params=params, headers=auth(admin_token)
            )
            assert response.status_code == 200, response.text
            assert violations(response.json(), "AuditList") == []
            rows = response.json()["entries"]
            if len(rows) >= expect:
                break
            await anyio.sleep(0.1)
    await anyio.sleep(0.6)  # one more flush: a duplicate would show now
    again = await http.get(f"{server.api_url}/api/audit", params=params, headers=auth(admin_token))
    assert again.json()["entries"] == rows
    return rows


async def new_conversation(
    http: httpx.AsyncClient, server: ZaplineServer, tenant: Tenant, events: Any
) -> str:
    wa_id = f"55117{uuid.uuid4().int % 10**8:08d}"
    body = text_message_webhook(phone_number_id=tenant.phone_number_id, wa_id=wa_id, body="oi")
    assert (await post_webhook(http, server, body, secret=tenant.app_secret)).status_code == 200
    (new,) = await events.wait_for(
        "message:new", lambda e: e["message"]["contact"]["phoneNumber"] == wa_id
    )
    return str(new["conversationId"])


async def test_logins_ok_and_failed_each_leave_one_row(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient
) -> None:
    _, admin = await anyio.to_thread.run_sync(lambda: add_user(zapline, tenant, "admin"))
    login = f"{zapline.api_url}/api/auth/login"
    ok = await http.post(login, json={"email": tenant.email, "password": tenant.password})
    assert ok.status_code == 200
    bad = await http.post(
        login,
        json={"email": tenant.email.upper(), "password": "nope"},
        headers={"X-Request-Id": "login-attempt-1"},
    )
    assert bad.status_code == 401
    nobody = await http.post(login, json={"email": "nobody@it.example", "password": "x"})
    assert nobody.status_code == 401

    (row,) = await audit_rows(http, zapline, admin, expect=1, action="login_ok")
    assert (row["tenantId"], row["userId"], row["target"]) == (
        tenant.id,
        tenant.user_id,
        f"user:{tenant.user_id}",
    )
    assert row["requestId"] == ok.headers["X-Request-Id"]
    (failed,) = await audit_rows(http, zapline, admin, expect=1, action="login_failed")
    assert (failed["userId"], failed["requestId"]) == (tenant.user_id, "login-attempt-1")
    assert failed["details"] == {"email": tenant.email.upper(), "reason": "wrong password"}
    # The email nobody has belongs to no tenant: this tenant's admins do not see it.


async def test_sends_assignments_and_stage_changes_each_leave_one_row(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    admin_id, admin = await anyio.to_thread.run_sync(lambda: add_user(zapline, tenant, "admin"))
    _, events = await sio(zapline.socket_url, tenant.token)
    conversation_id = await new_conversation(http, zapline, tenant, events)
    base = f"{zapline.api_url}/api/conversations/{conversation_id}"
    as_agent = auth(tenant.token)

    reply = await http.post(f"{base}/messages", json={"content": "hello"}, headers=as_agent)
    assert reply.status_code == 202, reply.text
    image = {"type": "IMAGE", "metadata": {"link": "https://example.com/a.png"}}
    media = await http.post(f"{base}/messages", json=image, headers=as_agent)
    assert media.status_code == 202, media.text
    template = {"name": "hello_world", "language": {"code": "en_US"}}
    sent = await http.post(
        f"{base}/messages",
        json={"type": "TEMPLATE", "metadata": {"template": template}},
        headers=as_agent,
    )
    assert sent.status_code == 202, sent.text
    assigned = await http.patch(base, json={"assigneeId": tenant.user_id}, headers=auth(admin))
    assert assigned.status_code == 200
    staged = await http.patch(base, json={"stage": "won"}, headers=as_agent)
    assert staged.status_code == 200

    for action, response, user in (
        ("reply_sent", reply, tenant.user_id),
        ("media_sent", media, tenant.user_id),
        ("template_sent", sent, tenant.user_id),
    ):
        (row,) = await audit_rows(http, zapline, admin, expect=1, action=action)
        message = response.json()["message"]
        assert (row["userId"], row["target"]) == (user, f"message:{message['id']}")
        assert row["details"] == {"conversationId": conversation_id, "type": message["type"]}
        assert row["requestId"] == response.headers["X-Request-Id"]
    (row,) = await audit_rows(http, zapline, admin, expect=1, action="conversation_assigned")
    assert (row["userId"], row["target"]) == (admin_id, f"conversation:{conversation_id}")
    assert row["details"] == {"from": None, "to": tenant.user_id, "version": 1}
    assert row["requestId"] == assigned.headers["X-Request-Id"]
    (row,) = await audit_rows(http, zapline, admin, expect=1, action="conversation_stage_changed")
    assert (row["userId"], row["details"]) == (
        tenant.user_id,
        {"from": "new", "to": "won", "version": 2},
    )


async def test_denied_joins_and_denied_requests_each_leave_one_row(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    _, admin = await anyio.to_thread.run_sync(lambda: add_user(zapline, tenant, "admin"))
    y_id, y_token = await anyio.to_thread.run_sync(lambda: add_user(zapline, tenant, "agent"))
    stranger = await anyio.to_thread.run_sync(lambda: create_tenant(zapline))
    _, events = await sio(zapline.socket_url, tenant.token)
    conversation_id = await new_conversation(http, zapline, tenant, events)
    base = f"{zapline.api_url}/api/conversations/{conversation_id}"
    taken = await http.patch(base, json={"assigneeId": tenant.user_id}, headers=auth(tenant.token))
    assert taken.status_code == 200

    y, _ = await sio(zapline.socket_url, y_token)
    refused = await y.call("conversation:join", conversation_id, timeout=5)
    assert refused == {"ok": False, "error": "conversation not found"}
    (row,) = await audit_rows(http, zapline, admin, expect=1, action="join_denied")
    assert (row["userId"], row["target"]) == (y_id, f"conversation:{conversation_id}")
    assert row["details"]["reason"] == "conversation not found"
    assert row["requestId"]  # the socket event's own

    # Another tenant's user asking for this tenant's conversation: a 404, audited in the
    # asker's tenant (whose admins answer for their users), never in this one.
    foreign = await http.get(base, headers=auth(stranger.token))
    assert foreign.status_code == 404
    _, stranger_admin = await anyio.to_thread.run_sync(lambda: add_user(zapline, stranger, "admin"))
    (row,) = await audit_rows(http, zapline, stranger_admin, expect=1, action="request_denied")
    assert (row["tenantId"], row["userId"]) == (stranger.id, stranger.user_id)
    assert row["target"] == f"conversation:{conversation_id}"
    assert row["details"] == {
        "status": 404,
        "method": "GET",
        "path": f"/api/conversations/{conversation_id}",
        "reason": "conversation not found",
    }
    assert row["requestId"] == foreign.headers["X-Request-Id"]

    # The audit log itself: admins only; anyone else gets a JSON 403, and is audited.
    listing = await http.get(f"{zapline.api_url}/api/audit", headers=auth(y_token))
    assert listing.status_code == 403
    assert violations(listing.json(), "ApiError") == []
    rows = await audit_rows(http, zapline, admin, expect=1, action="request_denied")
    assert [(r["userId"], r["target"], r["details"]["status"]) for r in rows] == [
        (y_id, "/api/audit", 403)
    ]


async def test_admins_page_through_their_tenants_rows_newest_first_with_filters(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient
) -> None:
    admin_id, admin = await anyio.to_thread.run_sync(lambda: add_user(zapline, tenant, "admin"))
    other = await anyio.to_thread.run_sync(lambda: create_tenant(zapline))
    _, other_admin = await anyio.to_thread.run_sync(lambda: add_user(zapline, other, "admin"))
    login = f"{zapline.api_url}/api/auth/login"
    for i in range(5):
        await http.post(login, json={"email": tenant.email, "password": tenant.password})
        await http.post(login, json={"email": tenant.email, "password": f"wrong-{i}"})
    await http.post(login, json={"email": other.email, "password": "wrong"})
    await audit_rows(http, zapline, admin, expect=10)

    url = f"{zapline.api_url}/api/audit"
    rows = await get_all_pages(http, url, admin, "entries", limit=3, cursor_param="cursor")
    assert len(rows) == 10 and len({r["id"] for r in rows}) == 10
    assert [int(r["id"]) for r in rows] == sorted((int(r["id"]) for r in rows), reverse=True)
    assert [r["at"] for r in rows] == sorted((r["at"] for r in rows), reverse=True)
    assert {r["tenantId"] for r in rows} == {tenant.id}
    failed = await get_all_pages(
        http, url, admin, "entries", limit=2, cursor_param="cursor",
        params={"action": "login_failed"},
    )  # fmt: skip
    assert [r["details"]["email"] for r in failed] == [tenant.email] * 5
    mine = await http.get(url, params={"userId": admin_id}, headers=auth(admin))
    assert mine.json() == {"entries": [], "nextCursor": None}
    theirs = await audit_rows(http, zapline, other_admin, expect=1)
    assert [r["action"] for r in theirs] == ["login_failed"]
    for params in ({"action": "made_up"}, {"limit": "0"}, {"cursor": "garbage"}):
        bad = await http.get(url, params=params, headers=auth(admin))
        assert bad.status_code == 400, params
        assert violations(bad.json(), "ApiError") == []


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZaplineServer]:
    """A server (SQLite) whose rate limits a test reaches quickly."""
    workdir: Path = tmp_path_factory.mktemp("audit-limits")
    server = ZaplineServer(
        database_url=f"sqlite:///{workdir / 'desk.db'}",
        workdir=workdir,
        extra_env={"ZAPLINE_RATE_SOCKET": "5/5", "ZAPLINE_RATE_API": "3/3"},
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_rate_limit_disconnects_and_429s_each_leave_one_row(
    tight: ZaplineServer, sio: SocketFactory, http: httpx.AsyncClient
) -> None:
    tenant = await anyio.to_thread.run_sync(lambda: create_tenant(tight))
    _, admin = await anyio.to_thread.run_sync(lambda: add_user(tight, tenant, "admin"))
    client, events = await sio(tight.socket_url, tenant.token)
    for _ in range(120):
        if not client.connected:
            break
        await client.emit("made:up", {"n": 1})
        await anyio.sleep(0.005)
    await events.wait_for("disconnect")
    statuses = [
        (await http.get(f"{tight.api_url}/api/conversations", headers=auth(tenant.token)))
        for _ in range(4)
    ]
    limited = [r for r in statuses if r.status_code == 429]
    assert len(limited) == 1, [r.status_code for r in statuses]
    await anyio.sleep(1.5)  # the tenant's bucket fills again for the admin's listing
    (row,) = await audit_rows(http, tight, admin, expect=1, action="rate_limit_disconnect")
    assert row["userId"] == tenant.user_id and row["target"].startswith("socket:")
    assert row["requestId"]
    (row,) = await audit_rows(http, tight, admin, expect=1, action="rate_limited")
    assert (row["userId"], row["target"]) == (tenant.user_id, "/api/conversations")
    assert row["details"]["method"] == "GET" and row["details"]["retryAfter"] >= 1
    assert row["requestId"] == limited[0].headers["X-Request-Id"]


async def test_a_clean_stop_writes_every_buffered_row(
    tmp_path_factory: pytest.TempPathFactory, http: httpx.AsyncClient
) -> None:
    workdir: Path = tmp_path_factory.mktemp("audit-stop")
    server = ZaplineServer(
        database_url=f"sqlite:///{workdir / 'desk.db'}",
        workdir=workdir,
        # No tick writes them in this test: every row must come from the stop's flush.
        extra_env={"ZAPLINE_AUDIT_FLUSH_INTERVAL": "600"},
    )
    await anyio.to_thread.run_sync(server.start)
    try:
        tenant = await anyio.to_thread.run_sync(lambda: create_tenant(server))
        _, admin = await anyio.to_thread.run_sync(lambda: add_user(server, tenant, "admin"))
        login = f"{server.api_url}/api/auth/login"
        for i in range(40):
            bad = await http.post(login, json={"email": tenant.email, "password": f"x{i}"})
            assert bad.status_code == 401
        # SIGTERM right away: the rows still buffered are written by the clean stop.
        assert await anyio.to_thread.run_sync(server.stop) == 0
        await anyio.to_thread.run_sync(server.start)
        rows = await get_all_pages(
            http, f"{server.api_url}/api/audit", admin, "entries", limit=200,
            cursor_param="cursor", params={"action": "login_failed"},
        )  # fmt: skip
        assert len(rows) == 40
    finally:
        await anyio.to_thread.run_sync(server.stop)


async def test_rows_past_the_retention_are_pruned_in_the_background(
    tmp_path_factory: pytest.TempPathFactory, http: httpx.AsyncClient
) -> None:
    workdir: Path = tmp_path_factory.mktemp("audit-retention")
    url = f"sqlite:///{workdir / 'desk.db'}"
    server = ZaplineServer(
        database_url=url, workdir=workdir, extra_env={"ZAPLINE_AUDIT_RETENTION": "30d"}
    )
    await anyio.to_thread.run_sync(server.start)
    try:
        tenant = await anyio.to_thread.run_sync(lambda: create_tenant(server))
        _, admin = await anyio.to_thread.run_sync(lambda: add_user(server, tenant, "admin"))
        assert await anyio.to_thread.run_sync(server.stop) == 0
        # Rows written long ago (by an earlier run, as far as the server can tell).
        store = await open_storage(url)
        now = datetime.now(UTC)
        try:
            await store.append_audit(
                [
                    AuditRecord(
                        tenant.id, tenant.user_id, "login_ok", None, now - timedelta(days=d)
                    )
                    for d in (1, 29, 31, 400)
                ]
            )
        finally:
            await store.aclose()
        await anyio.to_thread.run_sync(server.start)  # the pruning runs at start, then hourly
        with anyio.fail_after(10):
            while True:
                rows = await get_all_pages(
                    http, f"{server.api_url}/api/audit", admin, "entries", limit=50,
                    cursor_param="cursor",
                )  # fmt: skip
                if len(rows) == 2:
                    break
                assert len(rows) == 4
                await anyio.sleep(0.1)
        kept = [datetime.fromisoformat(r["at"].replace("Z", "+00:00")) for r in rows]
        assert all(now - at < timedelta(days=30) for at in kept)
    finally:
        await anyio.to_thread.run_sync(server.stop)
