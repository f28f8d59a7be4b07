"""Issues 3 and 11: 1000 webhooks at 100/s, SIGKILL mid-way, restart on the same database;
nothing lost, nothing stored twice, and every agent on the official client gets every message
exactly once, in order.

WhatsApp's side is played faithfully: every webhook is posted until it gets a 200 (Meta retries
anything else), so posts in flight at the kill are delivered again after the restart. Posts
that hit the dead server wait until the agent's client is connected again before they retry.
The agents' side: two official socket.io-clients (tests/js/recover.mjs, websocket and polling,
default options) that recover from the event log after the restart, and a python-socketio
client with automatic reconnection, which does not recover (it hears what comes after).

The scenario runs once per backend (module fixture ``crash``); the tests below each check one
promise on its outcome, so a broken promise is named by the test that fails.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import orjson
import pytest
from _desk_db import make_database
from _desk_harness import (
    EventLog,
    Tenant,
    ZaplineServer,
    connect_client,
    create_tenant,
    get_all_pages,
)
from _js_listener import js_listener

from desk.whatsapp import sign, text_message_webhook

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(150)]

TOTAL = 1000
CONTACTS = 50
CONCURRENCY = 20
KILL_AFTER = 400
RATE = 100.0  # webhooks per second
T0 = 1_700_100_000


@dataclass
class CrashRun:
    """What one run of the scenario observed."""

    server: ZaplineServer
    tenant: Tenant
    events: EventLog
    expected: set[str]
    acked: set[int] = field(default_factory=set)
    posted_after_restart: set[str] = field(default_factory=set)
    stored: list[str] = field(default_factory=list)
    conversations: int = 0
    timeline: dict[str, float] = field(default_factory=dict)
    js_reports: dict[str, dict[str, Any]] = field(default_factory=dict)

    def announced(self) -> set[str]:
        """Every wamid whose ``message:new`` the client received."""
        return {e["message"]["whatsappMessageId"] for e in self.events.named("message:new")}


def webhooks(tenant: Tenant) -> list[tuple[str, bytes, str]]:
    """(wamid, raw body, signature) of every webhook, over ``CONTACTS`` customers."""
    out = []
    for i in range(TOTAL):
        wamid = f"wamid.crash.{i:04d}"
        body = text_message_webhook(
            phone_number_id=tenant.phone_number_id,
            wa_id=f"55118{i % CONTACTS:08d}",
            name=f"Customer {i % CONTACTS}",
            wamid=wamid,
            body=f"message {i}",
            timestamp=T0 + i,
        )
        raw = orjson.dumps(body)
        out.append((wamid, raw, sign(raw, tenant.app_secret or "")))
    return out


async def run_scenario(run: CrashRun, http: httpx.AsyncClient) -> None:
    """Post everything concurrently, SIGKILL and restart the server mid-way."""
    server, posts = run.server, webhooks(run.tenant)
    reached, resumed = anyio.Event(), anyio.Event()
    started = time.monotonic()

    def mark(name: str) -> None:
        run.timeline[name] = round(time.monotonic() - started, 3)

    async def crash_and_restart() -> None:
        await reached.wait()
        server.kill()
        mark("killed")
        run.timeline["acked_at_kill"] = len(run.acked)
        run.timeline["announced_at_kill"] = len(run.announced())
        await anyio.to_thread.run_sync(server.start)
        mark("restarted")
        await run.events.wait_for("connect", count=2, within=20)
        mark("reconnected")
        resumed.set()

    def acknowledged(i: int) -> None:
        run.acked.add(i)
        if len(run.acked) >= KILL_AFTER:
            reached.set()

    async def deliver(i: int, slots: anyio.Semaphore) -> None:
        wamid, raw, signature = posts[i]
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
        if resumed.is_set():
            run.posted_after_restart.add(wamid)
        try:
            while True:
                try:
                    response = await http.post(server.webhook_url, content=raw, headers=headers)
                except httpx.TransportError:
                    await resumed.wait()  # the server is down: Meta tries again later
                    continue
                if response.status_code == 200:
                    acknowledged(i)
                    return
                await anyio.sleep(0.05)
        finally:
            slots.release()

    slots = anyio.Semaphore(CONCURRENCY)
    with anyio.fail_after(90):
        async with anyio.create_task_group() as tg:
            tg.start_soon(crash_and_restart)
            for i in range(TOTAL):
                await anyio.sleep_until(started + i / RATE)
                await slots.acquire()
                tg.start_soon(deliver, i, slots)
    mark("all_acked")
    # Wait for the announcements to settle: all of them, or a quiet spell longer than the
    # server's recovery grace (ZAPLINE_RECOVERY_GRACE, 5 s) without a new one.
    while not run.expected <= run.announced():
        seen = len(run.events.named("message:new"))
        with anyio.move_on_after(8) as quiet:
            await run.events.wait_for("message:new", count=seen + 1, within=9)
        if quiet.cancelled_caught:
            break
    mark("settled")


async def count_stored(run: CrashRun, http: httpx.AsyncClient) -> None:
    """Read every stored message back through the API, paging."""
    api, token = run.server.api_url, run.tenant.token
    conversations = await get_all_pages(
        http, f"{api}/api/conversations", token, "conversations", limit=200, cursor_param="cursor"
    )
    run.conversations = len(conversations)
    for conversation in conversations:
        url = f"{api}/api/conversations/{conversation['id']}/messages"
        messages = await get_all_pages(
            http, url, token, "messages", limit=200, cursor_param="before"
        )
        run.stored += [m["whatsappMessageId"] for m in messages]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def crash(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[CrashRun]:
    """The scenario, run once on a server of its own and a fresh database of each backend."""
    workdir = tmp_path_factory.mktemp("crash")
    url, drop = await anyio.to_thread.run_sync(make_database, str(request.param), workdir)
    server = ZaplineServer(database_url=url, workdir=workdir)
    try:
        await anyio.to_thread.run_sync(server.start)
        tenant = await anyio.to_thread.run_sync(lambda: create_tenant(server))
        client, events = await connect_client(server.socket_url, tenant.token, reconnection=True)
        run = CrashRun(server, tenant, events, {f"wamid.crash.{i:04d}" for i in range(TOTAL)})
        url, token = server.socket_url, tenant.token
        try:
            limits = httpx.Limits(
                max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY
            )
            async with (
                js_listener(url, token, transport="websocket") as ws_agent,
                js_listener(url, token, transport="polling") as polling_agent,
                httpx.AsyncClient(timeout=10.0, limits=limits) as http,
            ):
                await run_scenario(run, http)
                await count_stored(run, http)
                run.js_reports["websocket"] = await ws_agent.report()
                run.js_reports["polling"] = await polling_agent.report()
        finally:
            await client.disconnect()
        print(f"\ncrash figures ({request.param}): {orjson.dumps(figures(run)).decode()}")
        yield run
    finally:
        try:
            await anyio.to_thread.run_sync(server.stop)
        finally:
            await anyio.to_thread.run_sync(drop)


async def test_the_server_was_killed_mid_way_and_every_webhook_acknowledged(
    crash: CrashRun,
) -> None:
    assert crash.server.starts == 2
    assert KILL_AFTER <= crash.timeline["acked_at_kill"] < TOTAL, crash.timeline
    assert len(crash.acked) == TOTAL


async def test_every_message_is_stored_exactly_once(crash: CrashRun) -> None:
    assert crash.conversations == CONTACTS
    doubles = sorted({w for w in crash.stored if crash.stored.count(w) > 1})
    assert not doubles, f"stored more than once: {doubles[:10]}"
    assert set(crash.stored) == crash.expected, sorted(crash.expected - set(crash.stored))[:10]
    assert len(crash.stored) == TOTAL


async def test_the_client_reconnects_and_hears_what_comes_after(crash: CrashRun) -> None:
    assert len(crash.events.named("connect")) == 2, crash.events.named("disconnect")
    assert crash.posted_after_restart, "some webhooks were first posted after the restart"
    missing = sorted(crash.posted_after_restart - crash.announced())
    assert not missing, f"posted after the client was back but never announced: {missing[:10]}"


def figures(run: CrashRun) -> dict[str, Any]:
    """Messages stored, events received and duplicates, per client."""
    out: dict[str, Any] = {"stored": len(run.stored), "timeline": run.timeline}
    psio = [e["message"]["whatsappMessageId"] for e in run.events.named("message:new")]
    clients = {"python-socketio": psio}
    for name, report in run.js_reports.items():
        clients[name] = [m["wamid"] for m in report["messages"]]
    for name, wamids in clients.items():
        out[name] = {
            "received": len(wamids),
            "distinct": len(set(wamids)),
            "duplicates": len(wamids) - len(set(wamids)),
            "missing": len(run.expected - set(wamids)),
        }
    return out


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_every_official_client_gets_every_message_once_in_order(
    crash: CrashRun, transport: str
) -> None:
    report = crash.js_reports[transport]
    assert report["errors"] == [], report["errors"]
    assert report["recoveries"] and all(report["recoveries"]), report["recoveries"]
    assert report["resync"] == []
    wamids = [m["wamid"] for m in report["messages"]]
    doubles = sorted({w for w in wamids if wamids.count(w) > 1})
    assert not doubles, f"{len(doubles)} received twice, e.g. {doubles[:5]}"
    missing = sorted(crash.expected - set(wamids))
    assert not missing, f"{len(missing)} never received, e.g. {missing[:5]}; {figures(crash)}"
    offsets = [int(m["offset"]) for m in report["messages"]]
    assert offsets == sorted(set(offsets)), "in the log's order, each once"
    # Refused while the server was down, then recovered: never refused by the new process.
    assert not [e for e in report["connectErrors"] if "refused" in e.lower()], report
