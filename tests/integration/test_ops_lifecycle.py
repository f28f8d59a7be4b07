"""Issue 5's life cycle: SIGTERM drains and exits 0, and no accepted webhook is lost.

The SIGTERM scenario (SQLite and PostgreSQL, module fixture ``sigterm``): 300 webhooks are
posted over 20 connections; once 100 are acknowledged the server gets SIGTERM. WhatsApp's side
is played as Meta plays it: a post that does not get a 200 (a 503 while draining, a refused
connection once the process is gone) is posted again after the restart. In the end every
message is stored exactly once, read back through the API. While the server drains, a prober
reads ``/readyz`` (best effort: the drain of a few hundred small jobs is short).

The drain window, held open deterministically, is tested in ``test_ops_drain.py``.
"""

from __future__ import annotations

import signal
import subprocess
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
    stored_wamids,
)

from desk.whatsapp import sign, text_message_webhook

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

TOTAL = 300
CONCURRENCY = 20
SIGNAL_AFTER = 100
CONTACTS = 30
T0 = 1_700_200_000
# The harness's ZAPLINE_DRAIN_TIMEOUT.
DRAIN_TIMEOUT = 3.0
NOT_ACCEPTING = {"ready": False, "checks": {"storage": True, "queues": True, "accepting": False}}


@dataclass
class SigtermRun:
    """What one run of the SIGTERM scenario observed."""

    server: ZaplineServer
    tenant: Tenant
    events: EventLog
    expected: set[str]
    acked: set[int] = field(default_factory=set)
    acked_at_signal: int = 0
    acked_before_restart: int = 0
    refusals: list[tuple[int, str, bytes]] = field(default_factory=list)
    transport_errors: int = 0
    readiness: list[tuple[int, Any]] = field(default_factory=list)
    exit_code: int | None = None
    exit_seconds: float = 0.0
    stored: list[str] = field(default_factory=list)


def webhooks(tenant: Tenant) -> list[tuple[str, bytes, str]]:
    """(wamid, raw body, signature) of every webhook, over ``CONTACTS`` customers."""
    out = []
    for i in range(TOTAL):
        wamid = f"wamid.sigterm.{i:04d}"
        body = text_message_webhook(
            phone_number_id=tenant.phone_number_id,
            wa_id=f"55116{i % CONTACTS:08d}",
            name=f"Customer {i % CONTACTS}",
            wamid=wamid,
            body=f"message {i}",
            timestamp=T0 + i,
        )
        raw = orjson.dumps(body)
        out.append((wamid, raw, sign(raw, tenant.app_secret or "")))
    return out


async def probe_readiness(run: SigtermRun, stop: anyio.Event) -> None:
    """Read /readyz until the API is gone (or ``stop``), recording every answer.

    A client of its own: the posters hold every connection of theirs.
    """
    async with httpx.AsyncClient(timeout=2.0) as http:
        while not stop.is_set():
            try:
                response = await http.get(f"{run.server.api_url}/readyz")
            except httpx.TransportError:
                return
            run.readiness.append((response.status_code, orjson.loads(response.content)))
            await anyio.sleep(0.005)


async def run_scenario(run: SigtermRun, http: httpx.AsyncClient) -> None:
    """Post everything concurrently; SIGTERM mid-way, wait for the exit, restart."""
    server, posts = run.server, webhooks(run.tenant)
    reached, restarted = anyio.Event(), anyio.Event()

    async def terminate_and_restart() -> None:
        await reached.wait()
        proc = server.proc
        assert proc is not None
        run.acked_at_signal = len(run.acked)
        gone = anyio.Event()
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        async with anyio.create_task_group() as tg:
            tg.start_soon(probe_readiness, run, gone)
            try:
                run.exit_code = await anyio.to_thread.run_sync(proc.wait, 20)
            except subprocess.TimeoutExpired:
                run.exit_code = None
            run.exit_seconds = time.monotonic() - started
            gone.set()
        run.acked_before_restart = len(run.acked)
        await anyio.to_thread.run_sync(server.start)
        restarted.set()

    async def deliver(i: int, slots: anyio.Semaphore) -> None:
        _, raw, signature = posts[i]
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
        try:
            while True:
                try:
                    response = await http.post(server.webhook_url, content=raw, headers=headers)
                except httpx.TransportError:
                    run.transport_errors += 1
                else:
                    if response.status_code == 200:
                        run.acked.add(i)
                        if len(run.acked) >= SIGNAL_AFTER:
                            reached.set()
                        return
                    kind = response.headers.get("content-type", "")
                    run.refusals.append((response.status_code, kind, response.content))
                await restarted.wait()  # Meta posts it again later
                await anyio.sleep(0.02)
        finally:
            slots.release()

    slots = anyio.Semaphore(CONCURRENCY)
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(terminate_and_restart)
            for i in range(TOTAL):
                await slots.acquire()
                tg.start_soon(deliver, i, slots)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def sigterm(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SigtermRun]:
    """The SIGTERM scenario, run once on a server of its own and a fresh database of each backend."""
    workdir = tmp_path_factory.mktemp("sigterm")
    url, drop = await anyio.to_thread.run_sync(make_database, str(request.param), workdir)
    # Rows accepted but unfinished at the stop are replayed after the recovery grace.
    server = ZaplineServer(
        database_url=url, workdir=workdir, extra_env={"ZAPLINE_RECOVERY_GRACE": "0.2"}
    )
    try:
        await anyio.to_thread.run_sync(server.start)
        tenant = await anyio.to_thread.run_sync(lambda: create_tenant(server))
        client, events = await connect_client(server.socket_url, tenant.token)
        run = SigtermRun(server, tenant, events, {w for w, _, _ in webhooks(tenant)})
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(timeout=10.0, limits=limits) as http:
            try:
                await run_scenario(run, http)
            finally:
                if client.connected:
                    await client.disconnect()
            with anyio.move_on_after(10):
                while True:
                    run.stored = await stored_wamids(http, server, tenant)
                    if set(run.stored) >= run.expected:
                        break
                    await anyio.sleep(0.2)
        yield run
    finally:
        try:
            code = await anyio.to_thread.run_sync(server.stop)
            assert code in (0, None), f"the restarted server exited with {code}"
        finally:
            await anyio.to_thread.run_sync(drop)


async def test_sigterm_mid_way_exits_0_within_the_drain_bound(sigterm: SigtermRun) -> None:
    assert sigterm.server.starts == 2
    assert SIGNAL_AFTER <= sigterm.acked_at_signal < TOTAL
    assert sigterm.exit_code == 0, (sigterm.exit_code, sigterm.server.log_tail())
    # Drain (at most ZAPLINE_DRAIN_TIMEOUT) + socket close grace + API stop, with slack.
    assert sigterm.exit_seconds < DRAIN_TIMEOUT + 7, sigterm.exit_seconds
    assert sigterm.acked_before_restart < TOTAL, "some posts must have met the stopping server"
    assert sigterm.refusals or sigterm.transport_errors


async def test_no_accepted_webhook_is_lost_or_doubled(sigterm: SigtermRun) -> None:
    assert len(sigterm.acked) == TOTAL
    doubles = sorted({w for w in sigterm.stored if sigterm.stored.count(w) > 1})
    assert not doubles, f"stored more than once: {doubles[:10]}"
    missing = sorted(sigterm.expected - set(sigterm.stored))
    assert not missing, f"{len(missing)} acknowledged webhooks lost, e.g. {missing[:10]}"
    assert len(sigterm.stored) == TOTAL


async def test_refusals_while_draining_are_503_json(sigterm: SigtermRun) -> None:
    for status, kind, body in sigterm.refusals:
        assert status == 503, (status, body)
        assert kind == "application/json", kind
        assert orjson.loads(body)["error"], body


async def test_readiness_fails_once_draining_starts(sigterm: SigtermRun) -> None:
    statuses = [status for status, _ in sigterm.readiness]
    if 503 in statuses:
        first = statuses.index(503)
        assert set(statuses[first:]) == {503}, f"ready again while draining: {statuses}"
        for _, body in sigterm.readiness[first:]:
            assert body == NOT_ACCEPTING, body
    for status, body in sigterm.readiness:
        assert (status == 200) == body["ready"], body


async def test_the_client_gets_a_proper_close(sigterm: SigtermRun) -> None:
    # python-socketio reports "server disconnect" for a close packet, "transport error" for a
    # dropped connection.
    assert sigterm.events.named("disconnect") == ["server disconnect"]
