"""The journal: logged events go out to the sockets strictly in seq order, per tenant, once.

Theory of operation
-------------------
Storage numbers a tenant's events in commit order (``storage/_events.py``), but the tasks
that committed them come back to the journal in any order: a group commit finishes many
messages at once, a status races a message, another node commits in between. The journal
knows the last seq it emitted per tenant (``last``; loaded from the counters at start, so
what was logged before this process is the log's business, not the sockets'). ``publish``
emits what comes next, holds what comes early, and drops what it already emitted. A hold
that lasts ``gap_wait`` seconds (a task has not published yet, another node committed it, or
a process died after its commit) is filled from the log, so nothing waits for long and
nothing is skipped.

Every event is emitted with its offset (``str(seq)``) as the last argument for the sockets
that take one (the engine decides, see ``Socket.takes_offsets``): a client that reconnects
names the last one it got, and ``desk.resume`` sends it the rest from the log. The hand-over
is exact because ``last(tenant)`` changes only in the same synchronous step as the emit.

Several nodes on one database (a broker): every node's journal emits every logged event to
its own sockets only (``emitter`` is the local engine, not the cross-node fan-out), taking
its own events as they commit and the other nodes' from the log, which it polls every
``poll_interval`` seconds (the counters, one query, then the missing events of the tenants
that moved). So each node's sockets get one stream per tenant, in seq order, once, and the
recovery hand-over above holds on every node.

Events that are not logged (presence, typing, viewers, errors) never come here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import anyio.abc

from desk.announce import card_events
from desk.ports import Emitter
from storage import Conversation, LoggedEvent, Message, Storage

__all__ = ["Journal", "announce_card", "collect"]

log = logging.getLogger("zapline.desk")

# Events read per query when a gap is filled from the log.
FILL_BATCH = 500


class Journal:
    """Emits a tenant's logged events in seq order through ``emitter``."""

    def __init__(
        self,
        emitter: Emitter,
        storage: Storage,
        *,
        gap_wait: float = 0.3,
        poll_interval: float = 0.0,
    ) -> None:
        """``emitter``: this node's sockets. ``poll_interval`` > 0 also takes the events other
        nodes logged from the log, polled that often (0: one node, nothing to poll)."""
        self._emitter = emitter
        self._storage = storage
        self.gap_wait = gap_wait
        self.poll_interval = poll_interval
        self._last: dict[str, int] = {}
        self._held: dict[str, dict[int, LoggedEvent]] = {}
        self._held_since: dict[str, float] = {}
        self._wakeup = anyio.Event()
        self.emitted = 0
        self.filled = 0
        self.dropped = 0

    def last(self, tenant_id: str) -> int:
        """The last seq emitted for ``tenant_id`` (0: none yet)."""
        return self._last.get(tenant_id, 0)

    async def load(self) -> None:
        """Take every tenant's current high seq as emitted. Raises what storage raises."""
        for tenant_id, seq in (await self._storage.event_high_seqs()).items():
            if seq > self._last.get(tenant_id, 0):
                self._last[tenant_id] = seq

    def publish(self, events: Sequence[LoggedEvent]) -> None:
        """Emit ``events`` (logged: their seq is set) when their turn comes; never yields."""
        tenants: list[str] = []
        for event in events:
            tenant = event.tenant_id
            if event.seq <= self._last.get(tenant, 0):
                self.dropped += 1
                continue
            held = self._held.setdefault(tenant, {})
            held[event.seq] = event
            if tenant not in tenants:
                tenants.append(tenant)
        for tenant in tenants:
            self._release(tenant)

    def _release(self, tenant: str) -> None:
        held = self._held.get(tenant)
        if not held:
            return
        last = self._last.get(tenant, 0)
        ready: list[LoggedEvent] = []
        while last + 1 in held:
            last += 1
            ready.append(held.pop(last))
        if ready:
            self._last[tenant] = last
            self._emit(ready)
        if held:
            if tenant not in self._held_since or ready:
                self._held_since[tenant] = time.monotonic()
                self._wakeup.set()
        else:
            del self._held[tenant]
            self._held_since.pop(tenant, None)

    def _emit(self, events: list[LoggedEvent]) -> None:
        # Consecutive events for the same rooms share one emit_many (one write per socket).
        start = 0
        while start < len(events):
            rooms = events[start].rooms
            end = start + 1
            while end < len(events) and events[end].rooms == rooms:
                end += 1
            group = events[start:end]
            callbacks = [cb for e in group if (cb := e.extra.get("on_written")) is not None]
            try:
                self._emitter.emit_many(
                    [(e.name, (e.payload,)) for e in group],
                    to=rooms,
                    defer=True,
                    on_written=_all(callbacks),
                    offsets=[str(e.seq) for e in group],
                )
            except Exception:  # one bad event must not stop the tenant's stream
                log.exception("could not emit events %d..%d", group[0].seq, group[-1].seq)
            self.emitted += len(group)
            start = end

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Load the counters, then fill lasting gaps from the log until cancelled."""
        await self.load()
        task_status.started()
        async with anyio.create_task_group() as tg:
            if self.poll_interval > 0:
                tg.start_soon(self._poll)
            await self._fill_gaps()

    async def _poll(self) -> None:
        while True:
            await anyio.sleep(self.poll_interval)
            try:
                highs = await self._storage.event_high_seqs()
                for tenant, high in highs.items():
                    await self._catch_up(tenant, high)
            except Exception as exc:
                log.warning("event log not polled (next in %.2f s): %s", self.poll_interval, exc)

    async def catch_up(self, tenant: str) -> None:
        """Emit what the log holds for ``tenant`` beyond ``last`` (another node's events).
        Raises what storage raises."""
        high = (await self._storage.event_high_seqs(tenant)).get(tenant, 0)
        await self._catch_up(tenant, high)

    async def _catch_up(self, tenant: str, high: int) -> None:
        while high > self.last(tenant):
            before = self.last(tenant)
            found = await self._storage.events_after(tenant, before, limit=FILL_BATCH)
            self.filled += sum(1 for e in found if e.seq > self.last(tenant))
            self.publish(found)
            if self.last(tenant) == before:
                return  # held behind a gap: the gap filler handles it

    async def _fill_gaps(self) -> None:
        while True:
            if not self._held_since:
                self._wakeup = anyio.Event()
                await self._wakeup.wait()
                continue
            oldest = min(self._held_since.values())
            delay = oldest + self.gap_wait - time.monotonic()
            if delay > 0:
                await anyio.sleep(delay)
                continue
            now = time.monotonic()
            for tenant, since in list(self._held_since.items()):
                if now - since >= self.gap_wait:
                    try:
                        await self.fill(tenant)
                    except Exception as exc:
                        log.warning("event log gap of tenant %s not filled: %s", tenant, exc)
                        self._held_since[tenant] = time.monotonic()

    async def fill(self, tenant: str) -> None:
        """Emit the tenant's events missing before what is held, read from the log."""
        held = self._held.get(tenant)
        if not held:
            self._held_since.pop(tenant, None)
            return
        want = min(held) - 1
        while True:
            last = self.last(tenant)
            found = await self._storage.events_after(tenant, last, limit=FILL_BATCH)
            if self.last(tenant) == last:
                break  # nothing was emitted during the read: decide on what it saw
        found = [e for e in found if e.seq <= want]
        if found and found[0].seq != last + 1:
            log.warning("tenant %s: events %d..%d are gone from the log", tenant, last + 1,
                        found[0].seq - 1)  # fmt: skip
            self._last[tenant] = found[0].seq - 1
        elif not found and want > last:
            # Nothing committed there (pruned): do not wait forever.
            log.warning("tenant %s: events %d..%d not in the log; skipped", tenant, last + 1, want)
            self._last[tenant] = want
        self.filled += len(found)
        self._held_since.pop(tenant, None)
        self.publish(found)
        self._release(tenant)

    def statistics(self) -> dict[str, Any]:
        """Events emitted, filled from the log, dropped as already emitted; tenants waiting."""
        return {
            "emitted": self.emitted,
            "filled": self.filled,
            "dropped": self.dropped,
            "waiting": len(self._held_since),
        }


def collect(
    journal: Journal, events: Callable[[Message, Conversation], Sequence[LoggedEvent]]
) -> tuple[Callable[[Message, Conversation], list[LoggedEvent]], Callable[[], None]]:
    """(describe, publish) for ONE storage call: ``describe`` (the call's ``describe``)
    collects what ``events`` says of each message the change changed; ``publish`` hands them
    to ``journal`` once the call returned (its transaction committed). A call that raised
    committed nothing: do not publish then."""
    told: list[LoggedEvent] = []

    def describe(message: Message, conversation: Conversation) -> list[LoggedEvent]:
        described = list(events(message, conversation))
        told.extend(described)
        return described

    return describe, lambda: journal.publish(told)


async def announce_card(storage: Storage, journal: Journal, conversation: Conversation) -> None:
    """Log and emit the card of a conversation whose message arrived out of order: with its
    newest message, not the late one (the card never moves back in time). Raises nothing."""
    try:
        page, _ = await storage.list_messages(conversation.tenant_id, conversation.id, limit=1)
        if page:
            events = card_events(conversation, page[0])
            await storage.log_events(events)
            journal.publish(events)
    except Exception as exc:  # the message is stored and announced: the card can wait
        log.warning("conversation %s: card not announced: %s", conversation.id, exc)


def _all(callbacks: list[Callable[[], None]]) -> Callable[[], None] | None:
    if not callbacks:
        return None
    if len(callbacks) == 1:
        return callbacks[0]

    def every() -> None:
        for callback in callbacks:
            callback()

    return every
