"""A client's connection to one namespace: the object handlers receive."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from engine._server import SocketServer
    from engine._session import EngineSession


class AckTimeout(TimeoutError):
    """The client did not acknowledge an emit in time."""


class Socket:
    """One client in one namespace. ``data`` holds what the connect middleware put there."""

    __slots__ = ("id", "namespace", "session", "server", "data", "rooms", "connected", "__weakref__")

    def __init__(self, sid: str, namespace: str, session: EngineSession, server: SocketServer) -> None:
        self.id = sid
        self.namespace = namespace
        self.session = session
        self.server = server
        self.data: dict[str, Any] = {}
        self.rooms: set[str] = set()
        self.connected = False

    def __repr__(self) -> str:
        return f"<Socket {self.id} ns={self.namespace} engine={self.session.sid}>"

    @property
    def transport(self) -> str:
        """The Engine.IO transport currently in use."""
        return self.session.transport

    def emit(self, event: str, *args: Any, callback: Callable[..., Any] | None = None) -> bool:
        """Send ``event`` to this client; ``callback(*ack_args)`` runs when it acknowledges.

        Returns False if the session could not take it (closed or slow).
        """
        ack_id = None
        if callback is not None:
            ack_id = self.server.register_ack(self.session, callback)
        payloads = self.session.sio.emit(self.namespace, event, list(args), ack_id)
        return self.session.send_message(payloads)

    async def call(self, event: str, *args: Any, timeout: float = 10.0) -> tuple[Any, ...]:
        """Emit ``event`` and wait for the client's ack; return its arguments.

        Raises ``AckTimeout`` after ``timeout`` seconds.
        """
        result: list[tuple[Any, ...]] = []
        done = anyio.Event()

        def on_ack(*values: Any) -> None:
            result.append(values)
            done.set()

        self.emit(event, *args, callback=on_ack)
        with anyio.move_on_after(timeout):
            await done.wait()
        if not result:
            raise AckTimeout(f"no ack for {event!r} from {self.id} within {timeout} s")
        return result[0]

    def join(self, room: str) -> None:
        """Join ``room`` in this namespace."""
        self.server.rooms.join(self, room)

    def leave(self, room: str) -> None:
        """Leave ``room``."""
        self.server.rooms.leave(self, room)

    def disconnect(self) -> None:
        """Disconnect this namespace from the server side (the client sees ``io server disconnect``)."""
        self.server.disconnect_socket(self, "server namespace disconnect", notify=True)
