"""The integration suite's view of Zapline from outside: processes, admin CLI, clients.

Everything here talks to a real ``zapline serve`` subprocess over loopback: the admin CLI
creates tenants, users and numbers; httpx posts webhooks and calls the REST API; python-socketio
listens. Nothing imports the server's internals except ``issue_token`` (the wire contract's
JWT) and the sample/sign helpers of ``desk.whatsapp`` (Meta's shapes, not our logic).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import socketio
from _contract import event_violations

from desk.auth import issue_token
from desk.whatsapp import sign
from zapline.runtime import free_port

ZAPLINE = str(Path(sys.executable).with_name("zapline"))
# 48 characters: PyJWT warns (and filterwarnings=error fails) on HS256 keys under 32 bytes.
JWT_SECRET = "integration-secret-0123456789-abcdefghijklmnopqrstuv"
FAKE_APP_SECRET = "fake-cloud-app-secret"
WEBHOOK_MAX_BYTES = 65536

# ``await sio(url, token, **kw)`` -> ``(client, events)`` (the ``sio`` fixture).
SocketFactory = Callable[..., Awaitable[Any]]


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _stop_process(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM ``proc``, SIGKILL it after ``timeout``; return its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return int(proc.returncode)


@dataclass
class ZaplineServer:
    """One ``zapline serve`` subprocess on fixed loopback ports and one database.

    ``start``/``stop``/``kill`` may be called repeatedly: a restart reuses the ports and the
    database, which is what the crash test needs.
    """

    database_url: str
    workdir: Path
    whatsapp_api_url: str = "http://127.0.0.1:9"
    port: int = field(default_factory=free_port)
    socket_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def api_url(self) -> str:
        """Base URL of the API listener."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def socket_url(self) -> str:
        """Base URL of the Socket.IO listener."""
        return f"http://127.0.0.1:{self.socket_port}"

    @property
    def webhook_url(self) -> str:
        """Where WhatsApp (or the fake) posts webhooks."""
        return f"{self.api_url}/webhooks/whatsapp"

    @property
    def socket_webhook_url(self) -> str:
        """The same webhook POST on the Socket.IO port (api/webhook_engine.py)."""
        return f"{self.socket_url}/webhooks/whatsapp"

    def webhook_url_of(self, port: str) -> str:
        """The webhook URL on the ``api`` or the ``socket`` port."""
        return self.socket_webhook_url if port == "socket" else self.webhook_url

    @property
    def log_path(self) -> Path:
        """The server's combined stdout/stderr across all starts."""
        return self.workdir / "zapline-serve.log"

    def env(self) -> dict[str, str]:
        """The environment every ``zapline`` subprocess of this server runs with."""
        env = {
            k: v
            for k, v in os.environ.items()
            # REDIS_URL too: a server is single-node unless a test asks (extra_env) for Redis.
            if not k.startswith("ZAPLINE_") and k not in ("DATABASE_URL", "REDIS_URL")
        }
        env.update(
            {
                "ZAPLINE_ENV": "test",
                "JWT_SECRET": JWT_SECRET,
                "ZAPLINE_DATABASE_URL": self.database_url,
                "ZAPLINE_DEMO": "1",
                "ZAPLINE_WHATSAPP_API_URL": self.whatsapp_api_url,
                "ZAPLINE_WEBHOOK_MAX_BYTES": str(WEBHOOK_MAX_BYTES),
                "ZAPLINE_DRAIN_TIMEOUT": "3",
                "ZAPLINE_LOG_LEVEL": "info",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and return once ``GET /healthz`` answers 200.

        Raises RuntimeError (with the log's tail) if it exits or is not healthy in time.
        """
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [
                    ZAPLINE,
                    "serve",
                    "--port",
                    str(self.port),
                    "--socket-port",
                    str(self.socket_port),
                ],
                env=self.env(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as http:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"zapline serve exited with {self.proc.returncode}:\n{self.log_tail()}"
                    )
                try:
                    if http.get(f"{self.api_url}/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(
                        f"zapline serve not healthy in {timeout} s:\n{self.log_tail()}"
                    )
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the server (SIGKILL after ``timeout``); return its exit code (None if not started)."""
        if self.proc is None:
            return None
        return _stop_process(self.proc, timeout)

    def kill(self) -> None:
        """SIGKILL the server and reap it: a crash, as far as the server can tell."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server's log."""
        return _log_tail(self.log_path, lines)

    def cli(self, *args: str) -> Any:
        """Run ``zapline ARGS`` against this server's database; return its JSON output.

        Raises AssertionError with stderr when the command fails.
        """
        done = subprocess.run(
            [ZAPLINE, *args], env=self.env(), cwd=self.workdir, capture_output=True, timeout=60
        )
        assert done.returncode == 0, f"zapline {' '.join(args)}: {done.stderr.decode()}"
        return orjson.loads(done.stdout)

    def token(self, tenant_id: str, user_id: str, role: str = "agent") -> str:
        """A JWT for ``user_id`` of ``tenant_id`` signed with the server's secret."""
        return issue_token(JWT_SECRET, user_id=user_id, tenant_id=tenant_id, role=role)


@dataclass
class FakeCloud:
    """``zapline fake-whatsapp`` as a subprocess, posting status webhooks to ``webhook_url``."""

    workdir: Path
    webhook_url: str
    app_secret: str = FAKE_APP_SECRET
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL, what ZAPLINE_WHATSAPP_API_URL points at."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start the fake and return once it answers; raises RuntimeError otherwise."""
        log_path = self.workdir / "fake-whatsapp.log"
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    ZAPLINE,
                    "fake-whatsapp",
                    "--port",
                    str(self.port),
                    "--webhook-url",
                    self.webhook_url,
                    "--app-secret",
                    self.app_secret,
                ],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as http:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"fake-whatsapp exited:\n{_log_tail(log_path)}")
                try:
                    if http.get(f"{self.url}/_fake/sent").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"fake-whatsapp not up in {timeout} s")
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the fake (SIGTERM, then SIGKILL)."""
        if self.proc is not None:
            _stop_process(self.proc, 5.0)


@dataclass(frozen=True)
class Tenant:
    """A tenant made through the admin CLI, with one agent and one WhatsApp number."""

    id: str
    user_id: str
    email: str
    password: str
    phone_number_id: str
    verify_token: str
    app_secret: str | None
    token: str


def create_tenant(
    server: ZaplineServer,
    *,
    app_secret: str | None = FAKE_APP_SECRET,
    role: str = "agent",
    phone_number_id: str | None = None,
) -> Tenant:
    """Create a tenant, an agent and a number (unique ids unless given) with the admin CLI."""
    tag = uuid.uuid4().hex[:10]
    tenant = server.cli("tenant", "create", "--name", f"it-{tag}")
    email, password = f"agent-{tag}@it.example", f"pw-{tag}"
    user = server.cli(
        "user",
        "create",
        "--tenant",
        tenant["id"],
        "--email",
        email,
        "--password",
        password,
        "--role",
        role,
        "--name",
        f"Agent {tag}",
    )
    pnid, verify = phone_number_id or f"pn-{tag}", f"verify-{tag}"
    args = [
        "account",
        "add",
        "--tenant",
        tenant["id"],
        "--phone-number-id",
        pnid,
        "--verify-token",
        verify,
        "--access-token",
        f"token-{tag}",
    ]
    if app_secret:
        args += ["--app-secret", app_secret]
    account = server.cli(*args)
    assert account["phoneNumberId"] == pnid
    return Tenant(
        id=tenant["id"],
        user_id=user["id"],
        email=email,
        password=password,
        phone_number_id=pnid,
        verify_token=verify,
        app_secret=app_secret,
        token=server.token(tenant["id"], user["id"], role),
    )


async def post_webhook(
    http: httpx.AsyncClient,
    server: ZaplineServer,
    body: dict[str, Any] | bytes,
    *,
    secret: str | None = None,
    headers: dict[str, str] | None = None,
    port: str = "api",
) -> httpx.Response:
    """POST ``body`` to the server's webhook (on the ``api`` or ``socket`` port), signed with
    ``secret`` when given."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    sent = {"Content-Type": "application/json", **(headers or {})}
    if secret:
        sent["X-Hub-Signature-256"] = sign(raw, secret)
    return await http.post(server.webhook_url_of(port), content=raw, headers=sent)


def auth(token: str) -> dict[str, str]:
    """The Authorization header of ``token``."""
    return {"Authorization": f"Bearer {token}"}


class EventLog:
    """Every event one python-socketio client received, in order, with waiting helpers."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        # What any received server event got wrong against the README's wire contract.
        self.violations: list[str] = []
        self._changed = anyio.Event()

    def record(self, event: str, data: Any) -> None:
        """Append one event and wake the waiters."""
        self.events.append((event, data))
        self._changed.set()
        self._changed = anyio.Event()

    def named(self, event: str, where: Callable[[Any], bool] = lambda _: True) -> list[Any]:
        """Payloads of every ``event`` received so far that satisfy ``where``."""
        return [data for name, data in self.events if name == event and where(data)]

    async def wait_for(
        self,
        event: str,
        where: Callable[[Any], bool] = lambda _: True,
        *,
        count: int = 1,
        within: float = 10.0,
    ) -> list[Any]:
        """Wait until ``count`` matching ``event`` payloads arrived; return them.

        Raises AssertionError naming what did arrive when ``within`` seconds pass first.
        """
        with anyio.move_on_after(within):
            while True:
                assert not self.violations, f"wire contract broken: {self.violations}"
                found = self.named(event, where)
                if len(found) >= count:
                    return found
                await self._changed.wait()
        seen = [name for name, _ in self.events]
        raise AssertionError(
            f"{count} x {event!r} not received in {within} s; got {len(self.named(event, where))}"
            f" matching; all events: {seen[-30:]}"
        )

    async def expect_none(
        self, event: str, where: Callable[[Any], bool] = lambda _: True, *, within: float = 1.0
    ) -> None:
        """Assert that no new matching ``event`` arrives during ``within`` seconds."""
        before = len(self.named(event, where))
        await anyio.sleep(within)
        after = self.named(event, where)
        assert len(after) == before, f"unexpected {event}: {after[before:]}"


async def connect_client(
    url: str,
    token: str | None,
    *,
    reconnection: bool = False,
    transports: Iterable[str] | None = ("websocket",),
    contract: bool = True,
) -> tuple[socketio.AsyncClient, EventLog]:
    """Connect a python-socketio client with ``auth: {token}``; return it and its event log.

    ``connect``, ``disconnect`` and ``connect_error`` are logged too. Every other event is
    checked against the README's wire contract unless ``contract`` is False. Raises
    ``socketio.exceptions.ConnectionError`` when the server refuses.
    """
    log = EventLog()
    client = socketio.AsyncClient(
        reconnection=reconnection,
        reconnection_delay=0.05,
        reconnection_delay_max=0.2,
        randomization_factor=0.0,
    )

    @client.on("*")
    async def any_event(event: str, *data: Any) -> None:
        payload = data[0] if len(data) == 1 else list(data)
        if contract:  # engine-level tests emit their own probe events
            log.violations.extend(event_violations(event, payload))
        log.record(event, payload)

    @client.event
    async def connect() -> None:
        log.record("connect", None)

    @client.event
    async def disconnect(reason: Any = None) -> None:
        log.record("disconnect", reason)

    @client.event
    async def connect_error(data: Any) -> None:
        log.record("connect_error", data)

    await client.connect(
        url,
        auth={"token": token} if token is not None else None,
        transports=list(transports) if transports else None,
        wait_timeout=10,
    )
    return client, log


async def get_all_pages(
    http: httpx.AsyncClient,
    url: str,
    token: str,
    key: str,
    *,
    limit: int,
    cursor_param: str,
    params: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Follow ``nextCursor`` from ``url`` (with ``params``) to the end; return every item in order.

    Asserts every page answers 200 and holds at most ``limit`` items.
    """
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(10_000):
        query: dict[str, Any] = {**(params or {}), "limit": limit}
        if cursor:
            query[cursor_param] = cursor
        response = await http.get(url, params=query, headers=auth(token))
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page[key]) <= limit
        items.extend(page[key])
        cursor = page["nextCursor"]
        if not cursor:
            return items
    raise AssertionError("pagination did not end")


async def stored_wamids(
    http: httpx.AsyncClient, server: ZaplineServer, tenant: Tenant
) -> list[str]:
    """Every stored message's wamid of ``tenant``, through the API."""
    api, token = server.api_url, tenant.token
    conversations = await get_all_pages(
        http, f"{api}/api/conversations", token, "conversations", limit=200, cursor_param="cursor"
    )
    stored: list[str] = []
    for conversation in conversations:
        url = f"{api}/api/conversations/{conversation['id']}/messages"
        messages = await get_all_pages(
            http, url, token, "messages", limit=200, cursor_param="before"
        )
        stored += [m["whatsappMessageId"] for m in messages]
    return stored
