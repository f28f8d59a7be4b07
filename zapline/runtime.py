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
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from api.app import create_asgi
from api.metrics import Metrics
from api.serve import serve_app
from api.webhook_engine import mount_webhook
from desk import Desk, DeskOptions, attach_realtime
from desk.audit import AuditLog
from desk.conversations import assign as assign_conversation
from desk.live import LiveDesk
from desk.media_cache import MediaCache
from desk.permissions import may_see
from desk.ratelimit import RateLimiter
from desk.resume import Resumer
from desk.sockets import evict_from_room, evict_unpermitted
from desk.whatsapp import CloudApiClient
from engine import SocketServer
from engine.jobs import PriorityJobQueue
from storage import Conversation, Storage, StorageUnavailable, open_storage
from zapline.config import Settings
from zapline.demo import demo_instructions, seed_demo
from zapline.fanout import Fanout, make_broker

log = logging.getLogger("zapline")


@dataclass
class Runtime:
    """The process's parts, as typed fields: what request handlers and workers share.

    Satisfies the API's ``ApiServices`` contract; ``metrics`` and ``desk`` are set right
    after construction (each needs the runtime or the metrics first).
    """

    settings: Settings
    storage: Storage
    engine: SocketServer
    queue: PriorityJobQueue
    fanout: Fanout
    draining: bool = False
    started_at: float = field(default_factory=time.time)
    demo_token: str | None = None
    metrics: Metrics = field(init=False)
    desk: Desk = field(init=False)
    live: LiveDesk = field(init=False)
    limits: RateLimiter = field(init=False)
    resume: Resumer = field(init=False)
    media: MediaCache = field(init=False)
    audit: AuditLog = field(init=False)

    @property
    def emitter(self) -> Fanout:
        """Where every event goes: this node's sockets, and the others' through the broker."""
        return self.fanout

    async def user_name(self, user_id: str) -> str | None:
        """The name other agents see for ``user_id`` (None when unknown or unreadable)."""
        try:
            user = await self.storage.get_user(user_id)
        except Exception:  # a name is cosmetic: never refuse a connect over it
            return None
        return None if user is None else user.name or user.email

    async def conversation_visible(
        self, tenant_id: str, user_id: str, role: str, conversation_id: str
    ) -> bool:
        """True if ``conversation_id`` is ``tenant_id``'s and that user's role may see it."""
        conversation = await self.storage.get_conversation(tenant_id, conversation_id)
        return conversation is not None and may_see(
            role, user_id, conversation.assignee_id, self.settings.agent_sees
        )

    async def assign(
        self,
        tenant_id: str,
        user_id: str,
        role: str,
        conversation_id: Any,
        assignee_id: Any,
        expected_version: Any = None,
    ) -> dict[str, Any]:
        """``conversation:assign`` from a socket (``desk.conversations.assign``)."""
        return await assign_conversation(
            self.storage,
            self.desk.journal,
            tenant_id=tenant_id,
            user_id=user_id,
            role=role,
            agent_sees=self.settings.agent_sees,
            conversation_id=conversation_id,
            assignee_id=assignee_id,
            evict=self.evict,
            expected_version=expected_version,
            audit=self.audit,
        )

    def evict(self, conversation: Conversation) -> None:
        """After an assignment: sockets that may no longer see it leave its room, on every node,
        and the unread counters follow who may see it."""
        evict_unpermitted(self.engine, conversation, self.settings.agent_sees, self.live)
        self.desk.reads.unread.reassigned(conversation)
        self.fanout.publish_control(
            "evict", {"conversationId": conversation.id, "assigneeId": conversation.assignee_id}
        )

    def from_peer(self, node: str, kind: str, data: Any) -> None:
        """A control message of another node: an eviction, or presence and viewers."""
        if kind != "evict":
            self.live.from_peer(node, kind, data)
            return
        conversation_id = data.get("conversationId") if isinstance(data, dict) else None
        assignee_id = data.get("assigneeId") if isinstance(data, dict) else None
        if isinstance(conversation_id, str) and (
            assignee_id is None or isinstance(assignee_id, str)
        ):
            evict_from_room(
                self.engine, conversation_id, assignee_id, self.settings.agent_sees, self.live
            )

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


async def _prune_limits(limits: RateLimiter) -> None:
    # Idle agents' buckets would be full again: forgetting them keeps memory to the active.
    while True:
        await anyio.sleep(60)
        limits.prune()


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
    storage = await open_storage(settings.database_url)
    try:
        applied = await storage.migrate()
        if applied:
            log.info("applied migrations %s", applied)
        engine = SocketServer(settings.engine_options())

        async def dead_letter(job: Any, exc: BaseException) -> None:
            await runtime.desk.on_dead_letter(job, exc)

        def job_done(job: Any, seconds: float) -> None:
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
        fanout = Fanout(engine, make_broker(settings.redis_url, channel=settings.broker_channel))
        runtime = Runtime(
            settings=settings, storage=storage, engine=engine, queue=queue, fanout=fanout
        )
        runtime.live = LiveDesk(
            fanout,
            presence_grace=settings.presence_grace,
            node=fanout.broker.node_id,
            publish=fanout.publish_control if fanout.clustered else None,
        )
        fanout.on_control(runtime.from_peer)
        runtime.limits = RateLimiter(
            per_socket=settings.rate_socket,
            per_agent=settings.rate_agent,
            per_tenant_api=settings.rate_api,
        )
        runtime.audit = AuditLog(
            storage,
            retention=settings.audit_retention,
            flush_interval=settings.audit_flush_interval,
        )
        runtime.metrics = Metrics(runtime)  # its collector reads the parts above
        runtime.media = MediaCache(
            Path(settings.media_directory()), int(settings.media_cache_mb * 1024 * 1024)
        )
        runtime.desk = Desk(
            storage=storage,
            emitter=fanout,
            queue=queue,
            cloud=CloudApiClient(
                settings.whatsapp_api_url,
                version=settings.whatsapp_api_version,
                rate_per_second=settings.send_rate,
                media_timeout=settings.media_timeout,
            ),
            options=DeskOptions(
                # One lifecycle record per node, so a second node is not taken for a crash.
                node=settings.node_id or f"{socket.gethostname()}:{settings.port}",
                recovery_grace=settings.recovery_grace,
                recovery_window=settings.recovery_window,
                event_retention=settings.event_retention,
                inbox_sweep_interval=settings.inbox_sweep_interval,
                inbox_retention=settings.inbox_retention,
                pending_status_ttl=settings.pending_status_ttl,
                pending_change_ttl=settings.pending_change_ttl,
                single_node=not settings.redis_url,
                agent_sees=settings.agent_sees,
                unread_interval=settings.unread_interval,
                commit_interval=settings.commit_interval,
            ),
            metrics=runtime.metrics,
            local_emitter=engine,
            media=runtime.media,
        )
        runtime.desk.register()
        runtime.resume = Resumer(
            runtime.desk.journal,
            storage,
            settings.jwt_secret,
            window=settings.recovery_window,
            visible=runtime.conversation_visible,
        )
        attach_realtime(
            engine,
            settings.jwt_secret,
            runtime.conversation_visible,
            live=runtime.live,
            user_name=runtime.user_name,
            limits=runtime.limits,
            agent_sees=settings.agent_sees,
            assign=runtime.assign,
            resume=runtime.resume,
            audit=runtime.audit,
            reads=runtime.desk.reads,
        )
        if settings.demo:
            _, runtime.demo_token = await seed_demo(storage, settings)
        app = create_asgi(runtime)
        # The same webhook post on the Socket.IO port: cheaper per webhook (api/webhook_engine.py).
        mount_webhook(engine.engine, runtime)
        await _run_tree(runtime, app, ready)
    finally:
        await storage.aclose()


async def _run_tree(runtime: Runtime, app: Any, ready: anyio.Event | None) -> None:
    settings = runtime.settings
    api_shutdown = anyio.Event()
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_watch_signals, stop)
        await tg.start(runtime.engine.serve, settings.host, settings.socket_port)
        await tg.start(runtime.queue.run)
        await tg.start(runtime.fanout.run)
        await tg.start(runtime.desk.run)
        await tg.start(runtime.live.run)
        await tg.start(runtime.resume.run)
        await tg.start(runtime.audit.run)
        tg.start_soon(runtime.audit.prune_loop)
        tg.start_soon(_prune_limits, runtime.limits)
        api_done = anyio.Event()

        async def api_task(*, task_status: anyio.abc.TaskStatus[int]) -> None:
            try:
                await serve_app(
                    app,
                    settings.host,
                    settings.port,
                    shutdown_trigger=api_shutdown.wait,
                    graceful_timeout=3.0,
                    keep_alive_timeout=75.0,
                    task_status=task_status,
                )
            finally:
                api_done.set()

        # Bound and listening once this returns: connections wait in the backlog.
        await tg.start(api_task)
        # Start-up objects (modules, app, routes) never die: freeze them out of the collector
        # and collect less often, so full collections stay short and rare under load (full
        # collections over large heaps were the p99 pauses of python-socketio in the bench).
        # A full collection then almost never runs, so nothing may rely on one: a closed
        # connection breaks its own reference cycles (engine/transport/_websocket.py, end())
        # and is freed by reference counting (tests/engine/test_session_release.py).
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
        await runtime.desk.aclose()
        await runtime.fanout.aclose()
        await runtime.engine.shutdown(grace=2.0)
        api_shutdown.set()
        with anyio.move_on_after(5):
            await api_done.wait()
        # After the API and the sockets stopped: nothing records any more; write what is left.
        await runtime.audit.aclose()
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
    if runtime.demo_token and s.is_dev:
        print(demo_instructions(s, runtime.demo_token), file=sys.stderr, flush=True)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for tests and the bench)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
