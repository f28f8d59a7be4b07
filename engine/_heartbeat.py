"""The heartbeat timer of a server: one task, a deadline per session, buckets of 10 ms.

Theory of operation
-------------------
Every session has its own schedule (``EioSession.deadline``: its next PING, or the end of
its pong clock; and for a session that has not joined a namespace yet, its connect
deadline). A task per session would cost a task per idle client, and one loop that walks
every session at a fixed period pings late by up to a period, and at the same instant for
everybody. So the timer keeps sessions in buckets of ``RESOLUTION`` seconds (a session goes
in the first bucket at or after its deadline: never early, at most 10 ms late), and a
min-heap of bucket keys; one task sleeps until the earliest bucket, hands its sessions to the
host's ``on_due`` and sleeps again. A session costs one slot in a bucket's list, not an entry
object of its own.

Entries are never removed: ``schedule`` adds one only when the session's wanted bucket is
earlier than its live entry's (``session.scheduled_at``); an entry whose bucket time no
longer matches ``scheduled_at`` is stale and skipped when its bucket comes up. A session
whose deadline moved later (a PONG arrived) keeps its early entry; when it comes up,
``on_due`` finds nothing to do and the session is scheduled again at its new time. So each
session has one or two entries.

A bucket earlier than the one the task sleeps towards moves its sleep earlier (a cancel
scope's deadline), so nothing waits for a later wake-up.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from engine._session import EngineSession

__all__ = ["Heartbeat"]

log = logging.getLogger("zapline.engine")

RESOLUTION = 0.01


class Heartbeat:
    """Calls ``on_due(session, now)`` at each session's ``wake_at`` (at most 10 ms later)."""

    __slots__ = ("_buckets", "_keys", "_on_due", "_wait")

    def __init__(self, on_due: Callable[[EngineSession, float], None]) -> None:
        self._buckets: dict[int, list[EngineSession]] = {}
        self._keys: list[int] = []
        self._on_due = on_due
        self._wait: anyio.CancelScope | None = None

    def __len__(self) -> int:
        return sum(map(len, self._buckets.values()))

    def schedule(self, session: EngineSession) -> None:
        """Make sure ``on_due`` runs for ``session`` at its ``wake_at`` (or earlier)."""
        when = session.wake_at
        if when == math.inf:
            return
        key = math.ceil(when / RESOLUTION)
        if key * RESOLUTION < when:  # rounding: the bucket must never be early
            key += 1
        at = key * RESOLUTION
        if at >= session.scheduled_at:
            return
        session.scheduled_at = at
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = []
            heapq.heappush(self._keys, key)
            wait = self._wait
            if wait is not None and at < wait.deadline:
                wait.deadline = at
        bucket.append(session)

    def run_due(self, now: float) -> None:
        """Hand every session whose bucket is due by ``now`` to ``on_due``; reschedule them."""
        keys = self._keys
        due: list[EngineSession] = []
        while keys and keys[0] * RESOLUTION <= now:
            key = heapq.heappop(keys)
            at = key * RESOLUTION
            for session in self._buckets.pop(key):
                if session.scheduled_at != at:
                    continue  # superseded by an earlier entry, already handled
                session.scheduled_at = math.inf
                due.append(session)
        on_due = self._on_due
        for session in due:
            if session.closed:
                continue
            try:
                on_due(session, now)
            except Exception:
                # One session's bug must not stop every other session's heartbeat.
                log.exception("heartbeat of session %s failed", session.sid)
                continue
            if not session.closed:
                self.schedule(session)

    async def run(self) -> None:
        """Serve the schedule until cancelled."""
        keys = self._keys
        try:
            while True:
                deadline = keys[0] * RESOLUTION if keys else math.inf
                with anyio.CancelScope(deadline=deadline) as scope:
                    self._wait = scope
                    await anyio.sleep_forever()
                self._wait = None
                self.run_due(anyio.current_time())
        finally:
            self._wait = None
