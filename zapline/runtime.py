"""One Zapline process: storage, the Socket.IO engine, job queues and the API, in one tree.

Start-up order: storage (migrated) -> engine listener -> job workers -> inbox replay -> API.
Shutdown (SIGTERM/SIGINT): readiness false and intake refuses new webhooks (503), the queues
drain (bounded by ZAPLINE_DRAIN_TIMEOUT), every socket gets a proper close, Hypercorn stops
through its shutdown trigger, storage closes, exit 0. A second signal exits at once.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc

from api.metrics import Metrics
from engine import SocketServer
from engine.jobs import PriorityJobQueue
from storage import Storage, StorageUnavailable, open_storage
from zapline.config import Settings
from zapline.realtime import attach_realtime

log = logging.getLogger("zapline")


@dataclass
class Runtime:
    """What request handlers and workers share."""

    settings: Settings
    storage: Storage
    engine: SocketServer
    queue: PriorityJobQueue
    draining: bool = False
    started_at: float = field(default_factory=time.time)
    services: dict[str, Any] = field(default_factory=dict)
    metrics: Any = None
    fanout: Any = None

    async def conversation_exists(self, tenant_id: str, conversation_id: str) -> bool:
        """True if ``conversation_id`` belongs to ``tenant_id``."""
        return await self.storage.get_conversation(tenant_id, conversation_id) is not None

    async def readiness(self) -> dict[str, bool]:
        """The readiness checks, each True when healthy."""
        try:
            with anyio.fail_after(2):
                await self.storage.ping()
            storage_ok = True
        except Exception:
            storage_ok = False
        stats = self.queue.statistics()
        depth = sum(stats.depth.values())
        return {
            "storage": storage_ok,
            "queues": depth < 0.9 * stats.max_size,
            "accepting": not self.draining,
        }


async def _wait_port(host: str, port: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    target = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    while True:
        try:
            stream = await anyio.connect_tcp(target, port)
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start listening on {host}:{port}") from None
            await anyio.sleep(0.02)
            continue
        await stream.aclose()
        return


async def _serve_api(runtime: Runtime, app: Any, shutdown: anyio.Event) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{runtime.settings.host}:{runtime.settings.port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 3
    config.keep_alive_timeout = 75
    # Cancelling a task group that holds hypercorn.asyncio.serve breaks on Python 3.11: stop it
    # only through its shutdown trigger, shielded from the tree's cancellation.
    with anyio.CancelScope(shield=True):
        await serve(app, config, shutdown_trigger=shutdown.wait)  # type: ignore[arg-type]


def is_storage_outage(exc: BaseException) -> bool:
    """True when ``exc`` is, or was caused by, storage being away (StorageUnavailable).

    A group commit reports a failed batch as its own error with the storage error as cause.
    """
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, StorageUnavailable):
            return True
        seen = seen.__cause__
    return False


async def run(settings: Settings, *, ready: anyio.Event | None = None) -> None:
    """Run the whole server until SIGINT/SIGTERM; return after a clean shutdown."""
    from api.app import create_asgi

    storage = await open_storage(settings.database_url)
    try:
        applied = await storage.migrate()
        if applied:
            log.info("applied migrations %s", applied)
        engine = SocketServer(settings.engine_options())
        services: dict[str, Any] = {}

        async def dead_letter(job: Any, exc: BaseException) -> None:
            desk = services.get("desk")
            if desk is not None:
                await desk.on_dead_letter(job, exc)

        def job_done(job: Any, seconds: float) -> None:
            if runtime.metrics is not None:
                runtime.metrics.job_duration.labels(job.priority.name.lower()).observe(seconds)

        queue = PriorityJobQueue(
            max_size=settings.queue_size,
            workers=settings.workers,
            on_dead_letter=dead_letter,
            on_done=job_done,
            # A storage outage is not a reason to give up on an acknowledged message.
            is_transient=is_storage_outage,
            outage_timeout=settings.storage_outage_timeout,
        )
        runtime = Runtime(
            settings=settings, storage=storage, engine=engine, queue=queue, services=services
        )
        runtime.metrics = Metrics(runtime)
        attach_realtime(engine, settings.jwt_secret, runtime.conversation_exists)
        from zapline.fanout import Fanout, make_broker

        runtime.fanout = services["fanout"] = Fanout(
            engine, make_broker(settings.redis_url, channel=settings.broker_channel)
        )
        if settings.demo:
            from zapline.demo import seed_demo

            _, services["demo_token"] = await seed_demo(storage, settings)
        install_data_path = _data_path_installer()
        if install_data_path is not None:
            await install_data_path(runtime)
        app = create_asgi(runtime)
        await _run_tree(runtime, app, ready)
    finally:
        await storage.aclose()


def _data_path_installer() -> Any:
    try:
        from api.desk import install
    except ModuleNotFoundError as exc:
        if exc.name != "api.desk":
            raise
        return None
    return install


async def _run_tree(runtime: Runtime, app: Any, ready: anyio.Event | None) -> None:
    settings = runtime.settings
    api_shutdown = anyio.Event()
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_watch_signals, stop)
        await tg.start(runtime.engine.serve, settings.host, settings.socket_port)
        await tg.start(runtime.queue.run)
        for name, service in list(runtime.services.items()):
            if hasattr(service, "run"):
                await tg.start(service.run)
                log.debug("service %s started", name)
        api_done = anyio.Event()

        async def api_task() -> None:
            try:
                await _serve_api(runtime, app, api_shutdown)
            finally:
                api_done.set()

        tg.start_soon(api_task)
        await _wait_port(settings.host, settings.port)
        # Start-up objects (modules, app, routes) never die: freeze them out of the collector
        # and collect less often, so full collections stay short and rare under load (full
        # collections over large heaps were the p99 pauses of python-socketio in the bench).
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        _print_banner(runtime)
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("shutting down: draining queues (up to %.0f s)", settings.drain_timeout)
        runtime.draining = True
        drained = await runtime.queue.drain(settings.drain_timeout)
        if not drained:
            log.warning(
                "queues not drained in %.0f s; pending inbox rows are replayed at next start",
                settings.drain_timeout,
            )
        for service in list(runtime.services.values()):
            if hasattr(service, "aclose"):
                await service.aclose()
        await runtime.engine.shutdown(grace=2.0)
        api_shutdown.set()
        with anyio.move_on_after(5):
            await api_done.wait()
        tg.cancel_scope.cancel()
    stats = runtime.engine.stats
    log.info(
        "stopped: %d packets delivered to sockets in %d writes", stats.deliveries, stats.writes
    )


async def _watch_signals(stop: anyio.Event) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if stop.is_set():
                log.warning("second signal: exiting now")
                os._exit(1)
            log.info("received %s", signal.Signals(signum).name)
            stop.set()


def _print_banner(runtime: Runtime) -> None:
    s = runtime.settings
    broker = "redis" if s.redis_url else "memory (single node)"
    host = "127.0.0.1" if s.host in ("0.0.0.0", "") else s.host
    line = (
        f"zapline {s.env}: API http://{host}:{s.port}  Socket.IO {s.socket_url()}  "
        f"storage {s.describe_database()}  broker {broker}  pid {os.getpid()}"
    )
    print(line, file=sys.stderr, flush=True)
    token = runtime.services.get("demo_token")
    if token and s.is_dev:
        from zapline.demo import demo_instructions

        print(demo_instructions(s, token), file=sys.stderr, flush=True)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for tests and the bench)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
