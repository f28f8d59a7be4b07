"""A client's connection to one namespace: the object handlers receive.

A socket reaches its server only through ``SocketOwner``, the calls it needs (rooms,
disconnecting, flushing deferred emits), so this module sits below the server in the import
graph.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from engine.protocol import SioPacket, SioPacketType, encode_sio

if TYPE_CHECKING:
    from engine._session import EngineSession


# What a socket id looks like (``engine._engine.new_id``): a taken-back id must be one.
_SID = re.compile(r"[A-Za-z0-9_-]{8,64}")


class SocketOwner(Protocol):
    """What a ``Socket`` asks of its server."""

    def join_room(self, socket: Socket, room: str) -> None:
        """Add ``socket`` to ``room`` of its namespace."""
        ...

    def leave_room(self, socket: Socket, room: str) -> None:
        """Remove ``socket`` from ``room``."""
        ...

    def disconnect_socket(self, socket: Socket, reason: str, *, notify: bool) -> None:
        """Remove ``socket`` from its namespace and rooms; run the disconnect handlers."""
        ...

    def flush_deferred(self) -> None:
        """Write the deferred emits parked so far (a direct emit must not overtake them)."""
        ...

    def socket_id_free(self, sid: str) -> bool:
        """Whether no connected socket has the id ``sid``."""
        ...


class ConnectionRefused(Exception):
    """Raise from a connect handler to refuse: the client gets CONNECT_ERROR with ``message``."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class AckTimeout(TimeoutError):
    """The client did not acknowledge an emit in time."""


class Socket:
    """One client in one namespace. ``data`` holds what the connect middleware put there."""

    __slots__ = (
        "id",
        "namespace",
        "session",
        "server",
        "data",
        "rooms",
        "connected",
        "early",
        "pid",
        "__weakref__",
    )

    def __init__(
        self, sid: str, namespace: str, session: EngineSession, server: SocketOwner
    ) -> None:
        self.id = sid
        self.namespace = namespace
        self.session = session
        self.server = server
        self.data: dict[str, Any] = {}
        self.rooms: set[str] = set()
        self.connected = False
        # What is sent to this socket while its connect handlers run (its own emits, room
        # emits after it joined), as Engine.IO packets, in order: it goes out right after the
        # CONNECT reply (the client would drop an event for a namespace it has not joined yet).
        self.early: list[list[str | bytes]] = []
        # Connection state recovery's private session id: a connect handler that sets it has
        # it sent in the CONNECT reply (``{"sid", "pid"}``); None sends ``{"sid"}`` alone.
        self.pid: str | None = None

    def __repr__(self) -> str:
        return f"<Socket {self.id} ns={self.namespace} engine={self.session.sid}>"

    @property
    def transport(self) -> str:
        """The Engine.IO transport currently in use."""
        return self.session.transport

    def take_id(self, sid: str) -> bool:
        """Take ``sid`` as this socket's id (a recovered session's), before it is accepted and
        has joined a room; return False (keeping its own) when ``sid`` is in use or malformed."""
        if self.connected or self.rooms or not _SID.fullmatch(sid or ""):
            return False
        if sid == self.id:
            return True
        if not self.server.socket_id_free(sid):
            return False
        self.id = sid
        return True

    @property
    def takes_offsets(self) -> bool:
        """Whether this client gets recovery offsets appended to its events (its session's)."""
        return self.session.takes_offsets

    def emit(
        self,
        event: str,
        *args: Any,
        callback: Callable[..., Any] | None = None,
        offset: str | None = None,
    ) -> bool:
        """Send ``event`` to this client; ``callback(*ack_args)`` runs when it acknowledges.

        ``offset`` (connection state recovery) is appended as the last argument if the client
        ``takes_offsets``, and left out otherwise. From a connect handler, the event is held
        and sent right after the CONNECT reply, in emit order (and dropped if the connect is
        refused). Returns False if it was not sent: the socket is not connected, or the
        session is closed or too slow (and then closed). Raises ``TypeError`` for arguments
        that are not JSON-serialisable.
        """
        if offset is not None and self.session.takes_offsets:
            args = (*args, offset)
        return self._send(event, args, callback) is not None

    def hold(self, payloads: Sequence[str | bytes]) -> bool:
        """Keep Engine.IO packets for after the CONNECT reply if the connect handlers run.

        Returns True if they were kept, False if the socket is not connecting (then nothing
        is kept: a connected socket is written to directly, a refused one gets nothing).
        """
        if not self.is_connecting:
            return False
        self.early.append(list(payloads))
        return True

    def _send(
        self, event: str, args: tuple[Any, ...], callback: Callable[..., Any] | None
    ) -> int | None:
        """Emit; return the ack id (-1 without callback), or None if nothing was sent."""
        session = self.session
        ack_id = None if callback is None else session.register_ack(callback)
        if self.is_connecting:
            packet = SioPacket(SioPacketType.EVENT, self.namespace, [event, *args], ack_id)
            self.early.append([("4" + p) if isinstance(p, str) else p for p in encode_sio(packet)])
            return -1 if ack_id is None else ack_id
        payloads = session.sio.emit(self.namespace, event, list(args), ack_id)
        self.server.flush_deferred()  # per-recipient order: what was emitted before goes first
        if payloads and session.send_message(payloads):
            return -1 if ack_id is None else ack_id
        if ack_id is not None and session.acks is not None:
            session.acks.pop(ack_id, None)
        return None

    # The timeout is part of the ack contract, as in python-socketio's call().
    async def call(self, event: str, *args: Any, timeout: float = 10.0) -> tuple[Any, ...]:  # noqa: ASYNC109
        """Emit ``event`` and wait for the client's ack; return its arguments.

        Raises ``AckTimeout`` after ``timeout`` seconds, or at once if the emit could not be
        sent (socket not connected, session closed or too slow). Raises ``RuntimeError`` in a
        connect handler: the client cannot answer before the handler returns.
        """
        if self.is_connecting:
            raise RuntimeError("Socket.call() in a connect handler would wait for itself")
        result: list[tuple[Any, ...]] = []
        done = anyio.Event()

        def on_ack(*values: Any) -> None:
            result.append(values)
            done.set()

        ack_id = self._send(event, args, on_ack)
        if ack_id is None:
            raise AckTimeout(f"{event!r} could not be sent to {self.id}: not connected")
        try:
            with anyio.move_on_after(timeout):
                await done.wait()
        finally:
            acks = self.session.acks
            if not result and acks is not None:
                acks.pop(ack_id, None)  # a late ack then finds nothing to call
        if not result:
            raise AckTimeout(f"no ack for {event!r} from {self.id} within {timeout} s")
        return result[0]

    @property
    def is_connecting(self) -> bool:
        """Whether the connect handlers are still deciding on this socket."""
        return not self.connected and self.session.connecting.get(self.namespace) is self

    def join(self, room: str) -> None:
        """Join ``room`` in this namespace; a no-op once the socket is disconnected."""
        # A handler that awaited past the client's departure must not leave a dead member
        # behind: nothing would ever remove it.
        if self.connected or self.is_connecting:
            self.server.join_room(self, room)

    def leave(self, room: str) -> None:
        """Leave ``room``."""
        self.server.leave_room(self, room)

    def disconnect(self) -> None:
        """Disconnect this namespace from the server side (the client sees ``io server disconnect``)."""
        self.server.disconnect_socket(self, "server namespace disconnect", notify=True)


ConnectHandler = Callable[[Socket, dict[str, Any] | None], Awaitable[None] | None]
EventHandler = Callable[..., Any]
DisconnectHandler = Callable[[Socket, str], Awaitable[None] | None]


@dataclass
class Namespace:
    """Handlers of one namespace."""

    name: str
    connect: list[ConnectHandler] = field(default_factory=list)
    disconnect: list[DisconnectHandler] = field(default_factory=list)
    events: dict[str, EventHandler] = field(default_factory=dict)
    any_event: EventHandler | None = None
