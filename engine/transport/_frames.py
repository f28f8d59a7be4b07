"""Server-side websocket frames (RFC 6455) and the opening handshake's accept key.

Outgoing frames are built here, once per broadcast, and the same bytes go to every recipient.
Server frames are never masked, so a frame is a 2/4/10-byte header plus the payload.
With permessage-deflate negotiated as ``server_no_context_takeover`` the compressed bytes of a
message do not depend on the connection either, so they too are built once and shared.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_FIN = 0x80
_RSV1 = 0x40
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_DEFLATE_TAIL = b"\x00\x00\xff\xff"


def frame(payload: bytes, opcode: int = OP_TEXT, *, rsv1: bool = False) -> bytes:
    """Return one unmasked, final websocket frame carrying ``payload``."""
    first = _FIN | opcode | (_RSV1 if rsv1 else 0)
    size = len(payload)
    if size < 126:
        header = bytes((first, size))
    elif size < 65536:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload


def deflate_message(payload: bytes, window_bits: int) -> bytes:
    """Compress one message for permessage-deflate without context takeover (RFC 7692 7.2.1)."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -window_bits, 8)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    if data.endswith(_DEFLATE_TAIL):
        data = data[:-4]
    return data


def deflated_frame(payload: bytes, opcode: int, window_bits: int) -> bytes:
    """Return a compressed (RSV1) frame of ``payload``."""
    return frame(deflate_message(payload, window_bits), opcode, rsv1=True)


def close_frame(code: int = 1000, reason: str = "") -> bytes:
    """Return a close frame with ``code`` and a short UTF-8 ``reason``."""
    return frame(struct.pack("!H", code) + reason.encode()[:120], OP_CLOSE)


def accept_key(client_key: str) -> str:
    """Return the ``Sec-WebSocket-Accept`` value for the client's ``Sec-WebSocket-Key``."""
    digest = hashlib.sha1(client_key.strip().encode() + _GUID).digest()
    return base64.b64encode(digest).decode()


class SharedFrame:
    """A message's frame, built at most once per form (plain, deflated) for all recipients."""

    __slots__ = ("payload", "opcode", "_plain", "_deflated", "_window_bits")

    def __init__(self, payload: bytes, opcode: int = OP_TEXT, window_bits: int = 11) -> None:
        self.payload = payload
        self.opcode = opcode
        self._plain: bytes | None = None
        self._deflated: bytes | None = None
        self._window_bits = window_bits

    @property
    def plain(self) -> bytes:
        """The uncompressed frame."""
        if self._plain is None:
            self._plain = frame(self.payload, self.opcode)
        return self._plain

    @property
    def deflated(self) -> bytes:
        """The permessage-deflate frame."""
        if self._deflated is None:
            self._deflated = deflated_frame(self.payload, self.opcode, self._window_bits)
        return self._deflated

    def for_deflate(self, threshold: int) -> bytes:
        """The bytes for a connection with permessage-deflate: compressed from ``threshold`` on."""
        return self.deflated if len(self.payload) >= threshold else self.plain


class SharedBatch:
    """Several messages for the same recipients: their frames concatenated once, for all.

    A recipient then gets one ``send`` for the whole batch instead of one per message: at the
    floor, the send syscall is most of a delivery's cost.
    """

    __slots__ = ("frames", "_plain", "_deflated")

    def __init__(self, frames: list[SharedFrame]) -> None:
        self.frames = frames
        self._plain: bytes | None = None
        self._deflated: bytes | None = None

    @property
    def plain(self) -> bytes:
        """Every message's uncompressed frame, in order, in one buffer."""
        if self._plain is None:
            self._plain = b"".join([f.plain for f in self.frames])
        return self._plain

    def for_deflate(self, threshold: int) -> bytes:
        """The batch for a connection with permessage-deflate (each frame as ``for_deflate``)."""
        if self._deflated is None:
            self._deflated = b"".join([f.for_deflate(threshold) for f in self.frames])
        return self._deflated
