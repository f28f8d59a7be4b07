"""Issue 3's "done when": 1000 webhooks, SIGKILL mid-way, restart; nothing lost, nothing doubled.

WhatsApp's side is played faithfully: every webhook is posted until it gets a 200 (Meta retries
anything else), so posts in flight at the kill are delivered again after the restart. Posts
that hit the dead server wait until the agent's client is connected again before they retry
(an event emitted while no client is connected is one nobody could have received). The agent's
side is a python-socketio client with automatic reconnection.

The scenario runs once per backend (module fixture ``crash``); the tests below each check one
promise on its outcome, so a broken promise is named by the test that fails.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

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

from desk.whatsapp import sign, text_message_webhook

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(150)]

TOTAL = 1000
CONTACTS = 50
CONCURRENCY = 20
KILL_AFTER = 400
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
        try:
            limits = httpx.Limits(
                max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY
            )
            async with httpx.AsyncClient(timeout=10.0, limits=limits) as http:
                await run_scenario(run, http)
                await count_stored(run, http)
        finally:
            await client.disconnect()
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


async def test_every_message_is_announced_at_least_once(crash: CrashRun) -> None:
    missing = sorted(crash.expected - crash.announced())
    assert not missing, (
        f"{len(missing)} of {TOTAL} messages never reached the connected client, e.g. "
        f"{missing[:5]}; timeline {crash.timeline}"
    )
