"""One client's session at runtime: the sans-IO Engine.IO state bound to its transports.

The state and every transition are ``engine.protocol.EioSession``'s. This object adds what
needs I/O: the websocket the session lives on (or its upgrade probe), the event a parked poll
waits on, and the Socket.IO state of the client (its ``SioConnection``, sockets by namespace,
pending connects, ack callbacks). Everything the server sends goes through ``send_shared`` /
``send_batch`` (prebuilt frames, the broadcast path) or ``send_payloads`` (anything else):
straight into the websocket's outbox, or into the Engine.IO queue for the next poll.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from engine.protocol import EioSession, SioConnection

if TYPE_CHECKING:
    from engine.transport._frames import SharedBatch, SharedFrame
    from engine.transport._outbox import Outbox
    from engine.transport._websocket import WebSocketConn

Payload = str | bytes

__all__ = ["EngineSession"]


class EngineSession:
    """A client of the server; owned by the Engine.IO host's ``sessions``."""

    __slots__ = (
        "sid",
        "eio",
        "remote",
        "ws",
        "probe",
        "out",
        "waiter",
        "limit",
        "on_overflow",
        "connect_deadline",
        "scheduled_at",
        "sio",
        "sockets",
        "connecting",
        "acks",
        "ack_counter",
        "takes_offsets",
        "__weakref__",
    )

    def __init__(
        self,
        eio: EioSession,
        remote: str,
        *,
        limit: int,
        on_overflow: Callable[[EngineSession], None],
    ) -> None:
        """Wrap ``eio``; a polling queue past ``limit`` bytes calls ``on_overflow(self)``."""
        self.sid = eio.sid
        self.eio = eio
        self.remote = remote
        self.ws: WebSocketConn | None = None
        self.probe: WebSocketConn | None = None
        # The websocket's outbox when its frames go out uncompressed: the broadcast loop writes
        # the shared bytes straight into it (rooms.py). None while polling or with deflate.
        self.out: Outbox | None = None
        self.waiter: anyio.Event | None = None
        self.limit = limit
        self.on_overflow = on_overflow
        self.connect_deadline = math.inf  # set by the host: close if no namespace joined by then
        self.scheduled_at = math.inf  # the host's timer entry for this session
        self.sio = SioConnection()
        # Socket.IO sockets (``engine._socket.Socket``) by namespace, and those whose CONNECT
        # is being authorised. Typed loosely: the socket module sits above this one.
        self.sockets: dict[str, Any] = {}
        self.connecting: dict[str, Any] = {}
        self.acks: dict[int, Callable[..., Any]] | None = None
        self.ack_counter = 0
        # Whether the client can take recovery offsets as a last event argument (decided at
        # the handshake by ``engine.protocol.takes_offsets``; python-socketio cannot).
        self.takes_offsets = True

    def __repr__(self) -> str:
        return f"<EngineSession {self.sid} {self.eio.state.value} from {self.remote}>"

    # -- views of the Engine.IO state --------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the session is over."""
        return self.eio.closed

    @property
    def close_reason(self) -> str:
        """Why the session closed (empty while open)."""
        return self.eio.close_reason

    @property
    def transport(self) -> str:
        """``"websocket"`` or ``"polling"``."""
        return "websocket" if self.ws is not None else "polling"

    @property
    def polling(self) -> bool:
        """Whether a GET is parked on this session."""
        return self.eio.polling

    @property
    def queue(self) -> list[Payload]:
        """Packets waiting for the next poll (websocket form)."""
        return self.eio.queue

    @property
    def wake_at(self) -> float:
        """When the host's timer must look at this session next."""
        return min(self.eio.deadline, self.connect_deadline)

    def register_ack(self, callback: Callable[..., Any]) -> int:
        """Store ``callback`` under the next ack id; return the id."""
        if self.acks is None:
            self.acks = {}
        ack_id = self.ack_counter
        self.ack_counter += 1
        self.acks[ack_id] = callback
        return ack_id

    # -- sending -----------------------------------------------------------------------------

    def use_websocket(self, ws: WebSocketConn) -> None:
        """From now on everything goes out on ``ws``."""
        self.ws = ws
        self.out = None if ws.deflate else ws.outbox

    def send_shared(self, text: str, shared: SharedFrame) -> bool:
        """Send one prebuilt text packet; return False if the session cannot take it."""
        ws = self.ws
        if ws is not None:
            return ws.write_shared(shared)
        return self._enqueue([text])

    def send_batch(self, texts: list[str], batch: SharedFrame | SharedBatch) -> bool:
        """Send prebuilt text packets (``batch`` holds their frames, in order).

        Returns False if the session cannot take them.
        """
        ws = self.ws
        if ws is not None:
            return ws.write_shared(batch)
        return self._enqueue(texts)

    def send_payloads(self, payloads: list[Payload]) -> bool:
        """Send Engine.IO packets given in websocket form (text packet str, binary bytes).

        Returns False if the session is closed or too slow to take them (it is then closed).
        An empty list sends nothing and returns True.
        """
        if not payloads:
            # Waking a parked poll with nothing would answer it with an empty body.
            return True
        ws = self.ws
        if ws is not None:
            ok = True
            for item in payloads:
                ok = ws.write_payload(item) and ok
            return ok
        return self._enqueue(payloads)

    def send_message(self, sio_payloads: list[str | bytes]) -> bool:
        """Send Socket.IO packet payloads as Engine.IO MESSAGE packets."""
        return self.send_payloads([("4" + p) if isinstance(p, str) else p for p in sio_payloads])

    def _enqueue(self, items: Sequence[Payload]) -> bool:
        if self.eio.enqueue(items, self.limit):
            self.wake()
            return True
        # A polling client that stops polling is a slow consumer too: same bound as a websocket.
        if not self.eio.closed:
            self.on_overflow(self)
        return False

    def wake(self) -> None:
        """Let a parked poll look at the session again."""
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.set()

    # -- long-polling ------------------------------------------------------------------------

    async def wait_poll(self) -> str:
        """Wait until the parked poll can be answered; return its body (``\\x1e``-joined)."""
        eio = self.eio
        try:
            while not eio.poll_ready():
                waiter = self.waiter = anyio.Event()
                await waiter.wait()
        except BaseException:
            eio.abandon_poll()  # cancelled: a later GET must not count as a second poll
            raise
        return eio.finish_poll()
