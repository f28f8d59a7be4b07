"""SQLite's disk fills while an acknowledged webhook is processed: nothing is lost or given up.

A real full disk: the server's database lives on a small tmpfs that the test fills with a
file. The webhook is already durable in the inbox (written through the storage API, exactly
as the intake's commit leaves it after its 200); the server's inbox sweep picks it up, its
processing meets ``SQLITE_FULL`` and waits for storage instead of spending attempts and being
dead-lettered. Once space is freed, the message is stored and announced without a restart.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import anyio
import httpx
import orjson
import pytest
from _desk_harness import EventLog, SocketFactory, ZaplineServer, create_tenant

from desk.whatsapp import text_message_webhook
from storage import open_storage

pytestmark = pytest.mark.anyio

DISK_BYTES = 16 * 1024 * 1024
T = TypeVar("T")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """The server is a subprocess; the test's own clients run on asyncio."""
    return "asyncio"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_BYTES mounted for the test (needs root; CI runs as root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a small tmpfs here ({mounted.stderr.strip()}); needs root"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the filesystem is full; return it (delete it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (256 * 1024, 4096, 512, 1):  # the last partial chunks too
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


async def eventually(
    read: Callable[[], Awaitable[T]], ok: Callable[[T], bool], *, within: float = 10.0
) -> T:
    """Poll ``read()`` until ``ok`` holds for its value; return it. Fails after ``within`` s."""
    with anyio.fail_after(within):
        while True:
            value = await read()
            if ok(value):
                return value
            await anyio.sleep(0.1)


async def metric(http: httpx.AsyncClient, server: ZaplineServer, name: str) -> float:
    text = (await http.get(f"{server.api_url}/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_an_acknowledged_message_waits_out_a_full_disk(
    small_disk: Path, tmp_path: Path, sio: SocketFactory
) -> None:
    url = f"sqlite:///{small_disk / 'desk.db'}"
    server = ZaplineServer(
        database_url=url,
        workdir=tmp_path,
        extra_env={"ZAPLINE_INBOX_SWEEP_INTERVAL": "1", "ZAPLINE_RECOVERY_GRACE": "0"},
    )
    server.start()
    try:
        tenant = await anyio.to_thread.run_sync(lambda: create_tenant(server, app_secret=None))
        _, events = await sio(server.socket_url, tenant.token)
        events: EventLog
        body = orjson.dumps(
            text_message_webhook(
                phone_number_id=tenant.phone_number_id,
                wa_id="5511700000321",
                wamid="wamid.diskfull",
                body="stored after the outage",
            )
        )
        # The webhook is durable, as the intake leaves it once it answered 200.
        async with await open_storage(url) as storage:
            [inbox_id] = await storage.inbox_append([body])
        filler = fill(small_disk)

        async with httpx.AsyncClient(timeout=10) as http:

            def waiting() -> Awaitable[float]:
                return metric(http, server, "zapline_jobs_waiting_storage")

            await eventually(waiting, lambda n: n >= 1, within=20)
            await anyio.sleep(3)  # several attempts' worth of backoff
            assert await metric(http, server, "zapline_dead_letters_total") == 0
            assert events.named("message:new") == []
            # Readiness is writability: a load balancer stops sending work here meanwhile.
            ready = await http.get(f"{server.api_url}/readyz")
            assert ready.status_code == 503, ready.text

            filler.unlink()
            (new,) = await events.wait_for("message:new", within=15)
            assert new["message"]["content"] == "stored after the outage"
            assert await metric(http, server, "zapline_dead_letters_total") == 0
            await eventually(waiting, lambda n: n == 0, within=10)

            async def readyz() -> int:
                return (await http.get(f"{server.api_url}/readyz")).status_code

            await eventually(readyz, lambda code: code == 200, within=10)
        await events.expect_none("message:new", within=1.5)

        async with await open_storage(url) as storage:
            assert await storage.count_messages(tenant.id) == 1
            assert await storage.list_dead_letters() == []
            await eventually(
                storage.inbox_pending, lambda rows: inbox_id not in [r.id for r in rows]
            )
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "waits for storage to return" in log
    assert "Traceback" not in log, "an outage is expected weather, not a traceback"
