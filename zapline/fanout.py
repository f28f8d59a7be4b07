"""Emits that reach every node: the local engine now, the other nodes through the broker.

The desk emits through ``Fanout.emit`` instead of ``SocketServer.emit``. Locally it is the
same call (synchronous, never yields, encodes once); the broker then carries a copy to every
other node, whose ``Fanout.deliver`` emits it to that node's sockets. Which broker runs follows
``REDIS_URL``: unset means one node and the single-node ``MemoryBroker``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import anyio
import anyio.abc

from engine import SocketServer
from engine.broker import BroadcastMessage, Broker, BrokerStatistics
from engine.broker_memory import MemoryBroker

__all__ = ["CONTROL_NAMESPACE", "DEFAULT_CHANNEL", "ControlHandler", "Fanout", "make_broker"]

DEFAULT_CHANNEL = "zapline:fanout"
# Control messages between nodes ride the broker in a namespace no socket can join (Socket.IO
# namespaces start with "/"): a node that does not know one emits it to nobody.
CONTROL_NAMESPACE = "\x00zapline"

# (node id, kind, data) of a control message from another node
ControlHandler = Callable[[str, str, Any], None]

log = logging.getLogger("zapline.fanout")


def make_broker(
    redis_url: str | None, *, channel: str = DEFAULT_CHANNEL, node_id: str | None = None
) -> Broker:
    """Return the broker for ``redis_url``: a ``RedisBroker``, or a ``MemoryBroker`` for None.

    ``channel`` is global to the Redis server (Pub/Sub ignores database numbers): deployments
    that share one Redis need one channel each. Raises nothing; a wrong URL shows up as
    ``BrokerUnavailable`` when the broker runs.
    """
    if not redis_url:
        return MemoryBroker(node_id=node_id)
    # Imported here so a single-node install never loads redis-py.
    from engine.broker_redis import RedisBroker

    return RedisBroker(redis_url, channel=channel, node_id=node_id)


class Fanout:
    """One node's emit for the whole cluster: local engine + broker."""

    def __init__(self, engine: SocketServer, broker: Broker) -> None:
        self.engine = engine
        self.broker = broker
        # Bound now: a remote message must reach the engine's own emit, whatever later code
        # may route through this object.
        self._local_emit = engine.emit
        self._local_emit_many = engine.emit_many
        self._control: ControlHandler | None = None
        # The plain single-node broker has nobody to reach: emits skip it (and its encoding,
        # a second JSON encoding of every event). Subclasses (tests' recorders) still get them.
        self._solo = type(broker) is MemoryBroker

    @property
    def clustered(self) -> bool:
        """Whether other nodes may be listening (a real broker, not the single-node one)."""
        return not isinstance(self.broker, MemoryBroker)

    def on_control(self, handler: ControlHandler) -> None:
        """Call ``handler(node, kind, data)`` for every control message of another node."""
        self._control = handler

    def publish_control(self, kind: str, data: Any) -> None:
        """Send a control message (not an emit: no socket sees it) to every other node.

        Synchronous, never yields; a no-op on a single node. Raises ``TypeError`` if ``data``
        is not JSON-serialisable.
        """
        if self.clustered:
            self.broker.publish_nowait(
                BroadcastMessage.for_emit(
                    self.broker.node_id, kind, (data,), to=(), namespace=CONTROL_NAMESPACE
                )
            )

    def emit(
        self,
        event: str,
        *args: Any,
        to: str | Iterable[str] | None = None,
        skip: str | Iterable[str] = (),
        namespace: str = "/",
    ) -> int:
        """Emit ``event`` on this node and queue it for every other node.

        Same arguments as ``SocketServer.emit``; synchronous, never yields. Returns the number
        of LOCAL sockets written to (other nodes count their own). Raises ``TypeError`` if
        ``args`` are not JSON-serialisable (binary arguments cannot cross nodes), before
        anything was sent anywhere.
        """
        if self._solo:
            return self._local_emit(event, *args, to=to, skip=skip, namespace=namespace)
        message = BroadcastMessage.for_emit(
            self.broker.node_id, event, args, to=to, skip=skip, namespace=namespace
        )
        self.broker.publish_nowait(message)
        return self._local_emit(
            event, *args, to=message.rooms, skip=message.skip, namespace=namespace
        )

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
        """Emit several ``(event, args)`` on this node in one write per socket, and to the others.

        Same arguments as ``SocketServer.emit_many`` (``defer`` and ``on_written`` apply to
        this node's sockets; ``offsets`` travel with the messages, one per event). Locally
        every recipient gets the batch in a single write; the other nodes get one broker
        message per event, in order (they arrive over one ordered channel). Synchronous, never
        yields. Returns the number of LOCAL sockets written to. Raises ``TypeError`` if any
        args are not JSON-serialisable, ``ValueError`` if ``offsets`` does not have one entry
        per event, before anything was sent anywhere.
        """
        if self._solo:
            return self._local_emit_many(
                events,
                to=to,
                skip=skip,
                namespace=namespace,
                defer=defer,
                on_written=on_written,
                offsets=offsets,
            )
        node = self.broker.node_id
        if offsets is not None and len(offsets) != len(events):
            raise ValueError(f"{len(offsets)} offsets for {len(events)} events")
        marks: list[str | None] = [None] * len(events) if offsets is None else list(offsets)
        # Read once: ``to`` and ``skip`` may be one-shot iterables, and every message needs them.
        to = None if to is None else ((to,) if isinstance(to, str) else tuple(to))
        skip = (skip,) if isinstance(skip, str) else tuple(skip)
        messages = [
            BroadcastMessage.for_emit(
                node, event, args, to=to, skip=skip, namespace=namespace, offset=offset
            )
            for (event, args), offset in zip(events, marks, strict=True)
        ]
        for message in messages:
            message.encode()  # all or nothing: fail before the first publish
        for message in messages:
            self.broker.publish_nowait(message)
        if not messages:
            return 0
        first = messages[0]
        return self._local_emit_many(
            events,
            to=first.rooms,
            skip=first.skip,
            namespace=namespace,
            defer=defer,
            on_written=on_written,
            offsets=offsets,
        )

    def deliver(self, message: BroadcastMessage) -> None:
        """Emit a message from another node to this node's sockets; returns nothing.

        Raises what ``SocketServer.emit`` raises (the broker logs it and carries on).
        """
        if message.namespace == CONTROL_NAMESPACE:
            if self._control is not None and message.args:
                self._control(message.node_id, message.event, message.args[0])
            return
        if message.offset is not None:
            self._local_emit_many(
                ((message.event, message.args),),
                to=message.rooms,
                skip=message.skip,
                namespace=message.namespace,
                offsets=(message.offset,),
            )
            return
        self._local_emit(
            message.event,
            *message.args,
            to=message.rooms,
            skip=message.skip,
            namespace=message.namespace,
        )

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the broker with ``deliver`` until cancelled; ``started()`` once it is subscribed.

        Raises ``BrokerUnavailable`` if the broker cannot make its first connection.
        """
        await self.broker.run(self.deliver, task_status=task_status)

    async def aclose(self, grace: float = 1.0) -> None:
        """Give the broker up to ``grace`` seconds to send what is pending; returns nothing.

        The runtime calls this after the queues drained and before the engine closes, so the
        emits of the last jobs still reach the other nodes. Raises nothing.
        """
        for _ in range(max(1, int(grace / 0.01))):
            if not self.broker.statistics().pending:
                return
            await anyio.sleep(0.01)
        log.warning(
            "fan-out: %d messages not sent to other nodes at shutdown",
            self.broker.statistics().pending,
        )

    def statistics(self) -> BrokerStatistics:
        """Return the broker's counters (for /api/stats and metrics)."""
        return self.broker.statistics()
