"""Socket.IO v5 packet codec (the default parser's text format).

A packet travels as one Engine.IO MESSAGE whose text is::

    <type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]

followed, for BINARY_EVENT / BINARY_ACK, by one binary MESSAGE per attachment; the JSON holds
``{"_placeholder": true, "num": n}`` where the n-th attachment belongs. The namespace is left
out when it is ``/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

import orjson

from ._errors import ProtocolError

__all__ = ["SioDecoder", "SioPacket", "SioPacketType", "encode_sio", "encode_sio_str"]


class SioPacketType(IntEnum):
    """Socket.IO v5 packet types; the value is the digit written on the wire."""

    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


@dataclass(frozen=True, slots=True)
class SioPacket:
    """One Socket.IO packet.

    ``data`` is JSON-able; for events it is ``[name, *args]``, for acks the list of args.
    ``bytes`` may sit anywhere inside it (they travel as attachments). ``id`` is the ack id.
    """

    type: SioPacketType
    namespace: str = "/"
    data: Any = None
    id: int | None = None


MAX_ACK_ID: Final = 2**63 - 1

# Indexed by type value. A binary type reached through this table has no attachments, and
# the wire still wants the "0-" count for it.
_PREFIXES: Final = ("0", "1", "2", "3", "4", "50-", "60-")
_TYPES_BY_CHAR: Final[dict[str, SioPacketType]] = {str(int(t)): t for t in SioPacketType}
_DIGITS: Final = frozenset("0123456789")
_BINARY_TYPES: Final = frozenset({SioPacketType.BINARY_EVENT, SioPacketType.BINARY_ACK})
_NO_ID_TYPES: Final = frozenset(
    {SioPacketType.CONNECT, SioPacketType.DISCONNECT, SioPacketType.CONNECT_ERROR}
)
_AS_BINARY: Final = {
    SioPacketType.EVENT: SioPacketType.BINARY_EVENT,
    SioPacketType.BINARY_EVENT: SioPacketType.BINARY_EVENT,
    SioPacketType.ACK: SioPacketType.BINARY_ACK,
    SioPacketType.BINARY_ACK: SioPacketType.BINARY_ACK,
}


def _head(prefix: str, namespace: str, ack_id: int | None) -> str:
    if namespace != "/":
        if namespace[:1] != "/" or "," in namespace:
            raise ProtocolError(f"namespace must start with '/' and hold no ',': {namespace!r}")
        prefix += namespace + ","
    if ack_id is not None:
        if not 0 <= ack_id <= MAX_ACK_ID:
            raise ProtocolError(f"ack id out of range: {ack_id}")
        prefix += str(ack_id)
    return prefix


def encode_sio_str(packet: SioPacket) -> str:
    """Encode a packet known to carry no binary data: the broadcast hot path.

    Must not be called with bytes inside ``data`` (use :func:`encode_sio`); it does not look.

    Returns:
        The text of the single Engine.IO MESSAGE (without the Engine.IO ``4``).

    Raises:
        ProtocolError: bad namespace or ack id.
        TypeError: ``data`` is not JSON-serialisable (``orjson.JSONEncodeError``), which
            includes bytes.
    """
    if packet.namespace == "/" and packet.id is None:
        head = _PREFIXES[packet.type]
    else:
        head = _head(_PREFIXES[packet.type], packet.namespace, packet.id)
    data = packet.data
    if data is None:
        return head
    return head + orjson.dumps(data).decode()


def encode_sio(packet: SioPacket) -> list[str | bytes]:
    """Encode any packet, extracting binary attachments.

    If ``data`` holds bytes, bytearray or memoryview anywhere (in nested lists, tuples or dict
    values), an EVENT is sent as BINARY_EVENT and an ACK as BINARY_ACK, each buffer replaced
    by a placeholder.

    Returns:
        The Engine.IO MESSAGE payloads in order: the packet text, then one ``bytes`` item per
        attachment.

    Raises:
        ProtocolError: bad namespace or ack id, or binary data in a CONNECT, DISCONNECT or
            CONNECT_ERROR packet.
        TypeError: ``data`` is not JSON-serialisable (``orjson.JSONEncodeError``).
    """
    data = packet.data
    if data is None:
        return [_head(_PREFIXES[packet.type], packet.namespace, packet.id)]
    try:
        # orjson refuses bytes, so plain data costs one dumps and no tree walk.
        body = orjson.dumps(data).decode()
    except orjson.JSONEncodeError:
        buffers: list[bytes] = []
        stripped = _deconstruct(data, buffers)
        if not buffers:
            raise
        binary_type = _AS_BINARY.get(packet.type)
        if binary_type is None:
            raise ProtocolError(
                f"binary data cannot be sent in a {packet.type.name} packet"
            ) from None
        prefix = f"{int(binary_type)}{len(buffers)}-"
        body = orjson.dumps(stripped).decode()
        head = _head(prefix, packet.namespace, packet.id)
        return [head + body, *buffers]
    return [_head(_PREFIXES[packet.type], packet.namespace, packet.id) + body]


# orjson encodes at most 254 levels of nesting; deeper data could never be sent anyway, and
# walking it by recursion would end in a RecursionError instead of the documented TypeError.
_MAX_DEPTH = 254


def _deconstruct(data: Any, buffers: list[bytes], depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        raise TypeError(f"data nested deeper than {_MAX_DEPTH} levels cannot be encoded")
    if isinstance(data, (bytes, bytearray, memoryview)):
        buffers.append(bytes(data))
        return {"_placeholder": True, "num": len(buffers) - 1}
    if isinstance(data, (list, tuple)):
        return [_deconstruct(item, buffers, depth + 1) for item in data]
    if isinstance(data, dict):
        return {key: _deconstruct(value, buffers, depth + 1) for key, value in data.items()}
    return data


class SioDecoder:
    """Reassembles packets from Engine.IO MESSAGE payloads.

    A binary packet's attachments arrive as the binary messages that follow its text, so the
    decoder holds the text until they are all in.
    """

    __slots__ = ("_buffers", "_max_attachments", "_pending", "_refs")

    def __init__(self, max_attachments: int = 10) -> None:
        """Create a decoder that refuses packets announcing more than ``max_attachments``."""
        self._max_attachments = max_attachments
        self._pending: SioPacket | None = None
        self._refs: list[tuple[Any, Any, int]] = []
        self._buffers: list[bytes] = []

    def feed(self, message: str | bytes) -> SioPacket | None:
        """Take one Engine.IO MESSAGE payload.

        Returns:
            The completed packet, or ``None`` while a binary packet still awaits attachments.
            Binary packets keep their wire type with the bytes put back in place.

        Raises:
            ProtocolError: malformed text or JSON, invalid data for the packet type, bad
                namespace or ack id, bad placeholders, too many attachments, bytes with no
                binary packet pending, or text while attachments are pending. The decoder
                is reset, but the session should be closed.
        """
        if isinstance(message, str):
            if self._pending is not None:
                self._reset()
                raise ProtocolError("text message while binary attachments were expected")
            return self._decode_text(message)
        pending = self._pending
        if pending is None:
            raise ProtocolError("binary message with no binary packet pending")
        self._buffers.append(bytes(message))
        if len(self._buffers) < len(self._refs):
            return None
        for container, key, num in self._refs:
            container[key] = self._buffers[num]
        self._reset()
        return pending

    def _reset(self) -> None:
        self._pending = None
        self._refs = []
        self._buffers = []

    def _decode_text(self, text: str) -> SioPacket | None:
        if not text:
            raise ProtocolError("empty Socket.IO packet")
        ptype = _TYPES_BY_CHAR.get(text[0])
        if ptype is None:
            raise ProtocolError(f"unknown Socket.IO packet type {text[0]!r}")
        end = len(text)
        i = 1
        attachments = 0
        if ptype in _BINARY_TYPES:
            dash = text.find("-", 1, 12)
            count = text[1:dash]
            if dash < 0 or not count or not _DIGITS.issuperset(count):
                raise ProtocolError("binary packet without a valid '<count>-' prefix")
            attachments = int(count)
            if attachments > self._max_attachments:
                raise ProtocolError(
                    f"{attachments} attachments announced, at most {self._max_attachments} allowed"
                )
            i = dash + 1
        namespace = "/"
        if i < end and text[i] == "/":
            comma = text.find(",", i)
            if comma < 0:
                comma = end
            namespace = text[i:comma]
            i = comma + 1
        ack_id: int | None = None
        j = i
        while j < end and text[j] in _DIGITS:
            j += 1
        if j > i:
            if j - i > 19:
                raise ProtocolError("ack id too long")
            ack_id = int(text[i:j])
            if ack_id > MAX_ACK_ID:
                raise ProtocolError(f"ack id out of range: {ack_id}")
            i = j
        data: Any = None
        if i < end:
            try:
                data = orjson.loads(text[i:])
            except orjson.JSONDecodeError as exc:
                raise ProtocolError(f"invalid JSON in Socket.IO packet: {exc}") from None
        _check_payload(ptype, data, i < end, ack_id)
        packet = SioPacket(ptype, namespace, data, ack_id)
        if ptype not in _BINARY_TYPES:
            return packet
        refs = _find_placeholders(data, attachments)
        if not refs:
            return packet
        self._pending = packet
        self._refs = refs
        return None


# Enum member lookups cost a class attribute fetch each; the decoder runs per message.
_CONNECT: Final = SioPacketType.CONNECT
_DISCONNECT: Final = SioPacketType.DISCONNECT
_CONNECT_ERROR: Final = SioPacketType.CONNECT_ERROR
_EVENT_TYPES: Final = frozenset({SioPacketType.EVENT, SioPacketType.BINARY_EVENT})


def _check_payload(ptype: SioPacketType, data: Any, has_data: bool, ack_id: int | None) -> None:
    if ptype in _EVENT_TYPES:
        ok = isinstance(data, list) and len(data) > 0 and isinstance(data[0], str)
        expected = "a list starting with the event name"
    elif ack_id is not None and ptype in _NO_ID_TYPES:
        raise ProtocolError(f"{ptype.name} packets carry no ack id")
    elif ptype is _CONNECT:
        ok = not has_data or isinstance(data, dict)
        expected = "an object or nothing"
    elif ptype is _DISCONNECT:
        ok = not has_data
        expected = "nothing"
    elif ptype is _CONNECT_ERROR:
        ok = has_data and isinstance(data, (dict, str))
        expected = "an object or a string"
    else:
        if ack_id is None:
            raise ProtocolError(f"{ptype.name} packet without an ack id")
        ok = isinstance(data, list)
        expected = "a list"
    if not ok:
        raise ProtocolError(f"{ptype.name} data must be {expected}")


def _find_placeholders(data: Any, attachments: int) -> list[tuple[Any, Any, int]]:
    # Iterative, because orjson accepts nesting deeper than Python's recursion limit.
    refs: list[tuple[Any, Any, int]] = []
    seen: set[int] = set()
    stack: list[Any] = [data]
    while stack:
        node = stack.pop()
        items = enumerate(node) if isinstance(node, list) else node.items()
        for key, value in items:
            if isinstance(value, dict):
                if value.get("_placeholder") is True:
                    num = value.get("num")
                    if type(num) is not int or not 0 <= num < attachments or num in seen:
                        raise ProtocolError(f"invalid attachment placeholder num {num!r:.40}")
                    seen.add(num)
                    refs.append((node, key, num))
                else:
                    stack.append(value)
            elif isinstance(value, list):
                stack.append(value)
    if len(refs) != attachments:
        raise ProtocolError(f"{attachments} attachments announced, {len(refs)} placeholders found")
    return refs
