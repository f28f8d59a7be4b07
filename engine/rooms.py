"""Room registry and fan-out: encode once, write to many.

Theory of operation
-------------------
A room is a set of sockets keyed by (namespace, name). A broadcast is built once by the caller
(one Engine.IO text packet, one ``SharedFrame``); ``broadcast`` then walks the union of the
target rooms and hands the same objects to each session. A websocket session writes the
prebuilt bytes straight to its socket (see ``transport/_outbox.py``); a polling session queues
the text. No per-recipient encoding, copy, task or await.

Sessions that refuse the write (closed, slow consumer) are collected and closed after the
loop, so the loop never mutates the sets it walks.

This hub is single-node: it reaches the sockets of this process. Cross-node fan-out goes through
a broker that calls ``broadcast`` on every node.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from engine.transport._frames import SharedFrame

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
        self, namespace: str, rooms: Iterable[str], exclude: Iterable[str] = ()
    ) -> Iterable[Socket]:
        """Return the sockets in any of ``rooms`` and in none of the ``exclude`` rooms/sids."""
        table = self._rooms
        names = rooms if isinstance(rooms, list | tuple) else list(rooms)
        if len(names) == 1 and not exclude:
            return tuple(table.get((namespace, names[0]), ()))
        found: set[Socket] = set()
        for name in names:
            found.update(table.get((namespace, name), ()))
        for name in exclude:
            found.difference_update(table.get((namespace, name), ()))
            found = {s for s in found if s.id != name}
        return found

    def broadcast(self, sockets: Iterable[Socket], text: str, shared: SharedFrame) -> list[EngineSession]:
        """Write one prebuilt packet to every socket; return the sessions that refused it."""
        failed: list[EngineSession] = []
        for socket in sockets:
            session = socket.session
            if not session.send_shared(text, shared):
                failed.append(session)
        return failed
