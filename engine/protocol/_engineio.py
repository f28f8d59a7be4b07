"""Engine.IO v4 packet codec: websocket frames and HTTP long-polling payloads.

An Engine.IO packet is a one-digit type followed by its data. Over a websocket each frame
holds one packet; a binary frame is always a MESSAGE and carries the raw bytes with no type
prefix (that prefix byte was dropped in v4). A long-polling body joins packets with the ASCII
record separator (0x1e); binary messages there are written as ``b`` + base64.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import orjson

from ._errors import ProtocolError

__all__ = [
    "NOOP",
    "PING_PROBE",
    "PING_WS",
    "PONG_PROBE",
    "EioPacket",
    "EioPacketType",
    "decode_payload",
    "decode_ws",
    "encode_payload",
    "encode_ws",
    "open_packet",
]

SEPARATOR: Final = "\x1e"

# Prebuilt frames the transport writes many times a second; building them per call would
# be pure waste.
PING_WS: Final = "2"
PONG_PROBE: Final = "3probe"
PING_PROBE: Final = "2probe"
NOOP: Final = "6"


class EioPacketType(IntEnum):
    """Engine.IO v4 packet types; the value is the digit written on the wire."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


@dataclass(frozen=True, slots=True)
class EioPacket:
    """One Engine.IO packet.

    ``data`` is text for every packet type; it is ``bytes`` only for a binary MESSAGE.
    """

    type: EioPacketType
    data: str | bytes = ""


# Indexed by the packet type's value, so encoding needs no int-to-str conversion.
_TYPE_CHARS: Final = "0123456"
_TYPES_BY_CHAR: Final[dict[str, EioPacketType]] = {str(int(t)): t for t in EioPacketType}


def encode_ws(packet: EioPacket) -> str | bytes:
    """Encode ``packet`` as the payload of one websocket frame.

    Returns ``str`` (send as a text frame) for textual packets, or the raw ``bytes`` (send as
    a binary frame) for a binary MESSAGE.

    Raises:
        ProtocolError: ``data`` is bytes on a packet type other than MESSAGE.
    """
    data = packet.data
    if isinstance(data, str):
        return _TYPE_CHARS[packet.type] + data
    if packet.type is not EioPacketType.MESSAGE:
        raise ProtocolError(f"only MESSAGE packets may carry binary data, not {packet.type.name}")
    return bytes(data)


def decode_ws(message: str | bytes) -> EioPacket:
    """Decode the payload of one websocket frame.

    A ``bytes`` frame is a binary MESSAGE whatever its content (possibly empty); a ``str``
    frame is a type digit followed by the packet's data.

    Returns:
        The decoded packet.

    Raises:
        ProtocolError: the text frame is empty or starts with an unknown packet type.
    """
    if not isinstance(message, str):
        return EioPacket(EioPacketType.MESSAGE, bytes(message))
    return _decode_text(message)


def _decode_text(text: str) -> EioPacket:
    if not text:
        raise ProtocolError("empty Engine.IO packet")
    ptype = _TYPES_BY_CHAR.get(text[0])
    if ptype is None:
        raise ProtocolError(f"unknown Engine.IO packet type {text[0]!r}")
    return EioPacket(ptype, text[1:])


def encode_payload(packets: Iterable[EioPacket]) -> str:
    """Encode ``packets`` as one HTTP long-polling response body.

    Returns:
        The packets joined by the record separator, binary messages as ``b`` + base64.

    Raises:
        ProtocolError: ``packets`` is empty, a text packet's data contains the record
            separator (it would split the packet in two on the other side), or bytes sit on
            a packet type other than MESSAGE.
    """
    parts: list[str] = []
    for packet in packets:
        data = packet.data
        if isinstance(data, str):
            if SEPARATOR in data:
                raise ProtocolError("packet data contains the payload separator 0x1e")
            parts.append(_TYPE_CHARS[packet.type] + data)
        elif packet.type is EioPacketType.MESSAGE:
            parts.append("b" + binascii.b2a_base64(data, newline=False).decode("ascii"))
        else:
            raise ProtocolError(
                f"only MESSAGE packets may carry binary data, not {packet.type.name}"
            )
    if not parts:
        raise ProtocolError("a long-polling payload needs at least one packet")
    return SEPARATOR.join(parts)


def decode_payload(body: str) -> list[EioPacket]:
    """Decode one HTTP long-polling request body into its packets, in order.

    Returns:
        At least one packet.

    Raises:
        ProtocolError: the body or one of its packets is empty, a packet type is unknown, or
            a ``b`` packet is not valid base64.
    """
    if not body:
        raise ProtocolError("empty long-polling payload")
    packets: list[EioPacket] = []
    for part in body.split(SEPARATOR):
        if part[:1] == "b":
            try:
                # strict_mode still lets surplus trailing "=" through; the length test stops it.
                if len(part) % 4 != 1:
                    raise ValueError("length is not a multiple of 4")
                raw = binascii.a2b_base64(part[1:], strict_mode=True)
            except ValueError as exc:  # binascii.Error, or non-ASCII text
                raise ProtocolError(f"invalid base64 in binary packet: {exc}") from None
            packets.append(EioPacket(EioPacketType.MESSAGE, raw))
        else:
            packets.append(_decode_text(part))
    return packets


def open_packet(
    sid: str,
    upgrades: Sequence[str],
    ping_interval_ms: int,
    ping_timeout_ms: int,
    max_payload: int,
) -> EioPacket:
    """Build the OPEN packet that answers a handshake.

    Returns:
        An OPEN packet whose data is the handshake JSON, keys in the order clients and
        captures show: ``sid, upgrades, pingInterval, pingTimeout, maxPayload``.

    Raises:
        Nothing for well-typed arguments.
    """
    handshake = {
        "sid": sid,
        "upgrades": list(upgrades),
        "pingInterval": ping_interval_ms,
        "pingTimeout": ping_timeout_ms,
        "maxPayload": max_payload,
    }
    return EioPacket(EioPacketType.OPEN, orjson.dumps(handshake).decode())
