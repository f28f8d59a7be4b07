"""The broker contract: how one node's emits reach the sockets of every other node.

Theory of operation
-------------------
``SocketServer.emit`` reaches the sockets of this process only. Past one node, every emit is
also handed to a broker as a ``BroadcastMessage``; each other node's broker receives it and
calls ``deliver``, which emits it locally there. The broker carries messages between nodes and
nothing else: rooms, membership and encoding stay in the engine of each node.

Contract (every implementation keeps it; ``tests/engine/test_broker_contract.py`` checks it)
------------------------------------------------------------------------------------------
``publish_nowait(message)``
    Synchronous; never blocks and never yields, so it is safe from any task, including a Quart
    handler or a job in the middle of a transaction. The message is encoded (orjson) at once,
    so an argument that cannot cross nodes raises ``TypeError`` in the caller, on one node as
    on many. Encoded messages wait in a bounded outgoing buffer (``max_pending``) drained by
    the broker's own task. When the buffer is full the OLDEST pending message is dropped,
    counted in ``statistics().dropped`` and logged (once per burst, not once per message): a
    stalled broker costs bounded memory and stale events, never a blocked emitter.
``await run(deliver, *, task_status)``
    Connects and subscribes, then calls ``task_status.started()``; from then on calls
    ``deliver(message)`` for every message published by OTHER nodes (never for its own), in
    the broker's task. ``deliver`` must not block; an exception it raises is logged and the
    message counted as received. After a connection error the broker logs, counts a
    reconnect, backs off (exponential, capped) and reconnects; it returns only when cancelled.
    Raises ``BrokerUnavailable`` if the very first connection cannot be made, so a
    misconfigured node fails at start instead of running deaf.
``statistics()``
    A ``BrokerStatistics`` snapshot: published, received, dropped, malformed, reconnects,
    pending. Never raises.

Guarantees: messages published by one node reach every other node in publish order (one
publisher task, one channel). Nothing is promised about the order of messages from different
nodes. Delivery is best effort, as Pub/Sub is: a message published while a peer is
reconnecting is lost to that peer; a round trip that failed is retried after reconnecting, so a
message can, rarely, arrive twice. Every desk event is a snapshot or keyed by id, and clients
recover what they missed through the REST API on reconnect, as after any network blip.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import anyio
import anyio.abc
import orjson

__all__ = [
    "BroadcastMessage",
    "Broker",
    "BrokerStatistics",
    "BrokerUnavailable",
    "Deliver",
    "MalformedMessage",
    "OutgoingBuffer",
]

log = logging.getLogger("zapline.broker")

# The version tag lets a node reject (and count) messages from an incompatible release
# instead of emitting garbage to its browsers during a rolling upgrade.
_WIRE_VERSION = 1


class BrokerUnavailable(Exception):
    """The broker's first connection failed; the message says where and what to do."""


class MalformedMessage(ValueError):
    """Bytes on the channel that are not a ``BroadcastMessage`` of this wire version."""


@dataclass(frozen=True, slots=True)
class BroadcastMessage:
    """One emit, as it travels between nodes.

    ``rooms`` names rooms or socket ids like ``SocketServer.emit(to=...)``; None means every
    socket of ``namespace`` (``to=None``), which an empty tuple does not (that reaches nobody).
    ``offset`` is the event's recovery offset (``SocketServer.emit_many(offsets=...)``), None
    for an event without one. On the wire a message without an offset has the 7 fields it
    always had (so both forms decode on every node); one with an offset has an 8th.
    """

    node_id: str
    namespace: str
    event: str
    args: tuple[Any, ...]
    rooms: tuple[str, ...] | None
    skip: tuple[str, ...] = ()
    offset: str | None = None

    @classmethod
    def for_emit(
        cls,
        node_id: str,
        event: str,
        args: Iterable[Any],
        *,
        to: str | Iterable[str] | None,
        skip: str | Iterable[str] = (),
        namespace: str = "/",
        offset: str | None = None,
    ) -> BroadcastMessage:
        """Return the message for ``SocketServer.emit(event, *args, to=, skip=, namespace=)``."""
        rooms = None if to is None else ((to,) if isinstance(to, str) else tuple(to))
        skipped = (skip,) if isinstance(skip, str) else tuple(skip)
        return cls(node_id, namespace, event, tuple(args), rooms, skipped, offset)

    def encode(self) -> bytes:
        """Return the wire form (orjson). Raises ``TypeError`` for non-JSON arguments."""
        fields = [
            _WIRE_VERSION,
            self.node_id,
            self.namespace,
            self.event,
            self.args,
            self.rooms,
            self.skip,
        ]
        if self.offset is not None:
            fields.append(self.offset)
        return orjson.dumps(fields)

    @classmethod
    def decode(cls, data: bytes | str) -> BroadcastMessage:
        """Return the message encoded in ``data``. Raises ``MalformedMessage``."""
        try:
            fields = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise MalformedMessage(f"not JSON: {exc}") from None
        if not isinstance(fields, list) or len(fields) not in (7, 8) or fields[0] != _WIRE_VERSION:
            raise MalformedMessage(f"not a version {_WIRE_VERSION} broadcast message")
        _, node_id, namespace, event, args, rooms, skip = fields[:7]
        offset = fields[7] if len(fields) == 8 else None
        if offset is not None and not isinstance(offset, str):
            raise MalformedMessage("the offset must be a string")
        if not (isinstance(node_id, str) and isinstance(namespace, str) and isinstance(event, str)):
            raise MalformedMessage("node id, namespace and event must be strings")
        if not isinstance(args, list) or not isinstance(skip, list):
            raise MalformedMessage("args and skip must be lists")
        if rooms is not None and not isinstance(rooms, list):
            raise MalformedMessage("rooms must be a list or null")
        names = [*(rooms or ()), *skip]
        if not all(isinstance(name, str) for name in names):
            raise MalformedMessage("room names must be strings")
        return cls(
            node_id,
            namespace,
            event,
            tuple(args),
            None if rooms is None else tuple(rooms),
            tuple(skip),
            offset,
        )


@dataclass(frozen=True, slots=True)
class BrokerStatistics:
    """A snapshot of one broker's counters (see the module's contract)."""

    node_id: str
    published: int  # handed to the channel (the memory broker: accepted, as there is no channel)
    received: int  # from other nodes, passed to ``deliver``
    dropped: int  # lost before reaching the channel: buffer overflow or a failed round trip
    malformed: int  # bytes on the channel that were not a message of this version
    reconnects: int
    pending: int  # encoded, not yet confirmed by the channel (waiting or in flight)
    max_pending: int


Deliver = Callable[[BroadcastMessage], None]


@runtime_checkable
class Broker(Protocol):
    """Cross-node fan-out; the module docstring is the contract every implementation keeps."""

    node_id: str

    def publish_nowait(self, message: BroadcastMessage) -> None:
        """Queue ``message`` for every other node; return at once.

        Drops the oldest pending message when the buffer is full. Raises ``TypeError`` if the
        arguments are not JSON-serialisable.
        """
        ...

    async def run(
        self,
        deliver: Deliver,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Carry messages until cancelled; ``started()`` once subscribed.

        Calls ``deliver`` for every message from another node. Raises ``BrokerUnavailable``
        if the first connection fails.
        """
        ...

    def statistics(self) -> BrokerStatistics:
        """Return a snapshot of the counters; never raises."""
        ...


class OutgoingBuffer:
    """The bounded buffer between ``publish_nowait`` and a broker's publisher task.

    Holds encoded messages; when full, ``put_nowait`` drops the oldest. Counts what it drops
    and logs the first drop of each burst (a burst ends when the buffer empties).
    """

    __slots__ = ("_items", "_max", "_wakeup", "dropped", "_warned")

    def __init__(self, max_pending: int) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._items: deque[bytes] = deque()
        self._max = max_pending
        # Made by the waiter, so a buffer can be built outside any event loop.
        self._wakeup: anyio.Event | None = None
        self.dropped = 0
        self._warned = False

    @property
    def max_pending(self) -> int:
        """The capacity given at construction."""
        return self._max

    def __len__(self) -> int:
        return len(self._items)

    def put_nowait(self, payload: bytes) -> None:
        """Append ``payload``, dropping the oldest when full; never blocks, never raises."""
        if len(self._items) >= self._max:
            self._items.popleft()
            self.dropped += 1
            if not self._warned:
                self._warned = True
                log.warning(
                    "broker buffer full (%d messages): dropping the oldest until it drains",
                    self._max,
                )
        self._items.append(payload)
        if self._wakeup is not None:
            self._wakeup.set()

    def take(self, limit: int) -> list[bytes]:
        """Remove and return up to ``limit`` pending payloads, oldest first."""
        items = self._items
        if len(items) <= limit:
            batch = list(items)
            items.clear()
        else:
            batch = [items.popleft() for _ in range(limit)]
        if self._warned and not items:
            log.warning("broker buffer drained; %d messages dropped so far", self.dropped)
            self._warned = False
        return batch

    def put_back(self, batch: list[bytes]) -> None:
        """Return a batch that could not be sent to the head of the buffer, oldest first.

        What no longer fits is dropped from the oldest end and counted, as ``put_nowait`` does.
        """
        self._items.extendleft(reversed(batch))
        excess = len(self._items) - self._max
        for _ in range(max(excess, 0)):
            self._items.popleft()
        if excess > 0:
            self.dropped += excess
            log.warning("broker buffer full after a failed send: dropped %d messages", excess)

    async def wait(self) -> None:
        """Return once something is pending (at once if something already is)."""
        while not self._items:
            self._wakeup = anyio.Event()
            await self._wakeup.wait()
