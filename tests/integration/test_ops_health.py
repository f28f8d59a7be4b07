"""Issue 5: health checks, request ids, the start line and the JSON logs, from outside.

The module's server runs as an operator would run it: ``ZAPLINE_ENV=test`` (not dev, so logs
are JSON) and no demo tenant (``ZAPLINE_DEMO=0``). Its log file (stdout and stderr) is read
back: every line after the start marker is one JSON object, except the one start line, and no
token, password or secret the tests used appears in it. SQLite only: nothing here depends on
the storage backend. The writability test runs the app in process, on a storage it can fill.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from _desk_db import make_database
from _desk_harness import (
    FAKE_APP_SECRET,
    JWT_SECRET,
    FakeCloud,
    SocketFactory,
    Tenant,
    ZaplineServer,
    auth,
    post_webhook,
)

from api.app import create_app
from api.routes_health import WRITE_CHECK_TTL
from desk.whatsapp import text_message_webhook
from engine import SocketServer
from engine.jobs import PriorityJobQueue
from storage import StorageUnavailable
from storage.sqlite import SQLiteStorage
from zapline.config import Settings
from zapline.fanout import Fanout, make_broker
from zapline.runtime import Runtime

pytestmark = pytest.mark.anyio

JWT_SHAPE = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")
TS_SHAPE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
START_MARKER = re.compile(r"^--- start \d+ ---$")


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLite only."""
    url, drop = make_database("sqlite", Path(tmp_path_factory.mktemp("db")))
    try:
        yield url
    finally:
        drop()


@pytest.fixture(scope="module")
def zapline(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZaplineServer]:
    """The harness's server and fake Cloud API, without the demo tenant."""
    workdir = tmp_path_factory.mktemp("zapline")
    server = ZaplineServer(
        database_url=database_url, workdir=workdir, extra_env={"ZAPLINE_DEMO": "0"}
    )
    fake = FakeCloud(workdir=workdir, webhook_url=server.webhook_url)
    server.whatsapp_api_url = fake.url
    try:
        fake.start()
        server.start()
        yield server
        assert server.stop() == 0, server.log_tail()
    finally:
        try:
            server.stop()
        finally:
            fake.stop()


def log_lines(server: ZaplineServer) -> list[str]:
    """The server's log, one entry per line, blank lines dropped."""
    return [line for line in server.log_path.read_text().splitlines() if line.strip()]


async def start_line(server: ZaplineServer, within: float = 10.0) -> str:
    """The start line of the server's latest start (printed just after /healthz answers).

    Raises AssertionError with the log's tail when it does not appear ``within`` seconds.
    """
    with anyio.move_on_after(within):
        while True:
            lines = log_lines(server)
            marker = max(i for i, line in enumerate(lines) if START_MARKER.match(line))
            found = [line for line in lines[marker:] if line.startswith("zapline ")]
            if found:
                return found[0]
            await anyio.sleep(0.05)
    raise AssertionError(f"no start line in {within} s:\n{server.log_tail()}")


def json_records(server: ZaplineServer) -> list[dict[str, Any]]:
    """Every JSON log record so far (the start line and start markers skipped)."""
    records = []
    for line in log_lines(server):
        if START_MARKER.match(line) or line.startswith("zapline "):
            continue
        records.append(orjson.loads(line))
    return records


async def test_healthz_answers_ok(zapline: ZaplineServer, http: httpx.AsyncClient) -> None:
    response = await http.get(f"{zapline.api_url}/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert orjson.loads(response.content) == {"status": "ok"}


async def test_readyz_is_ready_with_every_check_passing(
    zapline: ZaplineServer, http: httpx.AsyncClient
) -> None:
    response = await http.get(f"{zapline.api_url}/readyz")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert orjson.loads(response.content) == {
        "ready": True,
        "checks": {"storage": True, "queues": True, "accepting": True},
    }


async def test_every_response_carries_a_request_id(
    zapline: ZaplineServer, http: httpx.AsyncClient
) -> None:
    api = zapline.api_url
    first, second = [await http.get(f"{api}/healthz") for _ in range(2)]
    generated = [r.headers["x-request-id"] for r in (first, second)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in generated), generated
    assert generated[0] != generated[1]

    mine = f"ops-{uuid.uuid4().hex[:8]}"
    echoed = await http.get(f"{api}/readyz", headers={"X-Request-Id": mine})
    assert echoed.headers["x-request-id"] == mine
    too_long = "r" * 65
    replaced = await http.get(f"{api}/healthz", headers={"X-Request-Id": too_long})
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])

    refused = await http.get(f"{api}/api/socket/stats", headers={"X-Request-Id": mine})
    assert refused.status_code == 401
    assert refused.headers["x-request-id"] == mine
    missing = await http.get(f"{api}/no/such/route", headers={"X-Request-Id": mine})
    assert missing.status_code == 404
    assert missing.headers["x-request-id"] == mine
    assert "error" in orjson.loads(missing.content)


async def test_the_start_line_names_urls_storage_broker_profile_and_pid(
    zapline: ZaplineServer,
) -> None:
    assert zapline.env()["ZAPLINE_ENV"] != "dev", "the harness must not run the dev profile"
    line = await start_line(zapline)
    banners = [line for line in log_lines(zapline) if line.startswith("zapline ")]
    assert banners == [line], banners
    assert line.startswith("zapline test: "), line
    assert f"API {zapline.api_url} " in line, line
    assert f"Socket.IO {zapline.socket_url} " in line, line
    assert f"storage {zapline.database_url} " in line, line
    broker = "broker redis" if zapline.env().get("REDIS_URL") else "broker memory"
    assert broker in line, line
    assert zapline.proc is not None
    assert line.endswith(f"pid {zapline.proc.pid}"), line


async def test_logs_are_json_lines_with_request_ids_and_no_secrets(
    zapline: ZaplineServer, tenant: Tenant, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    api = zapline.api_url
    fake = zapline.whatsapp_api_url
    password = f"pw-wrong-{uuid.uuid4().hex[:8]}"
    login = await http.post(
        f"{api}/api/auth/login", json={"email": tenant.email, "password": password}
    )
    assert login.status_code == 401, login.text

    rid = f"ops-{uuid.uuid4().hex[:8]}"
    bad = await post_webhook(http, zapline, b"{not json", headers={"X-Request-Id": rid})
    assert bad.status_code == 400
    body = text_message_webhook(phone_number_id=tenant.phone_number_id, body="olá")
    forged = await post_webhook(http, zapline, body, secret="forged-secret")
    assert forged.status_code == 401

    # A customer writes, the agent's reply is refused by the Cloud API: a warning is logged
    # about a send that carried the account's access token.
    _, events = await sio(zapline.socket_url, tenant.token)
    ok = await post_webhook(http, zapline, body, secret=tenant.app_secret)
    assert ok.status_code == 200, ok.text
    (inbound,) = await events.wait_for("message:new")
    assert (await http.post(f"{fake}/_fake/fail", json={"count": 1, "status": 400})).is_success
    reply = await http.post(
        f"{api}/api/conversations/{inbound['conversationId']}/messages",
        json={"content": "não vai"},
        headers=auth(tenant.token),
    )
    assert reply.status_code == 202, reply.text
    await events.wait_for("message:status-update", lambda d: d["status"] == "FAILED")
    await http.post(f"{fake}/_fake/reset")

    text = zapline.log_path.read_text()
    records = json_records(zapline)
    for record in records:
        assert {"ts", "level", "logger", "msg"} <= set(record), record
        assert TS_SHAPE.match(record["ts"]), record
        assert record["level"] in {"debug", "info", "warning", "error", "critical"}, record
    malformed = [r for r in records if "malformed JSON" in r["msg"]]
    assert [r.get("request_id") for r in malformed][-1:] == [rid], malformed
    assert any("failed" in r["msg"] and r["level"] == "warning" for r in records), records[-10:]

    access_token = "token-" + tenant.phone_number_id.removeprefix("pn-")
    for secret in (JWT_SECRET, FAKE_APP_SECRET, tenant.token, password, access_token):
        assert secret not in text, f"a secret is in the log: {secret[:12]}..."
    assert not JWT_SHAPE.search(text), JWT_SHAPE.search(text)


async def test_socket_log_lines_carry_the_socket_and_tenant(
    zapline: ZaplineServer, tenant: Tenant, sio: SocketFactory
) -> None:
    client, _ = await sio(zapline.socket_url, tenant.token)
    missing = f"no-such-conversation-{uuid.uuid4().hex[:8]}"
    answer = await client.call("conversation:join", missing, timeout=10)
    assert answer == {"ok": False, "error": "conversation not found"}
    sid = client.get_sid("/")
    denied = [r for r in json_records(zapline) if missing in r["msg"]]
    assert len(denied) == 1, denied
    assert (denied[0].get("socket"), denied[0].get("tenant")) == (sid, tenant.id), denied[0]


@pytest.mark.parametrize("profile", ["dev", "test"])
async def test_the_demo_token_is_printed_only_in_dev(profile: str, tmp_path: Path) -> None:
    server = ZaplineServer(
        database_url=f"sqlite:///{tmp_path / 'demo.db'}",
        workdir=tmp_path,
        extra_env={"ZAPLINE_ENV": profile, "ZAPLINE_DEMO": "1"},
    )
    try:
        await anyio.to_thread.run_sync(server.start)
        await start_line(server)
    finally:
        code = await anyio.to_thread.run_sync(server.stop)
    assert code == 0, server.log_tail()
    text = server.log_path.read_text()
    banners = [line for line in text.splitlines() if line.startswith(f"zapline {profile}: ")]
    assert len(banners) == 1, text
    tokens = JWT_SHAPE.findall(text)
    if profile == "dev":
        assert tokens, f"the dev start should print the demo token:\n{text}"
    else:
        assert not tokens, f"a JWT is printed outside dev (README: only in dev):\n{text}"


# -- readiness reflects writability (issue 15, item 3) ---------------------------------------


async def _fill_up(store: SQLiteStorage) -> None:
    """Cap the file at the pages it has, then write until not even a small row fits."""
    await store._call(
        lambda db: db.execute(
            f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}"
        )
    )
    for size in (4000, 1000, 100, 1):
        with contextlib.suppress(StorageUnavailable):
            while True:
                await store.add_dead_letter("filler", {"pad": "x" * size}, "")


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_readyz_is_503_while_sqlite_cannot_write_and_200_once_it_can(
    tmp_path: Path,
) -> None:
    # In process, so the test can cap the server's own connection (max_page_count is a
    # setting of the connection, not of the file): a full disk without a small file system.
    store = await SQLiteStorage.open(str(tmp_path / "full.db"))
    try:
        await store.migrate()
        engine = SocketServer()
        runtime = Runtime(
            settings=Settings(),
            storage=store,
            engine=engine,
            queue=PriorityJobQueue(),
            fanout=Fanout(engine, make_broker(None)),
        )
        client = create_app(runtime).test_client()
        ready = await client.get("/readyz")
        assert ready.status_code == 200, await ready.get_data()

        await _fill_up(store)
        await store.ping()  # reads still work: the old /readyz answered 200 here
        await anyio.sleep(WRITE_CHECK_TTL)
        full = await client.get("/readyz")
        body = orjson.loads(await full.get_data())
        assert full.status_code == 503, body
        assert body["ready"] is False and body["checks"]["storage"] is False, body
        assert "full" in body["reasons"]["storage"], body
        assert str(tmp_path) not in body["reasons"]["storage"], body

        await store._call(lambda db: db.execute("PRAGMA max_page_count = 1073741823"))
        cached = await client.get("/readyz")
        assert cached.status_code == 503  # within the second, the last check answers
        await anyio.sleep(WRITE_CHECK_TTL)
        again = await client.get("/readyz")
        assert again.status_code == 200, await again.get_data()
        assert orjson.loads(await again.get_data()) == {
            "ready": True,
            "checks": {"storage": True, "queues": True, "accepting": True},
        }
    finally:
        await store.aclose()
