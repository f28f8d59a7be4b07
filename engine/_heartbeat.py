"""The heartbeat timer of a server: one task, one heap, a deadline per session.

Theory of operation
-------------------
Every session has its own schedule (``EioSession.deadline``: its next PING, or the end of
its pong clock; and for a session that has not joined a namespace yet, its connect
deadline). A task per session would cost a task per idle client, and one loop that walks
every session at a fixed period pings late by up to a period, and at the same instant for
everybody. So the timer is a min-heap of ``(when, seq, session)``: one task sleeps until the
earliest entry, hands every due session to the host's ``on_due`` and sleeps again.

Entries are never removed: ``schedule`` pushes one only when the session's wanted time is
earlier than its live entry (``session.scheduled_at``); an entry whose time no longer matches
``scheduled_at`` is stale and skipped when it surfaces. A session whose deadline moved later
(a PONG arrived) keeps its early entry; when it surfaces, ``on_due`` finds nothing to do and
the session is scheduled again at its new time. So each session has one or two entries.

A deadline earlier than the one the task sleeps towards moves its sleep earlier (a cancel
scope's deadline), so nothing waits for a later wake-up.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from engine._session import EngineSession

__all__ = ["Heartbeat"]

log = logging.getLogger("zapline.engine")

# Sessions due within this much of the earliest are handled in the same wake-up: a PING a
# few milliseconds early costs nothing, a wake-up per session would.
SLACK = 0.002


class Heartbeat:
    """Calls ``on_due(session, now)`` at each session's ``wake_at``."""

    __slots__ = ("_heap", "_seq", "_on_due", "_wait")

    def __init__(self, on_due: Callable[[EngineSession, float], None]) -> None:
        self._heap: list[tuple[float, int, EngineSession]] = []
        self._seq = itertools.count()
        self._on_due = on_due
        self._wait: anyio.CancelScope | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, session: EngineSession) -> None:
        """Make sure ``on_due`` runs for ``session`` at its ``wake_at`` (or earlier)."""
        when = session.wake_at
        if when >= session.scheduled_at or when == math.inf:
            return
        session.scheduled_at = when
        heapq.heappush(self._heap, (when, next(self._seq), session))
        wait = self._wait
        if wait is not None and when < wait.deadline:
            wait.deadline = when

    def run_due(self, now: float) -> None:
        """Hand every session due by ``now`` to ``on_due``; reschedule those still open.

        A session due within ``SLACK`` of ``now`` is handled now, as if at its own time (so
        it has work to do); one rescheduled meanwhile waits for the next round.
        """
        heap = self._heap
        limit = now + SLACK
        due: list[tuple[float, EngineSession]] = []
        while heap and heap[0][0] <= limit:
            when, _, session = heapq.heappop(heap)
            if when != session.scheduled_at:
                continue  # superseded by an earlier entry, already handled
            session.scheduled_at = math.inf
            due.append((when, session))
        on_due = self._on_due
        for when, session in due:
            if session.closed:
                continue
            try:
                on_due(session, max(now, when))
            except Exception:
                # One session's bug must not stop every other session's heartbeat.
                log.exception("heartbeat of session %s failed", session.sid)
                continue
            if not session.closed:
                self.schedule(session)

    async def run(self) -> None:
        """Serve the schedule until cancelled."""
        heap = self._heap
        try:
            while True:
                with anyio.CancelScope(deadline=heap[0][0] if heap else math.inf) as scope:
                    self._wait = scope
                    await anyio.sleep_forever()
                self._wait = None
                self.run_due(anyio.current_time())
        finally:
            self._wait = None
