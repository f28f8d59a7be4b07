"""Room registry and fan-out: encode once, write to many.

Theory of operation
-------------------
A room is a set of sockets keyed by (namespace, name). A broadcast is built once by the caller
(the Engine.IO text packets, and their frames concatenated in one ``SharedFrame`` or
``SharedBatch``); ``broadcast`` then walks the target sockets and hands the same objects to
each session. A websocket session writes the prebuilt bytes straight to its socket, one
``send`` for the whole batch (see ``transport/_outbox.py``); a polling session queues the
texts. No per-recipient encoding, copy, task or await. A socket whose connect handlers are
still running keeps the texts for after its CONNECT reply (``Socket.hold``).

Sessions that refuse the write (closed, slow consumer) are collected and closed after the
loop, so the loop never mutates the sets it walks.

This hub is single-node: it reaches the sockets of this process. Cross-node fan-out goes through
a broker that calls ``broadcast`` on every node.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING

from engine.transport._frames import SharedBatch, SharedFrame

if TYPE_CHECKING:
    from engine._session import EngineSession
    from engine._socket import Socket


class RoomHub:
    """Room membership for all namespaces of one server."""

    __slots__ = ("_rooms",)

    def __init__(self) -> None:
        self._rooms: dict[tuple[str, str], set[Socket]] = {}

    def join(self, socket: Socket, room: str) -> None:
        """Add ``socket`` to ``room`` of its namespace (idempotent)."""
        key = (socket.namespace, room)
        members = self._rooms.get(key)
        if members is None:
            members = self._rooms[key] = set()
        members.add(socket)
        socket.rooms.add(room)

    def leave(self, socket: Socket, room: str) -> None:
        """Remove ``socket`` from ``room`` (idempotent); empty rooms are dropped."""
        key = (socket.namespace, room)
        members = self._rooms.get(key)
        if members is not None:
            members.discard(socket)
            if not members:
                del self._rooms[key]
        socket.rooms.discard(room)

    def leave_all(self, socket: Socket) -> None:
        """Remove ``socket`` from every room it is in."""
        for room in tuple(socket.rooms):
            self.leave(socket, room)

    def members(self, namespace: str, room: str) -> frozenset[Socket]:
        """Return a snapshot of the sockets in ``room``."""
        return frozenset(self._rooms.get((namespace, room), ()))

    def count(self, namespace: str, room: str) -> int:
        """Return how many sockets are in ``room``."""
        return len(self._rooms.get((namespace, room), ()))

    def rooms(self, namespace: str) -> list[str]:
        """Return the names of the non-empty rooms of ``namespace``."""
        return [name for (ns, name) in self._rooms if ns == namespace]

    def targets(
        self,
        namespace: str,
        to: str | Iterable[str] | None,
        skip: str | Iterable[str] = (),
        by_id: Mapping[str, Socket] | None = None,
    ) -> Collection[Socket]:
        """Return the sockets an emit reaches, each once.

        ``to`` names rooms or socket ids (a name that is a room is taken as the room); None
        means every socket of ``namespace`` in ``by_id``. ``skip`` names rooms or socket ids to
        leave out. The result is a fresh collection, so closing sessions while walking it is
        safe. Raises nothing.
        """
        table = self._rooms
        by_id = by_id if by_id is not None else {}
        exclude = [skip] if isinstance(skip, str) else list(skip)
        if to is None:
            found = {s for s in by_id.values() if s.namespace == namespace}
        else:
            names = [to] if isinstance(to, str) else list(to)
            if len(names) == 1 and not exclude:  # the hot path: one room, nobody skipped
                members = table.get((namespace, names[0]))
                if members:
                    return tuple(members)
                direct = by_id.get(names[0])
                return (direct,) if direct is not None and direct.namespace == namespace else ()
            found = set()
            for name in names:
                members = table.get((namespace, name))
                if members:
                    found.update(members)
                else:
                    direct = by_id.get(name)
                    if direct is not None and direct.namespace == namespace:
                        found.add(direct)
        skip_ids: set[str] = set()
        for name in exclude:
            members = table.get((namespace, name))
            if members:
                found.difference_update(members)
            else:
                skip_ids.add(name)
        if skip_ids:
            found = {s for s in found if s.id not in skip_ids}
        return found

    def broadcast(
        self,
        sockets: Iterable[Socket],
        texts: list[str],
        shared: SharedFrame | SharedBatch,
    ) -> list[EngineSession]:
        """Write prebuilt packets to every socket; return the sessions that refused them.

        ``texts`` are the Engine.IO text packets (what a polling session queues), ``shared``
        their frames, in the same order (what a websocket gets, in one write).
        """
        # The hot loop of every fan-out: per recipient, two attribute loads and one call into
        # the outbox (itself one ``send``). Polling and deflate sessions take the slow path.
        failed: list[EngineSession] = []
        plain = shared.plain
        for socket in sockets:
            if not socket.connected and socket.hold(texts):
                continue  # its connect handlers run: the packets follow its CONNECT reply
            session = socket.session
            out = session.out
            if out is not None:
                if out.write(plain):
                    continue
            elif session.send_batch(texts, shared):
                continue
            failed.append(session)
        return failed
