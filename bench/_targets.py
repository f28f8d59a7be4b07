"""Targets: the servers under test (Zapline, the python-socketio and Node.js baselines, or one
already running), started on free loopback ports with what a client needs to use them.

Target names in results: ``zapline``, ``baseline`` (python-socketio: the name it had before
there was a second baseline, kept so older results still compare) and ``node``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import jwt

from bench._procs import ProcessSet, ProcSample, free_port, sample_tree, wait_ready
from bench._seed import phone_number_id


@dataclass
class Target:
    """A server under test and what a client needs to use it."""

    name: str
    api_url: str
    socket_url: str
    jwt_secret: str
    tenant_ids: list[str]
    phone_number_ids: list[str]
    pid: int | None = None
    meta: dict[str, str] = field(default_factory=dict)
    # where webhooks are posted, when not api_url: Zapline's Socket.IO port (its fast path)
    webhook_url: str | None = None

    @property
    def post_url(self) -> str:
        """Return the base URL webhooks are posted to (``/webhooks/whatsapp`` under it)."""
        return self.webhook_url or self.api_url

    def token(self, tenant: int, user: int) -> str:
        """Return an agent JWT for tenant index ``tenant``, valid one hour."""
        claims = {
            "sub": f"bench-user-{user}",
            "tenantId": self.tenant_ids[tenant],
            "role": "agent",
            "exp": int(time.time()) + 3600,
        }
        return jwt.encode(claims, self.jwt_secret, algorithm="HS256")

    def sample(self) -> ProcSample | None:
        """Return a /proc sample of the server, None when its pid is unknown."""
        return None if self.pid is None else sample_tree(self.pid)


def _pnid(t: int) -> str:
    return phone_number_id(t)


NODE_DIR = Path(__file__).resolve().parent / "baselines" / "node"


def _baseline_env(workdir: Path, tenants: int) -> tuple[str, list[str], list[str], dict[str, str]]:
    """Return (secret, tenant ids, phone_number_ids, env) for a baseline with ``tenants``."""
    secret = uuid.uuid4().hex
    tenant_ids = [str(uuid.uuid4()) for _ in range(tenants)]
    pnids = [_pnid(t) for t in range(tenants)]
    map_file = workdir / "baseline-tenants.json"
    map_file.write_text(json.dumps(dict(zip(pnids, tenant_ids, strict=True))))
    env = {**os.environ, "JWT_SECRET": secret, "BENCH_TENANT_MAP": str(map_file)}
    return secret, tenant_ids, pnids, env


def node_missing() -> str | None:
    """Return why the Node.js baseline cannot start here (None when it can)."""
    if shutil.which("node") is None:
        return "Node.js is not installed (apt-get install nodejs npm)"
    if not (NODE_DIR / "node_modules" / "socket.io").is_dir():
        return f"socket.io is not installed: run `npm ci` in {NODE_DIR} (make bench does)"
    return None


def start_node(procs: ProcessSet, workdir: Path, tenants: int) -> Target:
    """Start the Node.js socket.io baseline with ``tenants`` tenants; returns its Target.

    Raises RuntimeError when node or its socket.io is missing, or it does not become ready.
    """
    missing = node_missing()
    if missing is not None:
        raise RuntimeError(missing)
    secret, tenant_ids, pnids, env = _baseline_env(workdir, tenants)
    port = free_port()
    log = workdir / "node.log"
    node = shutil.which("node") or "node"
    argv = [node, str(NODE_DIR / "server.mjs"), "--host", "127.0.0.1", "--port", str(port)]
    proc = procs.start(argv, env, log, pin=True)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, log)
    return Target("node", url, url, secret, tenant_ids, pnids, proc.pid, {"log": str(log)})


def start_baseline(procs: ProcessSet, workdir: Path, tenants: int) -> Target:
    """Start the python-socketio baseline with ``tenants`` tenants; returns its Target.

    Raises RuntimeError if it does not become ready.
    """
    secret, tenant_ids, pnids, env = _baseline_env(workdir, tenants)
    port = free_port()
    log = workdir / "baseline.log"
    argv = [
        sys.executable,
        "-m",
        "bench.baselines.psio_server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = procs.start(argv, env, log, pin=True)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, log)
    return Target("baseline", url, url, secret, tenant_ids, pnids, proc.pid, {"log": str(log)})


def zapline_env(workdir: Path, secret: str) -> dict[str, str]:
    """Return the environment a harness-started Zapline (server and admin CLI) runs with."""
    return {
        **os.environ,
        "ZAPLINE_ENV": "dev",
        "JWT_SECRET": secret,
        "ZAPLINE_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
    }


def create_tenants(env: dict[str, str], tenants: int, log: Path) -> tuple[list[str], list[str]]:
    """Create ``tenants`` tenants with one WhatsApp account each via the admin CLI.

    The CLI's commands run in one interpreter (``bench._seed``). Returns (tenant ids,
    phone_number_ids) in tenant order. Raises RuntimeError when a command fails or the
    tenants are not all there.
    """
    out = _run([sys.executable, "-m", "bench._seed", str(tenants)], env, log)
    rows = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    if len(rows) != tenants:
        raise RuntimeError(f"bench._seed made {len(rows)} of {tenants} tenants:\n{out}")
    return [str(r["id"]) for r in rows], [str(r["phoneNumberId"]) for r in rows]


def _run(argv: list[str], env: dict[str, str], log: Path) -> str:
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    with open(log, "a") as f:
        f.write(f"$ {' '.join(argv)}\n{r.stdout}{r.stderr}")
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[2:])} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def start_zapline(
    procs: ProcessSet, workdir: Path, tenants: int, webhook_port: str = "socket"
) -> Target:
    """Start ``python -m zapline serve`` on a fresh SQLite file and create tenants; returns it.

    ``webhook_port``: ``socket`` posts webhooks to the Socket.IO port (the engine's listener,
    the cheaper path: api/webhook_engine.py), ``api`` to the API port (Hypercorn).

    Raises RuntimeError if it does not become ready or the admin CLI fails.
    """
    secret = uuid.uuid4().hex
    env = zapline_env(workdir, secret)
    api_port, sock_port = free_port(), free_port()
    log = workdir / "zapline.log"
    argv = [sys.executable, "-m", "zapline", "serve", "--host", "127.0.0.1",
            "--port", str(api_port), "--socket-port", str(sock_port)]  # fmt: skip
    proc = procs.start(argv, env, log, pin=True)
    api = f"http://127.0.0.1:{api_port}"
    wait_ready(api, proc, log)
    tenant_ids, pnids = create_tenants(env, tenants, workdir / "cli.log")
    sock = f"http://127.0.0.1:{sock_port}"
    meta = {"log": str(log), "webhook_port": webhook_port}
    post = sock if webhook_port == "socket" else api
    return Target("zapline", api, sock, secret, tenant_ids, pnids, proc.pid, meta, post)


def external_target(
    api_url: str,
    socket_url: str,
    tenants: int,
    tenants_file: str | None,
    server_pid: int | None,
    webhook_port: str = "api",
) -> Target:
    """Describe a server that is already running; returns its Target.

    The JWT secret comes from env JWT_SECRET. Tenants come from ``tenants_file`` (JSON list of
    {"id", "phoneNumberId"}) or else are created with the admin CLI in this environment.
    Raises RuntimeError without JWT_SECRET, or when the file has fewer than ``tenants``.
    """
    secret = os.environ.get("JWT_SECRET")
    if not secret:
        raise RuntimeError("set JWT_SECRET to the running server's secret")
    if tenants_file:
        rows = json.loads(Path(tenants_file).read_text())[:tenants]
        if len(rows) < tenants:
            raise RuntimeError(f"{tenants_file} lists {len(rows)} tenants, {tenants} needed")
        ids, pnids = [str(r["id"]) for r in rows], [str(r["phoneNumberId"]) for r in rows]
    else:
        ids, pnids = create_tenants(dict(os.environ), tenants, Path(os.devnull))
    api, sock = api_url.rstrip("/"), socket_url.rstrip("/")
    post = sock if webhook_port == "socket" else api
    return Target("external", api, sock, secret, ids, pnids, server_pid, webhook_url=post)
