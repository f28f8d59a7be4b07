"""One Engine.IO session: the transport-neutral state of a client.

Theory of operation
-------------------
A session starts on one transport (HTTP long-polling or websocket) and may move once from
polling to websocket (the ``2probe``/``3probe``/``5`` upgrade). Everything the server sends goes
through ``send_shared`` (prebuilt frame, the broadcast path) or ``send_payloads`` (anything
else); the session hands it to the websocket's outbox, or queues it for the next poll. Packets
from the client arrive through ``receive_packet`` whatever the transport; Socket.IO payloads go
to the sans-IO ``SioConnection`` and its events back to the server.

Heartbeat times live here but the clock is read by one server-wide loop (``_heartbeat.py``),
never by a per-session timer task: an idle session costs no task of its own beyond its
websocket reader.
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING

import anyio

from engine.protocol import EioPacket, EioPacketType, SioConnection
from engine.transport._frames import SharedBatch, SharedFrame

if TYPE_CHECKING:
    from engine._server import SocketServer
    from engine._socket import Socket
    from engine.transport._outbox import Outbox
    from engine.transport._websocket import WebSocketConn

log = logging.getLogger("zapline.engine")

Payload = str | bytes


class EngineSession:
    """Engine.IO state of one client; owned by ``SocketServer.sessions``."""

    __slots__ = (
        "sid",
        "server",
        "ws",
        "probe",
        "queue",
        "waiter",
        "polling",
        "closed",
        "close_reason",
        "next_ping",
        "pong_deadline",
        "opened_at",
        "sio",
        "sockets",
        "remote",
        "acks",
        "ack_counter",
        "connecting",
        "queued_bytes",
        "upgrading",
        "out",
    )

    def __init__(self, sid: str, server: SocketServer, now: float, remote: str) -> None:
        self.sid = sid
        self.server = server
        self.ws: WebSocketConn | None = None
        self.probe: WebSocketConn | None = None
        self.queue: list[Payload] = []
        self.waiter: anyio.Event | None = None
        self.polling = False
        self.closed = False
        self.close_reason = ""
        self.next_ping = now + server.options.ping_interval
        self.pong_deadline = 0.0
        self.opened_at = now
        self.sio = SioConnection()
        self.sockets: dict[str, Socket] = {}
        self.remote = remote
        self.acks: dict[int, object] | None = None
        self.ack_counter = 0
        # Sockets whose CONNECT is being authorised, by namespace. A client DISCONNECT (or a
        # second CONNECT after it) takes the entry away, which tells the connect task to give up.
        self.connecting: dict[str, Socket] = {}
        self.queued_bytes = 0
        self.upgrading = False  # the probe got its 3probe; waiting for the client's "5"
        # The websocket's outbox when its frames go out uncompressed: the broadcast loop writes
        # the shared bytes straight into it (rooms.py). None while polling or with deflate.
        self.out: Outbox | None = None

    @property
    def transport(self) -> str:
        """``"websocket"`` or ``"polling"``."""
        return "websocket" if self.ws is not None else "polling"

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
        if self.closed:
            return False
        self.queue.append(text)
        self.queued_bytes += len(text)
        return self._queued()

    def send_batch(self, texts: list[str], batch: SharedFrame | SharedBatch) -> bool:
        """Send prebuilt text packets (``batch`` holds their frames, in order).

        Returns False if the session cannot take them.
        """
        ws = self.ws
        if ws is not None:
            return ws.write_shared(batch)
        if self.closed:
            return False
        self.queue.extend(texts)
        self.queued_bytes += sum(map(len, texts))
        return self._queued()

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
        if self.closed:
            return False
        self.queue.extend(payloads)
        self.queued_bytes += sum(map(len, payloads))
        return self._queued()

    def _queued(self) -> bool:
        # A polling client that stops polling is a slow consumer too: same bound as a websocket.
        if self.queued_bytes > self.server.options.outbox_limit:
            self.server.close_session(self, "slow consumer", send_close=False)
            return False
        self._wake()
        return True

    def send_message(self, sio_payloads: list[str | bytes]) -> bool:
        """Send Socket.IO packet payloads as Engine.IO MESSAGE packets."""
        return self.send_payloads([("4" + p) if isinstance(p, str) else p for p in sio_payloads])

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.set()

    # -- long-polling ------------------------------------------------------------------------

    async def poll(self) -> str:
        """Wait for packets and return them as one long-polling body (``\\x1e``-joined)."""
        while not self.queue and not self.closed and not self.upgrading:
            waiter = self.waiter = anyio.Event()
            await waiter.wait()
        items, self.queue = self.queue, []
        self.queued_bytes = 0
        if self.closed:
            if self.close_reason != "client close":
                # Whatever was queued, the client must learn that the session is over.
                items.append("1")
            elif not items:
                items = ["6"]  # the client closed it itself: a noop ends its poll loop
        elif not items:
            items = ["6"]  # upgrading: the client pauses polling on this noop
        return "\x1e".join(
            item if isinstance(item, str) else "b" + base64.b64encode(item).decode()
            for item in items
        )

    # -- upgrade -----------------------------------------------------------------------------

    def begin_upgrade(self, conn: WebSocketConn) -> bool:
        """Register ``conn`` as the probe of a polling session; False if not allowed now."""
        if self.closed or self.ws is not None or self.probe is not None:
            return False
        self.probe = conn
        return True

    def finish_upgrade(self, conn: WebSocketConn) -> None:
        """The client sent ``5``: move the session to ``conn`` and flush the poll queue into it."""
        self.probe = None
        self.upgrading = False
        self.use_websocket(conn)
        items, self.queue = self.queue, []
        self.queued_bytes = 0
        for item in items:
            if item != "6":
                conn.write_payload(item)
        # A poll still parked gets a noop so the client's polling loop ends cleanly.
        if self.waiter is not None:
            self.queue.append("6")
            self._wake()

    # -- receiving ---------------------------------------------------------------------------

    def receive_packet(self, packet: EioPacket, now: float) -> None:
        """Apply one packet from the client (any transport). Raises ``ProtocolError``."""
        kind = packet.type
        if kind is EioPacketType.MESSAGE:
            self.sio.receive_message(packet.data)
            self.server.dispatch_sio(self)
        elif kind is EioPacketType.PONG:
            self.pong_deadline = 0.0
            self.next_ping = now + self.server.options.ping_interval
        elif kind is EioPacketType.PING:
            # Engine.IO v3 clients ping; answering is harmless and keeps them alive.
            self.send_payloads(["3" + (packet.data if isinstance(packet.data, str) else "")])
        elif kind is EioPacketType.CLOSE:
            self.server.close_session(self, "client close", send_close=False)
        elif kind is EioPacketType.NOOP:
            pass
        else:
            from engine.protocol import ProtocolError

            raise ProtocolError(f"unexpected Engine.IO packet from client: {kind.name}")

    # -- closing -----------------------------------------------------------------------------

    def mark_closed(self, reason: str) -> None:
        """Transport-level close: wake a parked poll (it answers ``1``) and close the sockets."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self._wake()
