"""``make soak``: a desk's long day, compressed, with the promises checked at the end.

    python -m bench.soak                     # 10 minutes, 1000 clients, 20 webhooks/s
    python -m bench.soak --seconds 60        # the CI version
    python -m bench.soak --clients 0 --rate 100 --seconds 300 --no-outage   # memory only

One ``zapline serve`` on loopback, its SQLite file on a small tmpfs of its own. Raw
websocket clients stay connected while some of them, picked at random every second, drop
and come back. Signed-off webhooks arrive at a steady rate. In the middle, the tmpfs is
filled with a file (SQLite meets a real ``SQLITE_FULL``), held full, then freed: webhooks
answered 503 meanwhile are not acknowledged, so they are not owed; they are counted apart
and posted again once the disk is back, as Meta retries them.

At the end, once the server has processed everything: every webhook answered 200 is a
stored message (no loss), no WhatsApp message id is stored twice, the server's RSS grew by
less than 10 % from the end of the warm-up, and it runs no more tasks than it did then
(``zapline_tasks``). Progress lines while it runs; one JSON summary line last; exit status
1 when a promise failed, 2 when the tmpfs cannot be mounted (it needs root).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._client import BenchClient, ClientPool
from bench._procs import ProcessSet, free_port, pin_load_generator, sample_tree, wait_ready
from bench._scrape import Samples, scrape
from bench._targets import create_tenants, zapline_env
from bench._webhook import HttpPoster, WebhookPlan

RSS_GROWTH_LIMIT_PCT = 10.0
# WebhookPlan's message ids: wamid.bench.<run id>.<seq>
_WAMID = re.compile(rb'"id":"wamid\.bench\.[0-9a-f]+\.(\d+)"')


@dataclass
class Options:
    """What one soak does; see ``python -m bench.soak --help``."""

    seconds: float = 600.0
    clients: int = 1000
    tenants: int = 10
    rate: float = 20.0
    churn: float = 0.01  # fraction of the clients dropped (and brought back) every second
    outage: bool = True
    outage_s: float | None = None  # default: 10 % of the run, 5 to 60 s
    disk_mb: int = 64
    warmup: float = 0.2  # fraction of the run before RSS and tasks are taken as the baseline
    every: float = 5.0
    task_slack: int = 2  # requests in flight at the instant of the last sample


@dataclass
class Ledger:
    """Per webhook: its last HTTP answer; per seq, the clients that read its message:new."""

    answers: dict[int, int | None] = field(default_factory=dict)
    refused_in_outage: set[int] = field(default_factory=set)
    bodies: dict[int, bytes] = field(default_factory=dict)
    deliveries: int = 0
    stray: int = 0

    def on_answer(self, body: bytes, status: int | None) -> None:
        """Record the answer to one POST (HttpPoster's ``on_answer``)."""
        match = _WAMID.search(body)
        if match is None:
            return
        seq = int(match.group(1))
        if self.answers.get(seq) != 200:  # a 200 is final: a retry cannot un-acknowledge it
            self.answers[seq] = status
        if status == 503:
            self.refused_in_outage.add(seq)

    def deliver(self, index: int, tenant: int, seq: int, sent_ns: int, now_ns: int) -> None:
        """Count one message:new read by a client (the ClientPool ledger interface)."""
        self.deliveries += 1

    def acked(self) -> set[int]:
        """Return the seqs whose webhook was answered 200."""
        return {seq for seq, status in self.answers.items() if status == 200}


def _mount_tmpfs(path: Path, size_mb: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise PermissionError(
            f"cannot mount a {size_mb} MB tmpfs at {path} ({done.stderr.strip() or 'no reason'}):"
            " the storage outage needs root (CI runs as root); run as root, or pass"
            " --no-outage to soak without it"
        )


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 20, 4096, 512, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


def _value(samples: Samples | None, name: str, **labels: str) -> float | None:
    if samples is None:
        return None
    return samples.get((name, tuple(sorted(labels.items()))))


class Soak:
    """One soak run against a server it starts; :meth:`run` returns the summary."""

    def __init__(self, opts: Options, workdir: Path) -> None:
        self.opts = opts
        self.workdir = workdir
        self.disk = workdir / "disk"
        self.ledger = Ledger()
        self.t0 = time.monotonic()
        self.samples: list[dict[str, Any]] = []
        self.dropped = 0
        self.server_drops = 0
        self.reconnected = 0
        self.reconnect_failures: Counter[str] = Counter()
        self.outage: dict[str, float] = {}
        self.pool: ClientPool | None = None
        self.api = ""
        self.pid = 0

    def _t(self) -> float:
        return round(time.monotonic() - self.t0, 1)

    def sample(self, poster: HttpPoster) -> dict[str, Any]:
        """Take RSS, tasks and backlog of the server now; print them as a progress line."""
        metrics = scrape(self.api)
        rss = sample_tree(self.pid).rss_bytes / 2**20
        pool = self.pool
        row = {
            "t": self._t(),
            "rss_mb": round(rss, 1),
            "tasks": _value(metrics, "zapline_tasks"),
            "pending": _value(metrics, "zapline_inbox", state="pending"),
            "waiting_storage": _value(metrics, "zapline_jobs_waiting_storage"),
            "open": sum(c.open for c in pool.clients) if pool else 0,
            "posted": poster.submitted,
            "statuses": dict(poster.statuses),
            "deliveries": self.ledger.deliveries,
        }
        self.samples.append(row)
        print("soak " + " ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        return row

    async def _churn(self, until: float) -> None:
        pool = self.pool
        if pool is None or not pool.clients:
            return
        loop = asyncio.get_running_loop()
        per_second = max(1, round(len(pool.clients) * self.opts.churn))
        while time.monotonic() < until:
            await asyncio.sleep(1.0)
            for index in random.sample(range(len(pool.clients)), per_second):
                client = pool.clients[index]
                if client.open:
                    client.close()
                    self.dropped += 1
                    loop.create_task(self._reconnect(index, random.uniform(0.2, 3.0)))

    async def _reconnect(self, index: int, delay: float) -> None:
        pool = self.pool
        assert pool is not None
        await asyncio.sleep(delay)
        old = pool.clients[index]
        client = BenchClient(pool, index, old.tenant, old.token)
        pool.clients[index] = client
        try:
            async with asyncio.timeout(15):
                await asyncio.get_running_loop().create_connection(
                    lambda: client, pool.host, pool.port
                )
                await client.connected
            self.reconnected += 1
        except (OSError, TimeoutError, ConnectionError) as exc:
            self.reconnect_failures[f"{type(exc).__name__}: {str(exc)[:60]}"] += 1

    async def _outage(self, start: float, hold: float, poster: HttpPoster) -> None:
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        filler = await asyncio.to_thread(_fill, self.disk)
        self.outage["start_s"] = self._t()
        print(f"soak t={self._t()} outage: {self.disk} filled", flush=True)
        await asyncio.sleep(hold)
        filler.unlink()
        self.outage["end_s"] = self._t()
        print(f"soak t={self._t()} outage: space freed", flush=True)
        await asyncio.sleep(2.0)  # as Meta would: the refused webhooks come again later
        again = sorted(s for s in self.ledger.refused_in_outage if self.ledger.answers[s] != 200)
        for seq in again:
            poster.submit(self.ledger.bodies[seq])
        self.outage["reposted"] = len(again)

    async def _post(self, poster: HttpPoster, plan: WebhookPlan, until: float) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        i = 0
        while time.monotonic() < until:
            delay = start + i / self.opts.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            seq = i + 1
            _, body = plan.body(i, seq, time.time_ns())
            self.ledger.bodies[seq] = body
            poster.submit(body)
            i += 1

    async def _settle(self, poster: HttpPoster, limit_s: float = 120.0) -> bool:
        """Wait until every POST is answered and the server has processed everything."""
        deadline = time.monotonic() + limit_s
        await poster.drain(limit_s)
        while time.monotonic() < deadline:
            m = scrape(self.api)
            backlog = [
                _value(m, "zapline_inbox", state="pending"),
                _value(m, "zapline_jobs_waiting_storage"),
                _value(m, "zapline_jobs_running"),
                *(v for (name, _), v in (m or {}).items() if name == "zapline_queue_depth"),
            ]
            if m is not None and not any(backlog):
                return True
            await asyncio.sleep(0.5)
        return False

    async def run(self, procs: ProcessSet) -> dict[str, Any]:
        """Run the soak; return the summary (``passed`` and ``failures`` included)."""
        opts = self.opts
        if opts.outage:
            _mount_tmpfs(self.disk, opts.disk_mb)
        else:
            self.disk.mkdir(parents=True, exist_ok=True)
        env = zapline_env(self.disk, uuid.uuid4().hex)
        env.update(
            ZAPLINE_INBOX_SWEEP_INTERVAL="2",
            ZAPLINE_INBOX_RETENTION="30",
            ZAPLINE_LOG_LEVEL="warning",
        )
        api_port, sock_port = free_port(), free_port()
        log = self.workdir / "zapline.log"
        argv = [sys.executable, "-m", "zapline", "serve", "--host", "127.0.0.1",
                "--port", str(api_port), "--socket-port", str(sock_port)]  # fmt: skip
        proc = procs.start(argv, env, log, pin=True)
        self.api, self.pid = f"http://127.0.0.1:{api_port}", proc.pid
        wait_ready(self.api, proc, log)
        tenant_ids, pnids = create_tenants(env, opts.tenants, self.workdir / "cli.log")
        secret = env["JWT_SECRET"]
        tokens = [(i % opts.tenants, _token(secret, tenant_ids[i % opts.tenants], i))
                  for i in range(opts.clients)]  # fmt: skip
        self.pool = ClientPool(f"http://127.0.0.1:{sock_port}", tokens)
        self.pool.ledger = self.ledger  # type: ignore[assignment]
        report = await self.pool.connect_all()
        print(f"soak connected {report.connected}/{opts.clients} clients in {report.wall_s:.1f} s",
              flush=True)  # fmt: skip
        plan = WebhookPlan(pnids, 50, uuid.uuid4().hex[:8])
        self.t0 = time.monotonic()
        end = self.t0 + opts.seconds
        warm_at = self.t0 + opts.seconds * opts.warmup
        hold = opts.outage_s or min(60.0, max(5.0, opts.seconds * 0.1))
        baseline: dict[str, Any] = {}
        async with HttpPoster(self.api, connections=8, on_answer=self.ledger.on_answer) as poster:
            work = [
                asyncio.create_task(self._post(poster, plan, end)),
                # churn stops a little before the end, so every client is back for the count
                asyncio.create_task(self._churn(end - 5.0)),
            ]
            if opts.outage:
                start = self.t0 + opts.seconds * 0.5 - hold / 2
                work.append(asyncio.create_task(self._outage(start, hold, poster)))
            while time.monotonic() < end:
                await asyncio.sleep(min(opts.every, max(0.0, end - time.monotonic())))
                row = self.sample(poster)
                if not baseline and time.monotonic() >= warm_at:
                    baseline = row
                    print(f"soak t={self._t()} warm-up over: baseline rss={row['rss_mb']} MB "
                          f"tasks={row['tasks']}", flush=True)  # fmt: skip
            await asyncio.gather(*work)
            settled = await self._settle(poster)
            await asyncio.sleep(1.0)
            final = self.sample(poster)
            post_errors = dict(poster.errors)
        # every drop the soak did not make itself: the server's (or the network's)
        self.server_drops = self.pool.disconnects - self.dropped
        await self.pool.close_all()
        stored = _stored(self.disk / "bench.db", plan.run_id)
        return self._summary(baseline or final, final, stored, settled, post_errors)

    def _summary(
        self,
        baseline: dict[str, Any],
        final: dict[str, Any],
        stored: Counter[int],
        settled: bool,
        post_errors: dict[str, int],
    ) -> dict[str, Any]:
        opts, ledger = self.opts, self.ledger
        acked = ledger.acked()
        lost = sorted(acked - set(stored))
        duplicates = sum(n - 1 for n in stored.values() if n > 1)
        growth = 100 * (final["rss_mb"] - baseline["rss_mb"]) / baseline["rss_mb"]
        # A sample can catch a request or a reconnect in flight: the warm-up's highest count
        # is the baseline, so only tasks that stay (a leak) count as growth.
        warm = [s["tasks"] for s in self.samples if s["t"] <= baseline["t"] and s["tasks"]]
        tasks0, tasks1 = max(warm, default=baseline.get("tasks")), final.get("tasks")
        statuses = Counter(str(s) for s in ledger.answers.values())
        failures = []
        if lost:
            failures.append(f"{len(lost)} acknowledged webhooks not stored (first {lost[:5]})")
        if duplicates:
            failures.append(f"{duplicates} duplicate stored messages")
        if growth >= RSS_GROWTH_LIMIT_PCT:
            failures.append(
                f"RSS grew {growth:.1f} % after warm-up (limit {RSS_GROWTH_LIMIT_PCT} %)"
            )
        if tasks0 is None or tasks1 is None:
            failures.append("zapline_tasks missing from /metrics")
        elif tasks1 > tasks0 + opts.task_slack:
            failures.append(f"tasks grew from {tasks0:.0f} to {tasks1:.0f}")
        if self.server_drops:
            failures.append(f"{self.server_drops} clients dropped by the server")
        if opts.outage and not ledger.refused_in_outage:
            failures.append("the full disk refused no webhook: the outage was not one")
        if not settled:
            failures.append("the server did not finish processing within 120 s")
        return {
            "scenario": "soak",
            "seconds": opts.seconds,
            "clients": opts.clients,
            "tenants": opts.tenants,
            "rate": opts.rate,
            "posted": len(ledger.answers),
            "acked": len(acked),
            "final_statuses": dict(statuses),
            "refused_in_outage": len(ledger.refused_in_outage),
            "post_errors": post_errors,
            "outage": self.outage or None,
            "stored": len(stored),
            "lost": len(lost),
            "duplicates": duplicates,
            "deliveries": ledger.deliveries,
            "dropped_by_us": self.dropped,
            "reconnected": self.reconnected,
            "reconnect_failures": dict(self.reconnect_failures),
            "server_drops": self.server_drops,
            "open_at_end": final["open"],
            "rss_mb_warm": baseline["rss_mb"],
            "rss_mb_end": final["rss_mb"],
            "rss_mb_max": max(s["rss_mb"] for s in self.samples),
            "rss_growth_pct": round(growth, 2),
            "tasks_warm": tasks0,
            "tasks_end": tasks1,
            "passed": not failures,
            "failures": failures,
        }


def _token(secret: str, tenant_id: str, user: int) -> str:
    import jwt

    claims = {"sub": f"soak-user-{user}", "tenantId": tenant_id, "role": "agent",
              "exp": int(time.time()) + 24 * 3600}  # fmt: skip
    return jwt.encode(claims, secret, algorithm="HS256")


def _stored(db: Path, run_id: str) -> Counter[int]:
    """Return, per seq of this run, how many messages carry its WhatsApp message id."""
    prefix = f"wamid.bench.{run_id}."
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT whatsapp_message_id, count(*) FROM messages"
            " WHERE whatsapp_message_id LIKE ? GROUP BY whatsapp_message_id",
            (prefix + "%",),
        ).fetchall()
    return Counter({int(wamid[len(prefix) :]): n for wamid, n in rows})


def build_parser() -> argparse.ArgumentParser:
    """Return the command line of ``python -m bench.soak``."""
    d = Options()
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=d.seconds, help="length of the run")
    p.add_argument("--clients", type=int, default=d.clients)
    p.add_argument("--tenants", type=int, default=d.tenants)
    p.add_argument("--rate", type=float, default=d.rate, help="webhooks per second")
    p.add_argument("--churn", type=float, default=d.churn,
                   help="fraction of the clients dropped and reconnected every second")  # fmt: skip
    p.add_argument("--no-outage", dest="outage", action="store_false",
                   help="no storage outage (and no tmpfs: runs without root)")  # fmt: skip
    p.add_argument("--outage-seconds", dest="outage_s", type=float, default=None)
    p.add_argument("--disk-mb", type=int, default=d.disk_mb, help="size of the tmpfs")
    p.add_argument("--every", type=float, default=d.every, help="seconds between samples")
    p.add_argument("--workdir", default=None, help="keep the server log and database here")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one soak; print its JSON summary last; return 0 passed, 1 failed, 2 no tmpfs."""
    args = build_parser().parse_args(argv)
    opts = Options(**{k: v for k, v in vars(args).items() if k != "workdir"})
    pin_load_generator()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="zapline-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    soak = Soak(opts, workdir)
    try:
        with ProcessSet() as procs:
            summary = asyncio.run(soak.run(procs))
    except PermissionError as exc:
        print(f"soak: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        if opts.outage:
            subprocess.run(["umount", "-l", str(soak.disk)], capture_output=True, check=False)
    summary["workdir"] = str(workdir)
    print(json.dumps(summary), flush=True)
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
