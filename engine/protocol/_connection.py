"""Server-side Socket.IO v5 state for one Engine.IO session.

Theory of operation
-------------------
Rule 1: every Socket.IO state transition lives in this module. The listener feeds each
Engine.IO MESSAGE payload to :meth:`SioConnection.receive_message`, then drains
:meth:`SioConnection.next_event` until it returns ``NEED_DATA``; it acts on the events and
writes whatever the sending methods return. Nothing here does I/O or reads a clock.

Each namespace of the session is in one of three states::

    closed --client CONNECT--> pending --accept()--> connected
       ^                          |                      |
       +------refuse()------------+                      |
       +------client DISCONNECT (pending or connected)---+
       +------disconnect() (server side)-----------------+

* A CONNECT for a namespace that is pending or connected is a protocol error: the official
  client never sends one, and allowing it would let one session hold two sockets on a
  namespace.
* EVENT and ACK packets (binary or not) for a namespace that is not connected are dropped
  without an event, as the reference server does: they are late packets racing a
  disconnect, not errors.
* A client DISCONNECT for a pending namespace yields ``DisconnectReceived`` too, so a runtime
  still authorising the CONNECT knows to give up (it must not ``accept()`` afterwards).
* The client never sends CONNECT_ERROR; receiving one is a protocol error.
* Which namespaces exist, and who may join them, is decided by the runtime: it answers every
  ``ConnectRequest`` with ``accept()`` or ``refuse()``. Ack ids are matched by the runtime too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from ._errors import ProtocolError
from ._socketio import SioDecoder, SioPacket, SioPacketType, encode_sio

__all__ = [
    "NEED_DATA",
    "AckReceived",
    "ConnectRequest",
    "DisconnectReceived",
    "EventReceived",
    "NeedData",
    "SioConnection",
    "SioEvent",
]


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """The client asks to join ``namespace``; ``auth`` is its handshake payload, if any."""

    namespace: str
    auth: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class EventReceived:
    """The client emitted ``name`` with ``args``; ``ack_id`` is set when it wants an ack."""

    namespace: str
    name: str
    args: tuple[Any, ...]
    ack_id: int | None


@dataclass(frozen=True, slots=True)
class AckReceived:
    """The client acknowledged the server's event ``ack_id`` with ``args``."""

    namespace: str
    ack_id: int
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class DisconnectReceived:
    """The client left ``namespace`` (connected or still pending)."""

    namespace: str


class NeedData(Enum):
    """Type of the :data:`NEED_DATA` sentinel (an enum, so type checkers can narrow on it)."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA
"""Returned by :meth:`SioConnection.next_event` when no event is waiting."""

_EVENT_TYPES: Final = frozenset({SioPacketType.EVENT, SioPacketType.BINARY_EVENT})
_ACK_TYPES: Final = frozenset({SioPacketType.ACK, SioPacketType.BINARY_ACK})

SioEvent = ConnectRequest | EventReceived | AckReceived | DisconnectReceived


class SioConnection:
    """Server side Socket.IO v5 state for one Engine.IO session."""

    __slots__ = ("_connected", "_decoder", "_events", "_pending")

    def __init__(self, max_attachments: int = 10) -> None:
        """Start with no namespace joined; binary packets may carry ``max_attachments``."""
        self._decoder = SioDecoder(max_attachments)
        # A list, not a deque: an empty deque allocates a 0.75 KB block, held by every idle
        # connection, and this queue never holds more than the one message just received.
        self._events: list[SioEvent] = []
        self._pending: set[str] = set()
        self._connected: set[str] = set()

    def receive_message(self, message: str | bytes) -> None:
        """Feed one Engine.IO MESSAGE payload (text, or bytes for an attachment).

        Events it produces are queued for :meth:`next_event`.

        Raises:
            ProtocolError: the packet is malformed, is a CONNECT for a namespace already
                pending or connected, is an ACK without an id, or is a CONNECT_ERROR.
        """
        packet = self._decoder.feed(message)
        if packet is None:
            return
        ptype = packet.type
        namespace = packet.namespace
        if ptype in _EVENT_TYPES:
            if namespace in self._connected:
                data = packet.data
                self._events.append(EventReceived(namespace, data[0], tuple(data[1:]), packet.id))
        elif ptype in _ACK_TYPES:
            if namespace in self._connected:
                assert packet.id is not None  # the decoder refuses id-less acks
                self._events.append(AckReceived(namespace, packet.id, tuple(packet.data)))
        elif ptype is SioPacketType.CONNECT:
            if namespace in self._connected or namespace in self._pending:
                raise ProtocolError(f"second CONNECT for namespace {namespace!r}")
            self._pending.add(namespace)
            self._events.append(ConnectRequest(namespace, packet.data))
        elif ptype is SioPacketType.DISCONNECT:
            if namespace in self._connected or namespace in self._pending:
                self._connected.discard(namespace)
                self._pending.discard(namespace)
                self._events.append(DisconnectReceived(namespace))
        else:
            raise ProtocolError("a client must not send CONNECT_ERROR")

    def next_event(self) -> SioEvent | NeedData:
        """Return the oldest queued event, or ``NEED_DATA`` when there is none.

        Raises:
            Nothing.
        """
        if self._events:
            return self._events.pop(0)
        return NEED_DATA

    def accept(self, namespace: str, sid: str, pid: str | None = None) -> list[str | bytes]:
        """Admit the client to ``namespace`` under socket id ``sid``.

        ``pid`` is the private session id of connection state recovery: the client keeps it
        and sends it back (with its last offset) when it reconnects.

        Returns:
            The CONNECT reply ``{"sid": sid}``, or ``{"sid": sid, "pid": pid}`` when ``pid``
            is given, as Engine.IO MESSAGE payloads.

        Raises:
            ProtocolError: ``namespace`` is already connected (a second accept is a bug).
        """
        if namespace in self._connected:
            raise ProtocolError(f"namespace {namespace!r} is already connected")
        # Encode first, so a bad namespace leaves the state untouched.
        data = {"sid": sid} if pid is None else {"sid": sid, "pid": pid}
        reply = encode_sio(SioPacket(SioPacketType.CONNECT, namespace, data))
        self._pending.discard(namespace)
        self._connected.add(namespace)
        return reply

    def refuse(self, namespace: str, message: str, data: Any = None) -> list[str | bytes]:
        """Turn down the client's CONNECT to ``namespace``.

        Returns:
            The CONNECT_ERROR packet ``{"message": message, "data": data}`` (``data`` left
            out when ``None``) as Engine.IO MESSAGE payloads.

        Raises:
            ProtocolError: ``namespace`` is connected (use :meth:`disconnect`).
        """
        if namespace in self._connected:
            raise ProtocolError(f"cannot refuse connected namespace {namespace!r}")
        body: dict[str, Any] = {"message": message}
        if data is not None:
            body["data"] = data
        reply = encode_sio(SioPacket(SioPacketType.CONNECT_ERROR, namespace, body))
        self._pending.discard(namespace)
        return reply

    def emit(
        self, namespace: str, name: str, args: Sequence[Any], ack_id: int | None = None
    ) -> list[str | bytes]:
        """Send event ``name`` with ``args``, asking for an ack when ``ack_id`` is set.

        Returns:
            The Engine.IO MESSAGE payloads (text, then any binary attachments), or ``[]``
            when ``namespace`` is not connected: the client left, so there is nothing to send.

        Raises:
            ProtocolError: bad namespace or ack id.
            TypeError: ``args`` are not JSON-serialisable.
        """
        if namespace not in self._connected:
            return []
        return encode_sio(SioPacket(SioPacketType.EVENT, namespace, [name, *args], ack_id))

    def ack(self, namespace: str, ack_id: int, args: Sequence[Any]) -> list[str | bytes]:
        """Answer the client's event ``ack_id`` with ``args``.

        Returns:
            The Engine.IO MESSAGE payloads, or ``[]`` when ``namespace`` is not connected.

        Raises:
            ProtocolError: bad ack id.
            TypeError: ``args`` are not JSON-serialisable.
        """
        if namespace not in self._connected:
            return []
        return encode_sio(SioPacket(SioPacketType.ACK, namespace, list(args), ack_id))

    def disconnect(self, namespace: str) -> list[str | bytes]:
        """Close ``namespace`` from the server side.

        Returns:
            The DISCONNECT packet as Engine.IO MESSAGE payloads, or ``[]`` when the
            namespace was not connected (the client already left).

        Raises:
            Nothing.
        """
        if namespace not in self._connected:
            return []
        self._connected.discard(namespace)
        return encode_sio(SioPacket(SioPacketType.DISCONNECT, namespace))

    def is_connected(self, namespace: str) -> bool:
        """Return whether the client is connected to ``namespace``."""
        return namespace in self._connected

    @property
    def namespaces(self) -> frozenset[str]:
        """The namespaces the client is connected to (pending ones excluded)."""
        return frozenset(self._connected)
