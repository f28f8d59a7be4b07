"""Unread counters: how many customer messages each agent has not read, kept live.

Theory of operation
-------------------
Storage counts a conversation's customer messages (``inbound_count``, raised in the message's
own write) and keeps each agent's read position (the count they have read up to, forward
only); unread = count - position. This module keeps, in memory, what the agents of this node
need of that, so an inbound message costs no query:

* A *reader* is an agent this node knows: registered by their socket's connect or a REST call
  (no storage read), loaded on first need (their conversations with unread messages: ONE
  query for all the agents of a tenant a message finds unloaded), then kept incrementally.
* Per reader and conversation the memory holds ``[count, position]``. Both only grow in truth,
  so every observation is merged by taking the larger of each (``_merge``): a stale answer can
  never move a counter back or count a message twice, whatever order loads, messages and
  reads finish in. An absent conversation has nothing unread (that is what the load says).
* A new customer message (``inbound``, synchronous, right after its commit) raises the count
  for every reader who may see the conversation (``desk.permissions``): its ``inbound_count``
  is in the committed row. Readers whose count changed are marked, and ``run`` sends each of
  them ONE write per ``unread_interval`` (``ZAPLINE_UNREAD_INTERVAL``) with an ``unread:update {conversationId, unreadCount,
  totalUnread}`` per changed conversation, to ``user:{id}`` only: a burst costs an agent one
  write, not one per message, and never a broadcast.
* A read (``read``) stores the position, merges it and answers at once, to all the reader's
  tabs. An assignment (``reassigned``) drops the conversation from readers who lost it and
  fetches the positions for those who may have gained it (in ``run``: one query).
* ``total`` per reader is kept as the sum of its unread counts, adjusted by each merge.

One node's memory: an agent connected to another node is counted by that node, and a read
made there is not seen here until a reload (see the README's limits).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel

from desk.contract import user_room
from desk.permissions import may_see, sees_everything
from desk.ports import DeskOptions, Emitter
from storage import Conversation, Storage

__all__ = ["UnreadDesk"]

log = logging.getLogger("zapline.desk")

_UNLOADED, _LOADING, _LOADED = 0, 1, 2


@dataclass(slots=True)
class _Reader:
    tenant_id: str
    user_id: str
    role: str
    sees_all: bool
    seen: dict[str, list[int]] = field(default_factory=dict)  # conversation -> [count, position]
    total: int = 0
    state: int = _UNLOADED
    loaded: anyio.Event | None = None
    # Messages counted while the load's query ran: (conversation, its inbound_count).
    during_load: list[tuple[str, int]] = field(default_factory=list)


# Readers whose unread:update events are written before the loop runs its other work again.
FLUSH_SLICE = 20
# Seconds between two slices: a thousand agents' updates spread over about half a second.
FLUSH_PAUSE = 0.01


def _unread(entry: list[int] | None) -> int:
    return 0 if entry is None else max(0, entry[0] - entry[1])


class UnreadDesk:
    """This node's unread counters (see the module docstring), announced through ``emitter``."""

    def __init__(
        self,
        storage: Storage,
        emitter: Emitter,
        options: DeskOptions,
    ) -> None:
        self._storage = storage
        self._emitter = emitter
        self.agent_sees = self._agent_sees = options.agent_sees
        self._flush_interval = options.unread_interval
        self._readers: dict[str, _Reader] = {}
        self._tenants: dict[str, dict[str, _Reader]] = {}
        self._dirty: dict[str, set[str]] = {}  # user -> conversations to announce
        self._wakeup = anyio.Event()
        self._to_load: set[str] = set()
        self._to_fetch: dict[str, Conversation] = {}

    # -- who is counted -------------------------------------------------------------------

    def register(self, tenant_id: str, user_id: str, role: str) -> None:
        """Count for ``user_id`` from now on (no storage read: loaded on first need)."""
        reader = self._readers.get(user_id)
        if reader is None:
            reader = self._readers[user_id] = _Reader(tenant_id, user_id, role, False)
            self._tenants.setdefault(tenant_id, {})[user_id] = reader
        reader.role = role
        reader.sees_all = sees_everything(role, self._agent_sees)

    async def _ensure(self, user_id: str) -> _Reader:
        reader = self._readers[user_id]
        while reader.state != _LOADED:
            if reader.state == _LOADING:
                assert reader.loaded is not None
                await reader.loaded.wait()
                continue
            await self._load([reader])
        return reader

    async def _load(self, readers: list[_Reader]) -> None:
        """Load readers of ONE tenant and visibility with one query (raises its errors)."""
        for reader in readers:
            reader.state, reader.loaded = _LOADING, anyio.Event()
        first = readers[0]
        try:
            rows = await self._storage.unread_conversations_of(
                first.tenant_id, [r.user_id for r in readers], visible_only=not first.sees_all
            )
        except BaseException:
            for reader in readers:
                reader.state, reader.during_load = _UNLOADED, []
            raise
        finally:
            for reader in readers:
                assert reader.loaded is not None
                reader.loaded.set()
        by_user = {reader.user_id: reader for reader in readers}
        for user_id, conversation_id, count, position in rows:
            self._merge(by_user[user_id], conversation_id, count, position)
        for reader in readers:
            counted, reader.during_load = reader.during_load, []
            for conversation_id, count in counted:
                self._count(reader, conversation_id, count)
            reader.state = _LOADED

    # -- changes --------------------------------------------------------------------------

    def _merge(self, reader: _Reader, conversation_id: str, count: int, position: int) -> bool:
        entry = reader.seen.get(conversation_id)
        before = _unread(entry)
        if entry is None:
            entry = reader.seen[conversation_id] = [count, position]
        else:
            entry[0], entry[1] = max(entry[0], count), max(entry[1], position)
        after = _unread(entry)
        reader.total += after - before
        return after != before

    def _count(self, reader: _Reader, conversation_id: str, count: int) -> bool:
        entry = reader.seen.get(conversation_id)
        # Absent: nothing was unread before this message, so everything up to it but it is read.
        position = entry[1] if entry is not None else count - 1
        return self._merge(reader, conversation_id, count, position)

    def inbound(self, conversation: Conversation) -> None:
        """A new customer message was committed in ``conversation`` (its row as written):
        every reader who may see it counts it; changes are announced by ``run``."""
        readers = self._tenants.get(conversation.tenant_id)
        if not readers:
            return
        count, assignee, conversation_id = (
            conversation.inbound_count,
            conversation.assignee_id,
            conversation.id,
        )
        dirty = self._dirty
        # The hot path (100 agents a message in the fan-out bench): _count and may_see inlined.
        for reader in readers.values():
            if assignee is not None and assignee != reader.user_id and not reader.sees_all:
                continue
            if reader.state == _LOADED:
                entry = reader.seen.get(conversation_id)
                if entry is None:
                    reader.seen[conversation_id] = [count, count - 1]
                    reader.total += 1
                elif count > entry[0]:
                    reader.total += count - max(entry[0], entry[1])
                    entry[0] = count
                else:
                    continue
                marked = dirty.get(reader.user_id)
                if marked is None:
                    dirty[reader.user_id] = {conversation_id}
                else:
                    marked.add(conversation_id)
            elif reader.state == _LOADING:
                reader.during_load.append((conversation_id, count))
                self._mark(reader.user_id, conversation_id)
            else:  # its load will include this message
                self._to_load.add(reader.user_id)
                self._mark(reader.user_id, conversation_id)
        self._wakeup.set()

    def reassigned(self, conversation: Conversation) -> None:
        """``conversation`` changed hands: readers who lost it stop counting it now; those
        who may have gained it get its positions fetched by ``run``."""
        for reader in self._tenants.get(conversation.tenant_id, {}).values():
            if may_see(reader.role, reader.user_id, conversation.assignee_id, self._agent_sees):
                if conversation.id not in reader.seen:
                    self._to_fetch[conversation.id] = conversation
            else:
                entry = reader.seen.pop(conversation.id, None)
                if _unread(entry):
                    reader.total -= _unread(entry)
                    self._mark(reader.user_id, conversation.id)
        self._wakeup.set()

    def _mark(self, user_id: str, conversation_id: str) -> None:
        self._dirty.setdefault(user_id, set()).add(conversation_id)
        self._wakeup.set()

    # -- what the API and the sockets ask -------------------------------------------------

    async def unread_counts(self, tenant_id: str, user_id: str, role: str) -> dict[str, int]:
        """The caller's unread count per conversation (absent: 0). Raises what storage raises."""
        self.register(tenant_id, user_id, role)
        reader = await self._ensure(user_id)
        return {conv: _unread(entry) for conv, entry in reader.seen.items() if _unread(entry)}

    async def total(self, tenant_id: str, user_id: str, role: str) -> int:
        """The caller's unread customer messages over every conversation they may see."""
        self.register(tenant_id, user_id, role)
        return (await self._ensure(user_id)).total

    async def read(
        self,
        tenant_id: str,
        user_id: str,
        role: str,
        conversation: Conversation,
        count: int,
        position: int,
    ) -> int:
        """Merge a stored read; announce ``unread:update`` to the reader's every tab at once;
        return their unread count in ``conversation``."""
        self.register(tenant_id, user_id, role)
        reader = await self._ensure(user_id)
        self._merge(reader, conversation.id, count, position)
        self._dirty.get(user_id, set()).discard(conversation.id)
        unread = _unread(reader.seen.get(conversation.id))
        self._emitter.emit(
            "unread:update", self._update(reader, conversation.id), to=user_room(user_id)
        )
        return unread

    def _update(self, reader: _Reader, conversation_id: str) -> dict[str, Any]:
        return {
            "conversationId": conversation_id,
            "unreadCount": _unread(reader.seen.get(conversation_id)),
            "totalUnread": reader.total,
        }

    # -- the background part --------------------------------------------------------------

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Load, fetch and announce what ``inbound`` and ``reassigned`` left, until cancelled."""
        task_status.started()
        while True:
            await self._wakeup.wait()
            self._wakeup = anyio.Event()
            await anyio.sleep(self._flush_interval)
            await self._load_waiting()
            fetch, self._to_fetch = self._to_fetch, {}
            await self._settle(self._fetch, list(fetch.values()))
            # In slices, with the loop's other work between them: a thousand agents' updates
            # written in one go would hold every delivery behind them for tens of ms.
            dirty, self._dirty = self._dirty, {}
            pending = list(dirty.items())
            for start in range(0, len(pending), FLUSH_SLICE):
                self._send(pending[start : start + FLUSH_SLICE])
                await anyio.sleep(FLUSH_PAUSE)

    async def _settle(self, step: Callable[[Any], Awaitable[None]], items: Any) -> None:
        for item in list(items):
            try:
                await step(item)
            except Exception as exc:  # the next need loads again; counters are a courtesy
                log.warning("unread counters: %s failed: %s", step.__name__, exc)

    async def _load_waiting(self) -> None:
        # Agents a message found unloaded: one query per tenant and visibility, not per
        # agent (a start with 100 agents connected costs one or two queries per tenant).
        groups: dict[tuple[str, bool], list[_Reader]] = {}
        for user_id in self._to_load:
            reader = self._readers[user_id]
            if reader.state == _UNLOADED:
                groups.setdefault((reader.tenant_id, reader.sees_all), []).append(reader)
        self._to_load.clear()
        await self._settle(self._load, list(groups.values()))

    async def _fetch(self, conversation: Conversation) -> None:
        found = await self._storage.read_positions(conversation.tenant_id, conversation.id)
        if found is None:
            return
        count, positions = found
        current = await self._storage.get_conversation(conversation.tenant_id, conversation.id)
        assignee = conversation.assignee_id if current is None else current.assignee_id
        for reader in self._tenants.get(conversation.tenant_id, {}).values():
            if reader.state != _LOADED or not may_see(
                reader.role, reader.user_id, assignee, self._agent_sees
            ):
                continue
            position = positions.get(reader.user_id, 0)
            if self._merge(reader, conversation.id, count, position):
                self._mark(reader.user_id, conversation.id)

    def flush(self) -> None:
        """Send every marked reader ONE write of its ``unread:update`` events."""
        dirty, self._dirty = self._dirty, {}
        self._send(list(dirty.items()))

    def _send(self, dirty: list[tuple[str, set[str]]]) -> None:
        for user_id, conversations in dirty:
            reader = self._readers.get(user_id)
            if reader is None or reader.state != _LOADED or not conversations:
                continue
            events = [("unread:update", (self._update(reader, c),)) for c in sorted(conversations)]
            self._emitter.emit_many(events, to=user_room(user_id))

    def statistics(self) -> dict[str, int]:
        """Readers known, loaded, and conversation entries held (for tests and metrics)."""
        loaded = [r for r in self._readers.values() if r.state == _LOADED]
        entries = sum(len(r.seen) for r in loaded)
        return {"readers": len(self._readers), "loaded": len(loaded), "entries": entries}
