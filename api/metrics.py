"""Prometheus metrics through prometheus_client, one registry per process runtime.

Hot-path numbers (connections, deliveries, emits, queue depth) are not counted twice: the
engine and the queue keep plain integers, and a collector reads them at scrape time. Only what
has no home elsewhere (webhook results, latencies, Cloud API results) is a prometheus_client
metric updated inline. Labels are bounded: no tenant, socket or message ids.

The cost ledger: ``zapline_stage_seconds_total{stage}`` (and ``zapline_stage_passes_total``)
add up the time of each stage a webhook crosses, so that the bench can divide a phase's
difference by its webhooks and name the stage a regression is in. Stages: ``http`` (the
webhook handler's own CPU: body, JSON, routing, signature, answer; Hypercorn's HTTP parsing is
not in it), ``inbox_commit`` (wall time of the durable inbox commits, fsync included),
``db_write`` (wall time of the batched message/contact/conversation writes) and ``fanout``
(CPU of encoding emits and writing them to sockets, read from the engine's counter). Plain
floats added inline, exposed at scrape time: a stage costs a dict update, not a histogram.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import anyio
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from api.context import ApiServices

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _RuntimeCollector(Collector):
    """Reads the engine's and the queue's counters when Prometheus scrapes."""

    def __init__(self, runtime: ApiServices) -> None:
        self._runtime = runtime
        self.inbox_counts: dict[str, int] = {}
        self.stage_seconds: dict[str, float] = {}
        self.stage_passes: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        engine = self._runtime.engine
        stats = engine.stats
        by_transport = GaugeMetricFamily(
            "zapline_connections", "Open Engine.IO sessions by transport", labels=["transport"]
        )
        counts = {"websocket": 0, "polling": 0}
        for session in engine.sessions.values():
            counts[session.transport] += 1
        for transport, n in counts.items():
            by_transport.add_metric([transport], n)
        yield by_transport
        yield GaugeMetricFamily(
            "zapline_sockets",
            "Connected Socket.IO sockets (all namespaces)",
            value=len(engine.sockets),
        )
        yield CounterMetricFamily(
            "zapline_connects", "Accepted Socket.IO connects", value=stats.connects
        )
        yield CounterMetricFamily(
            "zapline_connect_errors", "Refused Socket.IO connects", value=stats.connect_errors
        )
        disconnects = CounterMetricFamily(
            "zapline_disconnects", "Socket disconnects by reason", labels=["reason"]
        )
        for reason, n in sorted(stats.disconnects.items()):
            disconnects.add_metric([reason], n)
        yield disconnects
        emitted = CounterMetricFamily(
            "zapline_events_emitted", "Server emits by event name", labels=["event"]
        )
        for name, n in sorted(stats.emitted.items()):
            emitted.add_metric([name], n)
        yield emitted
        yield CounterMetricFamily(
            "zapline_deliveries", "Packets written to sockets by emits", value=stats.deliveries
        )
        yield CounterMetricFamily(
            "zapline_socket_writes",
            "Writes to sockets by emits; deliveries per write is how much emits were batched",
            value=stats.writes,
        )
        yield CounterMetricFamily(
            "zapline_events_received", "Events received from clients", value=stats.received_events
        )
        yield CounterMetricFamily(
            "zapline_slow_consumer_disconnects",
            "Connections closed for falling behind",
            value=stats.slow_consumers,
        )
        yield CounterMetricFamily(
            "zapline_outbox_drops",
            "Writes refused by a full or closed outbox",
            value=getattr(stats, "outbox_drops", 0),
        )
        listener = stats.listener
        yield GaugeMetricFamily(
            "zapline_socket_connections_open",
            "Open TCP connections on the socket listener (HTTP and websocket)",
            value=listener.open,
        )
        refused = CounterMetricFamily(
            "zapline_socket_connections_closed",
            "Socket listener connections refused or closed by a limit, by reason",
            labels=["reason"],
        )
        for reason, n in (
            ("max_connections", listener.refused),
            ("header_timeout", listener.header_timeouts),
            ("idle_timeout", listener.idle_timeouts),
            ("message_too_big", listener.oversized_messages),
            ("stalled", listener.stalled),
        ):
            refused.add_metric([reason], n)
        yield refused
        queue = self._runtime.queue.statistics()
        depth = GaugeMetricFamily(
            "zapline_queue_depth", "Queued jobs by priority", labels=["priority"]
        )
        for priority, n in queue.depth.items():
            depth.add_metric([priority.lower()], n)
        yield depth
        yield GaugeMetricFamily("zapline_jobs_running", "Jobs running now", value=queue.running)
        yield GaugeMetricFamily(
            "zapline_jobs_waiting_retry", "Jobs waiting for a retry", value=queue.waiting_retry
        )
        yield GaugeMetricFamily(
            "zapline_jobs_waiting_storage",
            "Jobs waiting for storage to return (an outage: they keep their attempts)",
            value=queue.waiting_outage,
        )
        yield CounterMetricFamily("zapline_job_retries", "Job retries", value=queue.retried)
        limits = self._runtime.limits
        yield CounterMetricFamily(
            "zapline_rate_limited_events",
            "Client events dropped over their rate limit",
            value=limits.dropped,
        )
        yield CounterMetricFamily(
            "zapline_rate_limit_disconnects",
            "Sockets disconnected for flooding",
            value=limits.disconnected,
        )
        yield CounterMetricFamily(
            "zapline_api_rate_limited",
            "REST requests answered 429 over the tenant's rate limit",
            value=limits.api_refused,
        )
        yield CounterMetricFamily(
            "zapline_dead_letters", "Jobs moved to dead letters", value=queue.dead
        )
        yield from self.stage_families(stats)
        inbox = GaugeMetricFamily("zapline_inbox", "Inbox rows by state", labels=["state"])
        for state, n in sorted(self.inbox_counts.items()):
            inbox.add_metric([state], n)
        yield inbox
        yield GaugeMetricFamily(
            "zapline_draining", "1 while shutting down", value=1 if self._runtime.draining else 0
        )
        yield GaugeMetricFamily(
            "zapline_tasks",
            "Tasks alive in the event loop: flat under steady load, growth is a leak",
            value=_running_tasks(),
        )

    def stage_families(self, engine_stats: object) -> Iterator[Metric]:
        """Yield the cost ledger's two families (seconds and passes per stage)."""
        seconds = dict(self.stage_seconds)
        fanout = getattr(engine_stats, "fanout_seconds", None)
        if isinstance(fanout, float):
            seconds["fanout"] = fanout
        total = CounterMetricFamily(
            "zapline_stage_seconds",
            "Seconds spent per data-path stage (http, fanout: CPU; inbox_commit, db_write: wall)",
            labels=["stage"],
        )
        for stage, value in sorted(seconds.items()):
            total.add_metric([stage], value)
        yield total
        passes = CounterMetricFamily(
            "zapline_stage_passes", "Passes through each timed stage", labels=["stage"]
        )
        for stage, n in sorted(self.stage_passes.items()):
            passes.add_metric([stage], n)
        yield passes


def _running_tasks() -> int:
    # Scrapes run on the event loop; the registry also collects once at registration, where
    # there may be none (then 0).
    try:
        return len(anyio.get_running_tasks())
    except RuntimeError:
        return 0


class Metrics:
    """The process's metrics; ``render()`` gives the text exposition format."""

    def __init__(self, runtime: ApiServices) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._collector = _RuntimeCollector(runtime)
        self._runtime = runtime
        self.registry.register(self._collector)
        r = self.registry
        self.webhooks = Counter(
            "zapline_webhook_posts", "Webhook posts by result", ["result"], registry=r
        )
        self.fanout_latency = Histogram(
            "zapline_fanout_latency_seconds",
            "From webhook receipt to the last socket write of its message:new",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inbox_commit = Histogram(
            "zapline_inbox_commit_seconds",
            "One durable inbox commit (a group of webhooks), fsync included",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.job_duration = Histogram(
            "zapline_job_duration_seconds",
            "Job handler time by priority",
            ["priority"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cloud_sends = Counter(
            "zapline_cloud_api_sends", "Cloud API send attempts by result", ["result"], registry=r
        )

    # The desk reports through these (desk.DeskMetrics).

    def observe_fanout_latency(self, seconds: float) -> None:
        """From webhook receipt to the last local socket write of its message:new."""
        self.fanout_latency.observe(seconds)

    def observe_inbox_commit(self, seconds: float) -> None:
        """One durable inbox group commit, fsync included."""
        self.inbox_commit.observe(seconds)
        self.observe_stage("inbox_commit", seconds)

    def observe_stage(self, stage: str, seconds: float) -> None:
        """Add one pass of ``seconds`` to ``stage`` of the cost ledger; returns None."""
        c = self._collector
        c.stage_seconds[stage] = c.stage_seconds.get(stage, 0.0) + seconds
        c.stage_passes[stage] = c.stage_passes.get(stage, 0) + 1

    def count_cloud_send(self, result: str) -> None:
        """One Cloud API send attempt by result."""
        self.cloud_sends.labels(result).inc()

    async def render(self) -> bytes:
        """Refresh the values that need I/O (inbox backlog) and return the exposition text."""
        try:
            self._collector.inbox_counts = await self._runtime.storage.inbox_counts()
        except Exception:
            self._collector.inbox_counts = {}
        return generate_latest(self.registry)
