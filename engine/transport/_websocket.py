"""A websocket connection after the HTTP upgrade: reads with wsproto, writes through an Outbox.

Incoming frames (masked, possibly fragmented, control frames, permessage-deflate) are parsed by
wsproto, a well-kept parser. Outgoing frames are ours (``_frames.py``): a broadcast writes the
same prebuilt bytes to every connection, which a per-connection encoder could not do.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.extensions import Extension
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from engine.transport import _frames
from engine.transport._io import close_socket, recv_some
from engine.transport._outbox import Outbox

if TYPE_CHECKING:
    from engine._session import EngineSession

log = logging.getLogger("zapline.engine")

# How long a closing connection waits for the peer's close frame before dropping the socket.
CLOSE_GRACE = 2.0


class MessageTooBig(Exception):
    """A message exceeded maxPayload."""


class WebSocketConn:
    """One upgraded socket. ``session`` is set once the Engine.IO session is bound to it."""

    __slots__ = (
        "sock",
        "outbox",
        "deflate",
        "threshold",
        "window_bits",
        "closed",
        "session",
        "_scope",
        "_ws",
    )

    def __init__(
        self,
        sock: socket.socket,
        *,
        outbox_limit: int,
        spawn: Callable[..., object],
        extensions: list[Extension] | None,
        window_bits: int,
        threshold: int,
        trailing: bytes,
    ) -> None:
        self.sock = sock
        self.outbox = Outbox(sock, limit=outbox_limit, spawn=spawn, on_overflow=self._on_overflow)
        self.deflate = bool(extensions)
        self.threshold = threshold
        self.window_bits = window_bits
        self.closed = False
        self.session: EngineSession | None = None
        self._scope: anyio.CancelScope | None = None
        self._ws = Connection(ConnectionType.SERVER, extensions=extensions)
        if trailing:
            self._ws.receive_data(trailing)

    # -- writing -----------------------------------------------------------------------------

    def write_shared(self, shared: _frames.SharedFrame) -> bool:
        """Write a prebuilt frame; False if closed or the peer is too slow."""
        if self.deflate and len(shared.payload) >= self.threshold:
            return self.outbox.write(shared.deflated)
        return self.outbox.write(shared.plain)

    def write_payload(self, item: str | bytes) -> bool:
        """Write one Engine.IO packet in websocket form (text str or binary bytes)."""
        if isinstance(item, str):
            payload, opcode = item.encode(), _frames.OP_TEXT
        else:
            payload, opcode = item, _frames.OP_BINARY
        if self.deflate and len(payload) >= self.threshold:
            return self.outbox.write(_frames.deflated_frame(payload, opcode, self.window_bits))
        return self.outbox.write(_frames.frame(payload, opcode))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (behind anything still pending) and half-close once it is out.

        The reader drops the socket after a short grace if the peer does not answer. Never
        blocks; safe to call twice.
        """
        if self.closed:
            return
        self.closed = True
        self.outbox.finish(_frames.close_frame(code, reason))
        self.set_deadline(anyio.current_time() + CLOSE_GRACE)

    def set_deadline(self, deadline: float, *, extend: bool = False) -> None:
        """Make the reader stop at ``deadline`` (only ever earlier, unless ``extend``)."""
        scope = self._scope
        if scope is not None:
            scope.deadline = deadline if extend else min(scope.deadline, deadline)

    def _on_overflow(self) -> None:
        session = self.session
        if session is not None:
            session.server.close_session(session, "slow consumer", send_close=False)
        else:
            self.abort()

    def abort(self) -> None:
        """Drop the connection at once (no close handshake)."""
        self.closed = True
        self.outbox.close()
        close_socket(self.sock)

    # -- reading -----------------------------------------------------------------------------

    async def run(
        self,
        on_message: Callable[[WebSocketConn, str | bytes], Awaitable[None] | None],
        max_size: int,
        *,
        deadline: float = math.inf,
    ) -> str:
        """Read messages until the connection ends or ``deadline``; return why it ended.

        ``on_message`` is called for each complete message; it may return an awaitable
        (awaited before reading on, which gives natural backpressure to a flooding client).
        The socket is closed on return, and on cancellation too.
        """
        reason = "transport close"
        try:
            with anyio.CancelScope(deadline=deadline) as scope:
                self._scope = scope
                try:
                    reason = await self._read_loop(on_message, max_size)
                except MessageTooBig:
                    reason = "message too big"
                    self.close(1009, "message too big")
                    await self._linger()
                except (LocalProtocolError, RemoteProtocolError) as exc:
                    log.info("websocket protocol error from peer: %s", exc)
                    reason = "transport error"
                    self.close(1002, "protocol error")
                    await self._linger()
                except (OSError, anyio.ClosedResourceError, anyio.BrokenResourceError):
                    reason = "transport error"
            if scope.cancelled_caught and not self.closed:
                reason = "timeout"
        finally:
            self._scope = None
            self.closed = True
            self.outbox.close()
            close_socket(self.sock)
        return reason

    async def _linger(self) -> None:
        # After our close frame, give the peer the grace period to read it: closing the socket
        # with its unread bytes in our receive buffer would send a RST that can destroy it.
        try:
            while await recv_some(self.sock):
                pass
        except (OSError, anyio.ClosedResourceError):
            pass

    async def _read_loop(
        self,
        on_message: Callable[[WebSocketConn, str | bytes], Awaitable[None] | None],
        max_size: int,
    ) -> str:
        ws = self._ws
        text_parts: list[str] = []
        byte_parts: list[bytes] = []
        size = 0
        while True:
            for event in ws.events():
                if isinstance(event, TextMessage):
                    size += len(event.data)
                    if size > max_size:
                        raise MessageTooBig
                    text_parts.append(event.data)
                    if event.message_finished:
                        message: str | bytes = (
                            "".join(text_parts) if len(text_parts) > 1 else text_parts[0]
                        )
                        text_parts.clear()
                        size = 0
                        result = on_message(self, message)
                        if result is not None:
                            await result
                elif isinstance(event, BytesMessage):
                    size += len(event.data)
                    if size > max_size:
                        raise MessageTooBig
                    byte_parts.append(bytes(event.data))
                    if event.message_finished:
                        message = b"".join(byte_parts)
                        byte_parts.clear()
                        size = 0
                        result = on_message(self, message)
                        if result is not None:
                            await result
                elif isinstance(event, Ping):
                    if not self.closed:
                        self.outbox.write(ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    if not self.closed:
                        # wsproto reports a frame it cannot parse as a close with 1002/1007/1009.
                        code = event.code if event.code not in (None, 1005, 1006) else 1000
                        self.closed = True
                        self.outbox.finish(_frames.close_frame(code))
                    return (
                        "transport close"
                        if event.code in (1000, 1001, 1005, None)
                        else "transport error"
                    )
            data = await recv_some(self.sock)
            if not data:
                return "transport close"
            ws.receive_data(data)
