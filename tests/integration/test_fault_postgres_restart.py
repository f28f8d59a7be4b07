"""PostgreSQL stopped and started under load: intake says 503, nothing acknowledged is lost.

The test runs a PostgreSQL cluster of its own (``initdb`` into a temp directory, a free
loopback port, started and stopped with ``pg_ctl -D`` on that directory only: the shared
server on 5432 is never touched), points a ``zapline serve`` at it and posts signed webhooks
at a steady rate while it stops the cluster (``fast``, then ``immediate`` mode) and starts it
again. While it is down, intake answers 503 with a JSON body and ``/readyz`` fails; once it is
back, every webhook that was answered 200 ends stored, with no restart of Zapline.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import orjson
import pytest
from _desk_harness import ZaplineServer, create_tenant, post_webhook, stored_wamids

from desk.whatsapp import text_message_webhook

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

RATE = 20  # webhooks per second, all through the outages
OUTAGE = 2.0  # seconds PostgreSQL stays down each time
PER_PHASE = 20  # webhooks answered 200 before each outage and after the last


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """The server is a subprocess; the test's own clients run on asyncio."""
    return "asyncio"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    """A PostgreSQL cluster of this test only: its data directory, port and binaries."""

    bin: Path
    data: Path
    port: int
    as_user: list[str]  # the prefix that runs a command as the cluster's owner

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        """Run ``pg_ctl -D <our data directory> ARGS``; raise with its output if it fails."""
        command = [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"{' '.join(command)}: {done.stdout}{done.stderr}"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}"
        self.pg_ctl("start", "-w", "-t", "30", "-l", str(self.data / "server.log"), "-o", options)

    def stop(self, mode: str) -> None:
        self.pg_ctl("stop", "-w", "-t", "30", "-m", mode)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        _unavailable("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    bin_dir = Path(found[-1]).parent
    as_user: list[str] = []
    # initdb refuses to run as root: run the cluster as the postgres account then.
    root = Path(tempfile.mkdtemp(prefix="zapline-pg-"))
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            _unavailable("running as root without runuser: cannot run PostgreSQL as postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    initdb = [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres"]
    done = subprocess.run(
        [*initdb, "--auth=trust", "--no-sync", "-E", "UTF8"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        _unavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
    own = Cluster(bin_dir, data, _free_port(), as_user)
    try:
        own.start()
        yield own
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "stop", "-m", "immediate"],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Posted:
    wamid: str
    status: int
    body: bytes


async def _post_steadily(
    http: httpx.AsyncClient,
    server: ZaplineServer,
    phone_number_id: str,
    secret: str | None,
    posted: list[Posted],
    stop: anyio.Event,
) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        wamid = f"wamid.pgrestart.{n:05d}"
        body = text_message_webhook(
            phone_number_id=phone_number_id,
            wa_id=f"55117{n % 7:07d}",
            wamid=wamid,
            body=f"message {n}",
        )
        try:
            response = await post_webhook(http, server, body, secret=secret)
            posted.append(Posted(wamid, response.status_code, response.content))
        except httpx.TransportError as exc:  # Zapline itself must keep answering
            posted.append(Posted(wamid, 0, repr(exc).encode()))
        await anyio.sleep(1 / RATE)


async def _accepted_more(posted: list[Posted], count: int) -> None:
    """Return once ``count`` more webhooks were answered 200 (however slow the machine)."""
    goal = sum(p.status == 200 for p in posted) + count
    with anyio.fail_after(60):
        while sum(p.status == 200 for p in posted) < goal:  # noqa: ASYNC110
            await anyio.sleep(0.05)


async def _wait_status(http: httpx.AsyncClient, url: str, code: int, within: float) -> None:
    with anyio.fail_after(within):
        while (await http.get(url)).status_code != code:  # noqa: ASYNC110 (another process)
            await anyio.sleep(0.1)


async def test_intake_survives_postgres_stopped_and_started(
    cluster: Cluster, tmp_path: Path
) -> None:
    server = ZaplineServer(
        database_url=cluster.url,
        workdir=tmp_path,
        extra_env={"ZAPLINE_INBOX_SWEEP_INTERVAL": "1", "ZAPLINE_RECOVERY_GRACE": "0"},
    )
    server.start()
    try:
        tenant = await anyio.to_thread.run_sync(lambda: create_tenant(server))
        posted: list[Posted] = []
        stop = anyio.Event()
        readyz = f"{server.api_url}/readyz"
        async with httpx.AsyncClient(timeout=10) as http, anyio.create_task_group() as tg:
            tg.start_soon(
                _post_steadily, http, server, tenant.phone_number_id, tenant.app_secret,
                posted, stop,
            )  # fmt: skip
            for mode in ("fast", "immediate"):
                await _accepted_more(posted, PER_PHASE)  # load before the outage
                await anyio.to_thread.run_sync(cluster.stop, mode)
                before = len(posted)
                await anyio.sleep(OUTAGE)
                with anyio.fail_after(30):  # at least one webhook met the outage
                    while not any(p.status == 503 for p in posted[before:]):  # noqa: ASYNC110
                        await anyio.sleep(0.05)
                refused = [p for p in posted[before:] if p.status == 503]
                for p in refused:
                    assert isinstance(orjson.loads(p.body), dict), p.body[:200]  # a JSON body
                assert (await http.get(readyz)).status_code == 503
                await anyio.to_thread.run_sync(cluster.start)
                await _wait_status(http, readyz, 200, within=30)
            await _accepted_more(posted, PER_PHASE)  # load after the last outage
            stop.set()

        assert server.proc is not None and server.proc.poll() is None, server.log_tail()
        assert server.starts == 1
        assert all(p.status in (200, 503) for p in posted), {p.status for p in posted}
        accepted = [p.wamid for p in posted if p.status == 200]
        async with httpx.AsyncClient(timeout=10) as http:
            with anyio.fail_after(60):
                while True:
                    stored = await stored_wamids(http, server, tenant)
                    if set(accepted) <= set(stored):
                        break
                    await anyio.sleep(0.5)
        assert sorted(stored) == sorted(set(stored)), "a message stored twice"
        assert set(stored) <= {p.wamid for p in posted}
        async with httpx.AsyncClient(timeout=10) as http:
            metrics = (await http.get(f"{server.api_url}/metrics")).text
        assert "\nzapline_dead_letters_total 0" in metrics  # an outage is not a reason to give up
    finally:
        server.stop()
    # An outage is expected weather, not a bug: no traceback from Zapline. (asyncpg's pool
    # logs its own reconnect attempts with one, at WARNING: that is the driver's, not ours.)
    records = [orjson.loads(line) for line in server.log_path.read_text().splitlines()
               if line.startswith("{")]  # fmt: skip
    ours = [
        r for r in records if "Traceback" in str(r.get("exc", "")) and r["logger"] != "asyncpg.pool"
    ]
    assert ours == [], ours[:2]
