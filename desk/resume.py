"""Socket.IO connection state recovery from the event log: a reconnecting client gets exactly
what it missed, in order, once, and its rooms back, on this process or any other.

Theory of operation
-------------------
Every desk connect of a client that takes offsets (the official ``socket.io-client``; not
python-socketio's) gets a private session id, ``socket.pid``, sent in the CONNECT reply: a
compact token signed with the JWT secret (``desk.pids``) naming the tenant, the user, when it
was issued and the seq the journal had emitted for the tenant when the socket joined its
rooms. Every logged event reaches the client with its seq as the offset. A client that
reconnects sends ``{pid, offset}`` with its auth:

1. The token is verified again (an expired one is refused as on any connect).
2. A pid whose signature does not hold gets a fresh pid and ``resync:required``; a valid pid
   of another user or tenant is refused (CONNECT_ERROR).
3. The offset (``auth.offset``, or the pid's seq when the client got nothing) must lie in the
   retained log: not above what the journal emitted, not below the oldest kept event.
   Otherwise a fresh pid and ``resync:required {reason}``.
4. The rooms come back: tenant, user and supervisors' rooms from the token, plus every
   ``conversation:{id}`` the session had joined (in memory for ``ZAPLINE_RECOVERY_WINDOW``
   seconds after the disconnect, then from ``recovery_sessions``) that the user may still see.
5. The log is read up to the journal's last emitted seq for the tenant; then, in ONE
   synchronous step (no await), the socket joins its rooms, gets the replay (the events
   whose rooms meet its rooms, with their offsets) and keeps the same pid, so the client's
   ``socket.recovered`` is true. Everything the journal emits after that step reaches the
   socket live: nothing is missed, nothing comes twice.

The conversation rooms a session joins are written to storage behind the hot path, in
batches (``run``), and pruned with the log.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc

from desk import logcontext as logs
from desk.journal import Journal
from desk.pids import issue_pid, read_pid
from engine import ConnectionRefused, Socket
from storage import LoggedEvent, Storage

__all__ = ["Resumer"]

log = logging.getLogger("desk.resume")

# More missed events than this is no recovery: the client is told to refetch instead.
MAX_REPLAY = 10_000
# Seconds between two write-behind flushes of the sessions' rooms.
FLUSH_INTERVAL = 1.0
READ_BATCH = 1000

# (tenant_id, user_id, role, conversation_id) -> may that user see that conversation?
ConversationCheck = Callable[[str, str, str, str], Awaitable[bool]]


@dataclass(slots=True)
class _Session:
    tenant_id: str
    user_id: str
    rooms: set[str] = field(default_factory=set)
    sockets: int = 0
    gone_at: float | None = None


class Resumer:
    """Recovery for the desk's sockets: pids, the sessions' rooms, the replay."""

    def __init__(
        self,
        journal: Journal,
        storage: Storage,
        secret: str,
        *,
        window: float = 120.0,
        visible: ConversationCheck | None = None,
    ) -> None:
        self.journal = journal
        self.storage = storage
        self._secret = secret
        self.window = window
        self._visible = visible
        self._sessions: dict[str, _Session] = {}
        self._dirty: set[str] = set()
        self._wakeup = anyio.Event()
        self.outcomes: Counter[str] = Counter()
        """Recoveries by outcome: recovered, refused, or the resync reason."""
        self.replayed = 0

    # -- connect -----------------------------------------------------------------------------

    async def connect(
        self,
        socket: Socket,
        tenant_id: str,
        user_id: str,
        role: str,
        rooms: list[str],
        auth: dict[str, Any] | None,
    ) -> None:
        """Join ``rooms`` (the token's), recovering the session ``auth`` names if it can.

        Raises ConnectionRefused for a pid of another user or tenant.
        """
        pid = auth.get("pid") if isinstance(auth, dict) else None
        takes = socket.takes_offsets
        reason: str | None = None
        if takes and isinstance(pid, str) and pid:
            assert isinstance(auth, dict)
            reason = await self._recover(socket, tenant_id, user_id, role, rooms, pid, auth)
            if reason is None:
                self.outcomes["recovered"] += 1
                return
            self.outcomes[reason] += 1
        for room in rooms:
            socket.join(room)
        if takes:
            socket.pid = issue_pid(
                self._secret, tenant_id, user_id, self.journal.last(tenant_id), socket.id
            )
            self._start(socket.pid, tenant_id, user_id, set())
        if reason is not None:
            log.info("socket %s not recovered (%s): resync required", socket.id, reason)
            socket.emit("resync:required", {"reason": reason})

    async def _recover(
        self,
        socket: Socket,
        tenant_id: str,
        user_id: str,
        role: str,
        rooms: list[str],
        pid: str,
        auth: dict[str, Any],
    ) -> str | None:
        # Returns None once recovered (rooms joined, replay sent), else the resync reason.
        claims = read_pid(self._secret, pid)
        if claims is None:
            return "unknown_session"
        if claims.tenant_id != tenant_id or claims.user_id != user_id:
            self.outcomes["refused"] += 1
            raise ConnectionRefused("Recovery refused: the session belongs to another user")
        offset = _offset(auth.get("offset"), claims.seq)
        if offset is None:
            return "bad_offset"
        joined = set(rooms) | await self._session_rooms(pid, tenant_id, user_id, role)
        if offset > self.journal.last(tenant_id):
            # Another node (or a task here) logged it and this journal has not emitted it yet.
            await self.journal.catch_up(tenant_id)
        if offset > self.journal.last(tenant_id):
            return "offset_ahead"
        if offset < self.journal.last(tenant_id):
            oldest = await self.storage.event_oldest_seq(tenant_id)
            if oldest is None or offset < oldest - 1:
                return "offset_expired"
        missed: list[LoggedEvent] = []
        cursor = offset
        while True:
            target = self.journal.last(tenant_id)
            while cursor < target:
                found = await self.storage.events_after(tenant_id, cursor, limit=READ_BATCH)
                found = [e for e in found if e.seq <= target]
                if not found or found[0].seq != cursor + 1:
                    return "offset_expired"  # pruned meanwhile
                missed.extend(found)
                cursor = found[-1].seq
                if len(missed) > MAX_REPLAY:
                    return "too_many_missed"
            if self.journal.last(tenant_id) == target:
                break
        # From here to the end: no await. The journal cannot emit in between, so the
        # replay ends exactly where the live stream starts.
        if socket.take_id(claims.socket_id):  # socket.io gives a recovered socket its old id
            logs.socket_id.set(socket.id)
        for room in joined:
            socket.join(room)
        socket.pid = pid
        sent = 0
        for event in missed:
            if joined.intersection(event.rooms):
                socket.emit(event.name, event.payload, offset=str(event.seq))
                sent += 1
        self.replayed += sent
        self._start(pid, tenant_id, user_id, {r for r in joined if r.startswith("conversation:")})
        log.info("socket %s recovered from offset %d: %d events replayed", socket.id, offset, sent)
        return None

    async def _session_rooms(self, pid: str, tenant_id: str, user_id: str, role: str) -> set[str]:
        session = self._sessions.get(pid)
        if session is not None and (
            session.gone_at is None or time.monotonic() - session.gone_at <= self.window
        ):
            candidates = set(session.rooms)
        else:
            saved = await self.storage.get_recovery_session(pid)
            if saved is None or saved[0] != tenant_id or saved[1] != user_id:
                return set()
            candidates = set(saved[2])
        kept = set()
        for room in candidates:
            conversation_id = room.removeprefix("conversation:")
            if room == conversation_id:
                continue
            if self._visible is None or await self._visible(
                tenant_id, user_id, role, conversation_id
            ):
                kept.add(room)
        return kept

    # -- sessions ----------------------------------------------------------------------------

    def _start(self, pid: str, tenant_id: str, user_id: str, rooms: set[str]) -> None:
        session = self._sessions.get(pid)
        if session is None:
            session = self._sessions[pid] = _Session(tenant_id, user_id)
        session.rooms = set(rooms)
        session.sockets += 1
        session.gone_at = None
        self._mark(pid)

    def joined(self, socket: Socket, room: str) -> None:
        """``socket`` joined a conversation room: its session gets it back on recovery."""
        session = None if socket.pid is None else self._sessions.get(socket.pid)
        if session is not None and room not in session.rooms:
            session.rooms.add(room)
            self._mark(socket.pid)

    def left(self, socket: Socket, room: str) -> None:
        """``socket`` left a conversation room."""
        session = None if socket.pid is None else self._sessions.get(socket.pid)
        if session is not None and room in session.rooms:
            session.rooms.discard(room)
            self._mark(socket.pid)

    def disconnected(self, socket: Socket) -> None:
        """``socket`` is gone: its session is kept ``window`` seconds in memory."""
        session = None if socket.pid is None else self._sessions.get(socket.pid)
        if session is not None:
            session.sockets -= 1
            if session.sockets <= 0:
                session.gone_at = time.monotonic()

    def _mark(self, pid: str | None) -> None:
        if pid is not None:
            self._dirty.add(pid)
            self._wakeup.set()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Write the sessions' rooms behind, in batches, and forget old sessions, until
        cancelled."""
        task_status.started()
        try:
            while True:
                if not self._dirty:
                    self._wakeup = anyio.Event()
                    with anyio.move_on_after(max(self.window, FLUSH_INTERVAL)):
                        await self._wakeup.wait()
                await anyio.sleep(FLUSH_INTERVAL)
                try:
                    await self.flush()
                except Exception as exc:  # kept dirty: the next pass writes them
                    log.warning("recovery sessions not saved: %s", exc)
                self._expire()
        finally:
            # A clean stop saves what changed since the last pass (a crash loses <= 1 s).
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                try:
                    await self.flush()
                except Exception as exc:
                    log.warning("recovery sessions not saved at shutdown: %s", exc)

    async def flush(self) -> int:
        """Save the sessions whose rooms changed; return how many. Raises what storage
        raises (they stay to be saved)."""
        pids, self._dirty = self._dirty, set()
        batch = []
        for pid in pids:
            session = self._sessions.get(pid)
            if session is not None:
                batch.append((pid, session.tenant_id, session.user_id, sorted(session.rooms)))
        try:
            await self.storage.save_recovery_sessions(batch)
        except BaseException:
            self._dirty |= pids
            raise
        return len(batch)

    def _expire(self) -> None:
        now = time.monotonic()
        for pid, session in list(self._sessions.items()):
            if session.gone_at is not None and now - session.gone_at > self.window:
                if pid not in self._dirty:
                    del self._sessions[pid]

    def statistics(self) -> dict[str, Any]:
        """Sessions held in memory, recoveries by outcome, events replayed."""
        return {
            "sessions": len(self._sessions),
            "outcomes": dict(self.outcomes),
            "replayed": self.replayed,
        }


def _offset(value: Any, default: int) -> int | None:
    if value is None:
        return default
    # ASCII only: str.isdigit() also takes "²" (which int() refuses) and fullwidth digits.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
        return int(value)
    return None
