"""What the desk needs from the world, as small contracts: an emitter, metrics, its options.

The desk takes its collaborators explicitly (storage, an ``Emitter``, the job queue, the Cloud
API client, optional ``DeskMetrics``) so that it runs in-process in a test as it does in the
server. ``engine.SocketServer`` (one node) and ``zapline.fanout.Fanout`` (every node, through
a broker) both satisfy ``Emitter``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar

__all__ = ["DeskMetrics", "DeskOptions", "Emitter", "timed_stage"]

P = ParamSpec("P")
R = TypeVar("R")


class Emitter(Protocol):
    """Emits Socket.IO events to rooms; synchronous, never blocks (writes are buffered)."""

    def emit(
        self,
        event: str,
        *args: Any,
        to: str | Iterable[str] | None = None,
        skip: str | Iterable[str] = (),
        namespace: str = "/",
    ) -> int:
        """Emit one event to the sockets in ``to``; return how many local sockets got it."""
        ...

    def emit_many(
        self,
        events: Sequence[tuple[str, tuple[Any, ...]]],
        *,
        to: str | Iterable[str] | None = None,
        skip: str | Iterable[str] = (),
        namespace: str = "/",
        defer: bool = False,
        on_written: Callable[[], None] | None = None,
        offsets: Sequence[str | None] | None = None,
    ) -> int:
        """Emit several events in one write per socket (``defer``: at the end of the turn).

        ``offsets``: one per event, appended as the last argument for the sockets that take
        offsets (connection state recovery; ``desk.journal``)."""
        ...


class DeskMetrics(Protocol):
    """Where the desk reports what it measures (the API's Prometheus metrics implement it)."""

    def observe_fanout_latency(self, seconds: float) -> None:
        """From webhook receipt to the last local socket write of its message:new."""

    def observe_inbox_commit(self, seconds: float) -> None:
        """One durable inbox group commit, fsync included."""

    def count_cloud_send(self, result: str) -> None:
        """One Cloud API send: ``sent``, ``retry`` or ``failed``."""

    def observe_stage(self, stage: str, seconds: float) -> None:
        """Seconds one pass through a named stage of the data path took (the cost ledger)."""


def timed_stage(
    call: Callable[P, Awaitable[R]], metrics: DeskMetrics | None, stage: str
) -> Callable[P, Awaitable[R]]:
    """Return ``call`` reporting the wall seconds of each await to ``metrics.observe_stage``.

    Wall time, not CPU: what it wraps runs in a worker thread (and waits for it). A call that
    raises is not reported. Without ``metrics``, ``call`` itself is returned.
    """
    if metrics is None:
        return call

    async def timed(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.monotonic()
        result = await call(*args, **kwargs)
        metrics.observe_stage(stage, time.monotonic() - started)
        return result

    return timed


@dataclass(frozen=True, slots=True)
class DeskOptions:
    """The desk's settings (the composition root maps ``ZAPLINE_*`` variables onto them)."""

    node: str  # this node's name in the lifecycle record that tells a crash from a clean stop
    recovery_grace: float = 5.0
    # Seconds a disconnected socket's session (its conversation rooms) is kept in memory.
    recovery_window: float = 120.0
    # Seconds logged events are kept (the durable recovery window); 0: forever.
    event_retention: float = 86400.0
    inbox_sweep_interval: float = 30.0
    inbox_retention: float = 86400.0  # seconds finished inbox rows are kept; 0: forever
    # Seconds a status for a message not (yet) stored is kept before it is forgotten.
    pending_status_ttl: float = 600.0
    # Seconds an edit, deletion or reaction of a message not stored yet is kept.
    pending_change_ttl: float = 86400.0
    # With several nodes, another node's PENDING sends are its own: not re-sent from here.
    single_node: bool = True
    # With several nodes: seconds between two polls of the log for the others' events.
    event_poll_interval: float = 0.05
    # Which conversations an ``agent`` sees (``desk.permissions``): whose unread counters move.
    agent_sees: str = "assigned_and_unassigned"
    # Seconds an agent's unread:update events are gathered into one write (0: next turn).
    unread_interval: float = 2.0
    # Under load, seconds from one durable inbox commit's start to the next one's (0: none).
    commit_interval: float = 0.0
