"""What the listener asks of the Engine.IO server above it: the host contract.

The transport speaks HTTP and websocket frames; it knows nothing of sessions beyond their
ids. Every Engine.IO decision (which sid exists, what a poll answers, what a posted payload
does, whether a websocket may probe) is the host's, through the small ``EngineHost``
protocol below. The host sees the transport only as the ``WebSocketConn`` objects it is
handed, so the import arrows point one way: the server imports the transport, never the
reverse.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from engine.options import EngineOptions
    from engine.transport._listener import ListenerStats
    from engine.transport._reactor import Reactor
    from engine.transport._routes import HttpRoute
    from engine.transport._websocket import WebSocketConn

__all__ = ["EioError", "EngineHost"]


class EioError(Enum):
    """Engine.IO error answers (the reference server's ``Server.errors``): (code, message)."""

    UNKNOWN_TRANSPORT = (0, "Transport unknown")
    UNKNOWN_SID = (1, "Session ID unknown")
    BAD_HANDSHAKE_METHOD = (2, "Bad handshake method")
    BAD_REQUEST = (3, "Bad request")
    FORBIDDEN = (4, "Forbidden")
    UNSUPPORTED_PROTOCOL_VERSION = (5, "Unsupported protocol version")

    @property
    def code(self) -> int:
        """The numeric code of the JSON error body."""
        return int(self.value[0])

    @property
    def message(self) -> str:
        """The message of the JSON error body."""
        return str(self.value[1])


class EngineHost(Protocol):
    """The Engine.IO server as the listener sees it.

    Methods never raise for a client's mistake: they answer an ``EioError`` (sent as HTTP
    400) and close what must be closed themselves.
    """

    @property
    def options(self) -> EngineOptions:
        """The engine's settings (path, CORS, sizes, timeouts)."""
        ...

    @property
    def reactor(self) -> Reactor[WebSocketConn]:
        """The reader of every upgraded websocket."""
        ...

    @property
    def listener_stats(self) -> ListenerStats:
        """Counters of the listener (connections, refusals, timeouts)."""
        ...

    @property
    def http_routes(self) -> Mapping[str, Mapping[str, HttpRoute]]:
        """Routes mounted beside Engine.IO: ``path -> {method -> route}`` (``_routes.py``)."""
        ...

    def spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Start ``fn(*args)`` in the host's task group (an outbox's flusher)."""
        ...

    def open_polling(self, remote: str, *, takes_offsets: bool = True) -> str:
        """Open a long-polling session for ``remote``; return its OPEN packet (the body).

        ``takes_offsets`` is what ``engine.protocol.takes_offsets`` said of the request.
        """
        ...

    async def poll(self, sid: str) -> str | EioError:
        """Wait for packets of ``sid`` and return them as one long-polling body."""
        ...

    def check_post(self, sid: str) -> EioError | None:
        """Whether a POST for ``sid`` may deliver packets (asked before its body is read)."""
        ...

    def post(self, sid: str, body: bytes | None) -> EioError | None:
        """Apply a POSTed payload; ``None`` means it was larger than maxPayload."""
        ...

    def websocket_sid(self, sid: str) -> EioError | None:
        """Whether a websocket request naming ``sid`` gets its 101 (unknown sid: refused)."""
        ...

    def open_websocket(self, ws: WebSocketConn, remote: str, *, takes_offsets: bool = True) -> None:
        """Bind a new websocket-only session to ``ws`` (upgraded, not yet read)."""
        ...

    def attach_probe(self, ws: WebSocketConn, sid: str) -> None:
        """Make ``ws`` the upgrade probe of ``sid``, or close it if the session cannot take one."""
        ...
