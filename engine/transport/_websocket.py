"""A websocket connection after the HTTP upgrade: read by the reactor, written through an Outbox.

Incoming frames (masked, possibly fragmented, control frames, permessage-deflate) are parsed by
wsproto, a well-kept parser. Outgoing frames are ours (``_frames.py``): a broadcast writes the
same prebuilt bytes to every connection, which a per-connection encoder could not do.

There is no task per connection: the server's ``Reactor`` calls ``on_readable`` when the socket
has bytes, and everything from there (parsing, the Engine.IO packet, the Socket.IO event) runs
synchronously. The connection ends exactly once, through ``end``, which tells the reactor's
``on_end`` why. What the connection carries (an Engine.IO session, a probe) is the host's
business: ``session`` is an opaque slot for it.
"""

from __future__ import annotations

import functools
import logging
import socket
from typing import TYPE_CHECKING

import anyio
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from engine.transport import _frames
from engine.transport._io import RECV_SIZE, close_socket
from engine.transport._outbox import Outbox

if TYPE_CHECKING:
    from collections.abc import Callable

    from engine.transport._listener import ListenerStats
    from engine.transport._reactor import Reactor

log = logging.getLogger("zapline.engine")

# How long a closing connection waits for the peer's close frame before dropping the socket.
CLOSE_GRACE = 2.0


class MessageTooBig(Exception):
    """A message exceeded maxPayload."""


class _SizeGuard(Extension):
    """Refuses a frame as soon as its header announces more than ``max_size`` bytes.

    wsproto calls every extension with each frame's header before it reads the payload, so
    a client announcing 50 MB is answered with 1009 at once instead of after the first
    megabyte (and never after reading the rest). It keeps no state, so one guard serves
    every connection (``_size_guard``): a message split in fragments, or compressed, is
    checked by its total as its data arrives (``WebSocketConn._events``).
    """

    name = "zapline-size-guard"

    def __init__(self, max_size: int) -> None:
        self._max = max_size

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool | str:
        return False  # never negotiated: it only looks at what arrives

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        if payload_length > self._max and not opcode.iscontrol():
            raise MessageTooBig
        return _NO_RSV


_NO_RSV = RsvBits(False, False, False)


@functools.lru_cache(maxsize=8)
def _size_guard(max_size: int) -> _SizeGuard:
    return _SizeGuard(max_size)


class WebSocketConn:
    """One upgraded socket. ``session`` and ``remote`` are the host's: set once it binds a session."""

    __slots__ = (
        "sock",
        "outbox",
        "deflate",
        "threshold",
        "window_bits",
        "closed",
        "session",
        "remote",
        "_reactor",
        "_fd",
        "_ws",
        "_parts",
        "_size",
        "_max_size",
        "_linger",
        "_ended",
        "_stats",
        "__weakref__",
    )

    def __init__(
        self,
        sock: socket.socket,
        reactor: Reactor[WebSocketConn],
        *,
        stats: ListenerStats,
        stall_timeout: float,
        outbox_limit: int,
        max_size: int,
        spawn: Callable[..., object],
        extensions: list[Extension] | None,
        window_bits: int,
        threshold: int,
    ) -> None:
        self.sock = sock
        self.outbox = Outbox(
            sock,
            limit=outbox_limit,
            spawn=spawn,
            on_overflow=self._on_overflow,
            stall_timeout=stall_timeout,
        )
        self._stats = stats
        self.deflate = bool(extensions)
        self.threshold = threshold
        self.window_bits = window_bits
        self.closed = False
        self.session: object | None = None
        self.remote = "?"
        self._reactor = reactor
        self._fd = sock.fileno()
        self._ws = Connection(
            ConnectionType.SERVER, extensions=[*(extensions or ()), _size_guard(max_size)]
        )
        self._parts: list[str] | list[bytes] | None = None  # a fragmented message so far
        self._size = 0
        self._max_size = max_size
        self._linger: str | None = None  # we closed after an error: discard input, end later
        self._ended = False

    def start(self, trailing: bytes = b"") -> None:
        """Hand the socket to the reactor; ``trailing`` bytes came with the upgrade request."""
        self._reactor.add(self)
        if trailing:
            self._receive(trailing)

    # -- writing -----------------------------------------------------------------------------

    def write_shared(self, shared: _frames.SharedFrame | _frames.SharedBatch) -> bool:
        """Write a prebuilt frame or batch of frames; False if closed or the peer is too slow."""
        if self.deflate:
            return self.outbox.write(shared.for_deflate(self.threshold))
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

        The connection ends when the peer answers, or after ``CLOSE_GRACE`` seconds if it does
        not. Never blocks; safe to call twice.
        """
        if self.closed:
            return
        self.closed = True
        self.outbox.finish(_frames.close_frame(code, reason))
        self.set_deadline(anyio.current_time() + CLOSE_GRACE)

    def set_deadline(self, deadline: float, *, extend: bool = False) -> None:
        """End the connection at ``deadline`` (only ever earlier, unless ``extend``)."""
        if not self._ended:
            self._reactor.set_deadline(self, deadline, extend=extend)

    def _on_overflow(self) -> None:
        if self.outbox.stalled:
            self._stats.stalled += 1
        # The host closes what rides on this connection (and then this connection).
        self._reactor.on_overflow(self)

    def abort(self) -> None:
        """Drop the connection at once (no close handshake)."""
        self.end("transport error")

    def end(self, reason: str) -> None:
        """Stop reading, close the socket and report ``reason`` to the reactor. Idempotent."""
        if self._ended:
            return
        self._ended = True
        self._stats.open -= 1
        self.closed = True
        self.outbox.close()
        self._reactor.drop(self, self._fd)
        close_socket(self.sock)
        self._reactor.on_end(self, reason)
        # The host's session points back at this connection: without this link the pair is
        # freed by reference counting as soon as both are dropped (no full collection).
        self.session = None

    # -- reading (called by the reactor) -----------------------------------------------------

    def on_deadline(self) -> None:
        """The deadline passed: a probe timed out, or the peer never answered our close."""
        if self._linger is not None:
            self.end(self._linger)
        else:
            self.end("transport close" if self.closed else "timeout")

    def on_readable(self) -> None:
        """Read what the socket has and act on it; never blocks, never raises ``OSError``."""
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.end(self._linger or "transport error")
            return
        if not data:
            self.end(self._linger or "transport close")
        elif self._linger is None:
            self._receive(data)
        # Lingering: after our close frame, the peer gets the grace period to read it; closing
        # the socket with its unread bytes in our receive buffer would send a RST.

    def _receive(self, data: bytes) -> None:
        try:
            self._ws.receive_data(data)
            reason = self._events()
        except MessageTooBig:
            self._stats.oversized_messages += 1
            self._fail(1009, "message too big", "message too big")
            return
        except (LocalProtocolError, RemoteProtocolError) as exc:
            log.info("websocket protocol error from %s: %s", self.remote, exc)
            self._fail(1002, "protocol error", "transport error")
            return
        if reason is not None:
            self.end(reason)

    def _fail(self, code: int, text: str, reason: str) -> None:
        self._linger = reason
        self.close(code, text)

    def _events(self) -> str | None:
        """Deliver wsproto's events; return why the connection ended, or None."""
        for event in self._ws.events():
            if isinstance(event, TextMessage | BytesMessage):
                data = event.data
                self._size += len(data)
                if self._size > self._max_size:
                    raise MessageTooBig
                if event.message_finished and self._parts is None:
                    message: str | bytes = data if isinstance(data, str) else bytes(data)
                else:
                    parts: list[str | bytes] = self._parts or []  # type: ignore[assignment]
                    parts.append(data if isinstance(data, str) else bytes(data))
                    self._parts = parts  # type: ignore[assignment]
                    if not event.message_finished:
                        continue
                    message = "".join(parts) if isinstance(data, str) else b"".join(parts)  # type: ignore[arg-type]
                    self._parts = None
                self._size = 0
                if not self.closed:
                    self._reactor.on_message(self, message)
            elif isinstance(event, Ping):
                if not self.closed:
                    self.outbox.write(self._ws.send(event.response()))
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
        return None
