"""Issue 5's life cycle, the drain window held open: what happens between SIGTERM and exit.

The server runs one worker and its Cloud API is a loopback stand-in that answers a send only
when the test releases it. An agent's reply keeps the worker busy, so webhooks acknowledged
after it stay queued, and the test decides when the drain can progress. That makes the window
deterministic: readiness is 503, new webhooks get 503, the running send holds the exit, sockets
close after the drain, and what was queued at the signal is stored after the restart. A second
signal during a long drain ends the process at once. SQLite only: the drain is the runtime's,
not the storage's (the SIGTERM scenario in ``test_ops_lifecycle.py`` runs on both).
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import orjson
import pytest
import socketio
from _desk_harness import (
    EventLog,
    Tenant,
    ZaplineServer,
    auth,
    connect_client,
    create_tenant,
    post_webhook,
    stored_wamids,
)

from desk.whatsapp import text_message_webhook

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

NOT_ACCEPTING = {"ready": False, "checks": {"storage": True, "queues": True, "accepting": False}}


class GatedCloud:
    """A loopback stand-in for the Cloud API's send endpoint that answers only once released.

    Each request is read whole, counted, and parked until ``release`` is set; then it gets a
    Graph-shaped 200 with a fresh wamid. While a send is parked, the server's only worker
    (``ZAPLINE_WORKERS=1``) is busy, so later jobs stay queued: the test decides when the drain
    can make progress.
    """

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.arrived = anyio.Event()
        self.requests = 0
        self.port = 0

    async def serve(self, *, task_status: anyio.abc.TaskStatus[int]) -> None:
        """Listen on a free loopback port (reported through ``task_status``) until cancelled."""
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        self.port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
        task_status.started(self.port)
        await listener.serve(self._answer)

    async def _answer(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    data += await stream.receive()
                head, _, body = data.partition(b"\r\n\r\n")
                match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                while len(body) < (int(match.group(1)) if match else 0):
                    body += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return
            self.requests += 1
            self.arrived.set()
            await self.release.wait()
            reply = orjson.dumps(
                {
                    "messaging_product": "whatsapp",
                    "messages": [{"id": f"wamid.gated.{self.requests}"}],
                }
            )
            head = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(reply)
            )
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await stream.send(head + reply)


@dataclass
class DrainRun:
    """What the held-open drain observed."""

    not_ready: tuple[int, str, Any] = (0, "", None)
    refused: tuple[int, str, Any] = (0, "", None)
    refused_on_socket_port: tuple[int, str, Any] = (0, "", None)
    alive_while_held: bool = False
    connected_while_held: bool = False
    exit_code: int | None = None
    disconnects: list[Any] = field(default_factory=list)
    queued: set[str] = field(default_factory=set)
    stored_after_restart: list[str] = field(default_factory=list)
    log: str = ""


def gated_server(workdir: Path, cloud_port: int, drain_timeout: float) -> ZaplineServer:
    """A SQLite server with one worker whose Cloud API is the gate on ``cloud_port``."""
    return ZaplineServer(
        database_url=f"sqlite:///{workdir / 'gated.db'}",
        workdir=workdir,
        whatsapp_api_url=f"http://127.0.0.1:{cloud_port}",
        extra_env={
            "ZAPLINE_WORKERS": "1",
            "ZAPLINE_DRAIN_TIMEOUT": str(drain_timeout),
            "ZAPLINE_RECOVERY_GRACE": "0.2",
        },
    )


async def hold_the_worker(
    server: ZaplineServer, tenant: Tenant, gate: GatedCloud, http: httpx.AsyncClient
) -> tuple[socketio.AsyncClient, EventLog]:
    """Connect an agent, open a conversation and reply; return once the reply's send is parked.

    Returns the agent's client and event log.
    """
    client, events = await connect_client(server.socket_url, tenant.token)
    body = text_message_webhook(phone_number_id=tenant.phone_number_id, body="olá")
    response = await post_webhook(http, server, body, secret=tenant.app_secret)
    assert response.status_code == 200, response.text
    (inbound,) = await events.wait_for("message:new")
    reply = await http.post(
        f"{server.api_url}/api/conversations/{inbound['conversationId']}/messages",
        json={"content": "one moment, please"},
        headers=auth(tenant.token),
    )
    assert reply.status_code == 202, reply.text
    with anyio.fail_after(10):
        await gate.arrived.wait()
    return client, events


async def wait_not_ready(http: httpx.AsyncClient, server: ZaplineServer) -> httpx.Response:
    """Poll /readyz until it answers 503; return that answer (AssertionError after 5 s)."""
    with anyio.move_on_after(5):
        while True:
            response = await http.get(f"{server.api_url}/readyz")
            if response.status_code == 503:
                return response
            await anyio.sleep(0.01)
    raise AssertionError(f"/readyz never answered 503 after the signal:\n{server.log_tail()}")


def answer(response: httpx.Response) -> tuple[int, str, Any]:
    """(status, content type, parsed JSON body) of ``response``."""
    return response.status_code, response.headers.get("content-type", ""), response.json()


@dataclass
class Gated:
    """A gated server, its tenant, and an agent whose reply's send is parked at the gate."""

    server: ZaplineServer
    tenant: Tenant
    gate: GatedCloud
    http: httpx.AsyncClient
    events: EventLog


@contextlib.asynccontextmanager
async def gated_desk(workdir: Path, drain_timeout: float) -> AsyncIterator[Gated]:
    """Start a gated server, make a tenant, park a send; on exit disconnect, kill, stop the gate."""
    gate = GatedCloud()
    async with anyio.create_task_group() as tg, httpx.AsyncClient(timeout=10.0) as http:
        port = await tg.start(gate.serve)
        server = gated_server(workdir, port, drain_timeout)
        client: socketio.AsyncClient | None = None
        try:
            await anyio.to_thread.run_sync(server.start)
            tenant = await anyio.to_thread.run_sync(lambda: create_tenant(server))
            client, events = await hold_the_worker(server, tenant, gate, http)
            yield Gated(server, tenant, gate, http, events)
        finally:
            try:
                if client is not None and client.connected:
                    await client.disconnect()
            finally:
                await anyio.to_thread.run_sync(server.kill)
                tg.cancel_scope.cancel()


async def run_held_drain(workdir: Path, run: DrainRun) -> None:
    """SIGTERM while the only worker is busy and webhooks are queued; check; release; restart."""
    async with gated_desk(workdir, drain_timeout=20) as desk:
        server, tenant, http, events = desk.server, desk.tenant, desk.http, desk.events
        try:
            # Acknowledged while the worker is busy: durable, queued, not yet processed.
            for i in range(5):
                wamid = f"wamid.queued.{i}"
                body = text_message_webhook(
                    phone_number_id=tenant.phone_number_id, wamid=wamid, body=f"queued {i}"
                )
                response = await post_webhook(http, server, body, secret=tenant.app_secret)
                assert response.status_code == 200, response.text
                run.queued.add(wamid)
            proc = server.proc
            assert proc is not None
            proc.send_signal(signal.SIGTERM)
            run.not_ready = answer(await wait_not_ready(http, server))
            late = text_message_webhook(phone_number_id=tenant.phone_number_id, body="late")
            run.refused = answer(await post_webhook(http, server, late, secret=tenant.app_secret))
            run.refused_on_socket_port = answer(
                await post_webhook(http, server, late, secret=tenant.app_secret, port="socket")
            )
            await anyio.sleep(0.3)
            run.alive_while_held = proc.poll() is None
            run.connected_while_held = not events.named("disconnect")
            desk.gate.release.set()
            try:
                run.exit_code = await anyio.to_thread.run_sync(proc.wait, 30)
            except subprocess.TimeoutExpired:
                run.exit_code = None
            run.disconnects = events.named("disconnect")
            await anyio.to_thread.run_sync(server.start)
            with anyio.move_on_after(6):
                while True:
                    run.stored_after_restart = await stored_wamids(http, server, tenant)
                    if run.queued <= set(run.stored_after_restart):
                        break
                    await anyio.sleep(0.1)
        finally:
            run.log = server.log_path.read_text()


@pytest.fixture(scope="module")
async def held(tmp_path_factory: pytest.TempPathFactory) -> DrainRun:
    """The held-open drain, run once."""
    run = DrainRun()
    await run_held_drain(Path(tmp_path_factory.mktemp("held")), run)
    return run


async def test_while_draining_readiness_is_503_and_webhooks_get_503(held: DrainRun) -> None:
    assert held.not_ready == (503, "application/json", NOT_ACCEPTING)
    for refused in (held.refused, held.refused_on_socket_port):  # both listeners take posts
        status, kind, body = refused
        assert (status, kind) == (503, "application/json"), refused
        assert isinstance(body["error"], str) and body["error"]


async def test_the_drain_waits_for_running_work_and_sockets_close_after_it(
    held: DrainRun,
) -> None:
    assert held.alive_while_held, "the process must wait for the running send"
    assert held.connected_while_held, "sockets are closed after the drain, not before it"
    assert held.exit_code == 0, held.log[-3000:]
    assert held.disconnects == ["server disconnect"]


async def test_webhooks_queued_when_the_drain_starts_are_not_lost(held: DrainRun) -> None:
    missing = sorted(held.queued - set(held.stored_after_restart))
    dead = [line for line in held.log.splitlines() if "dead" in line]
    assert not missing, (
        f"acknowledged with 200 before SIGTERM, never stored: {missing}; dead letters: {dead[:3]}"
    )
    doubles = sorted(
        {w for w in held.stored_after_restart if held.stored_after_restart.count(w) > 1}
    )
    assert not doubles, doubles


async def test_a_second_signal_during_the_drain_exits_at_once(tmp_path: Path) -> None:
    async with gated_desk(tmp_path, drain_timeout=60) as desk:
        server = desk.server
        proc = server.proc
        assert proc is not None
        proc.send_signal(signal.SIGTERM)
        await wait_not_ready(desk.http, server)
        await anyio.sleep(0.3)
        assert proc.poll() is None, "a drain of up to 60 s is under way"
        proc.send_signal(signal.SIGINT)
        try:
            # "At once": well inside the drain's 60 s; 2 s leaves room for a loaded machine.
            await anyio.to_thread.run_sync(proc.wait, 2)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"alive 2 s after a second signal:\n{server.log_tail()}") from None
    assert "second signal" in server.log_tail(), server.log_tail()
