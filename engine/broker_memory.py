"""The default broker: single-node, so there is nobody else to reach.

``MemoryBroker`` is what one ``zapline serve`` without ``REDIS_URL`` runs. It is SINGLE-NODE:
a second process on the same database will not see this one's emits, nor this one its. It
keeps the contract of ``engine/broker.py`` all the same (encoding included, so an argument that
could not cross nodes fails here too, before it fails in production on two nodes).
"""

from __future__ import annotations

import secrets

import anyio
import anyio.abc

from engine.broker import BroadcastMessage, BrokerStatistics, Deliver

__all__ = ["MemoryBroker"]


class MemoryBroker:
    """Single-node broker: ``publish_nowait`` counts and forgets; ``run`` delivers nothing."""

    __slots__ = ("node_id", "_published")

    def __init__(self, *, node_id: str | None = None) -> None:
        self.node_id = node_id or f"memory-{secrets.token_hex(4)}"
        self._published = 0

    def publish_nowait(self, message: BroadcastMessage) -> None:
        """Validate and count ``message``; there is no other node to send it to.

        Raises ``TypeError`` if its arguments are not JSON-serialisable.
        """
        message.encode()
        self._published += 1

    async def run(
        self,
        deliver: Deliver,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Signal started at once, then wait until cancelled; never calls ``deliver``."""
        task_status.started()
        await anyio.sleep_forever()

    def statistics(self) -> BrokerStatistics:
        """Return the counters: only ``published`` ever moves."""
        return BrokerStatistics(
            node_id=self.node_id,
            published=self._published,
            received=0,
            dropped=0,
            malformed=0,
            reconnects=0,
            pending=0,
            max_pending=0,
        )
