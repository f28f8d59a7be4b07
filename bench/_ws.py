"""A minimal websocket client codec (RFC 6455) for the load generator.

Only what one bench client needs: the HTTP upgrade request and its answer, masked client
frames out, and a streaming parser for server frames in (unmasked as the RFC requires, though
masked frames are accepted too so the codec round-trips). No extensions are offered, so no
frame is ever compressed; fragmented messages are reassembled.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_FRAME = 64 * 1024 * 1024


class WebSocketError(Exception):
    """The peer broke the websocket protocol (bad handshake answer or bad frame)."""


def new_key() -> str:
    """Return a fresh random Sec-WebSocket-Key (base64 of 16 random bytes)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_for(key: str) -> str:
    """Return the Sec-WebSocket-Accept value a server must answer to ``key``."""
    digest = hashlib.sha1(key.encode("ascii") + _GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def upgrade_request(host: str, target: str, key: str) -> bytes:
    """Return the HTTP/1.1 GET that asks ``host`` to upgrade ``target`` to a websocket."""
    return (
        f"GET {target} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    ).encode("ascii")


def check_upgrade_response(head: bytes, key: str) -> None:
    """Check the response head (up to, not including, the blank line) of an upgrade.

    Returns None when the server switched protocols with the right accept value.
    Raises WebSocketError naming the status line or the header that is wrong.
    """
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or status[1] != "101":
        raise WebSocketError(f"upgrade refused: {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if headers.get("sec-websocket-accept") != accept_for(key):
        raise WebSocketError("upgrade answer has a wrong or missing Sec-WebSocket-Accept")


def _xor(payload: bytes, mask: bytes) -> bytes:
    # One big-int XOR instead of a per-byte loop: masking is on every client frame.
    n = len(payload)
    if n == 0:
        return b""
    repeated = (mask * (n // 4 + 1))[:n]
    x = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return x.to_bytes(n, "big")


def encode_frame(
    opcode: int, payload: bytes, *, mask: bytes | None = None, fin: bool = True
) -> bytes:
    """Return one websocket frame carrying ``payload``.

    ``mask`` None picks a random 4-byte mask (what a client must send); ``b""`` sends the
    frame unmasked, as a server would. Raises ValueError for a mask that is not 0 or 4 bytes
    long or an opcode outside 0..15.
    """
    if not 0 <= opcode <= 0xF:
        raise ValueError(f"opcode out of range: {opcode}")
    if mask is None:
        mask = os.urandom(4)
    if len(mask) not in (0, 4):
        raise ValueError("a websocket mask is 4 bytes (or empty for no mask)")
    first = (0x80 if fin else 0) | opcode
    mbit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", first, mbit | 127, n)
    if mask:
        return head + mask + _xor(payload, mask)
    return head + payload


@dataclass(frozen=True, slots=True)
class Message:
    """One complete websocket message (fragments joined) or control frame."""

    opcode: int
    payload: bytes


class FrameParser:
    """Streaming frame parser: feed bytes, get back the complete messages they finish."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._frag_opcode: int | None = None
        self._frag = bytearray()

    @property
    def idle(self) -> bool:
        """Return True when no partial frame is buffered and no fragmented message is open.

        An idle parser has nothing carried over, so its caller may walk whole frames of the
        next read itself and still see them in order.
        """
        return not self._buf and self._frag_opcode is None

    def feed(self, data: bytes) -> list[Message]:
        """Return the messages completed by ``data`` (possibly none).

        Raises WebSocketError on a frame the RFC forbids (oversized, fragmented control frame,
        continuation without a start).
        """
        buf = self._buf
        buf += data
        out: list[Message] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            n = b1 & 0x7F
            hlen = 2
            if n == 126:
                if end - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                hlen = 4
            elif n == 127:
                if end - pos < 10:
                    break
                (n,) = struct.unpack_from("!Q", buf, pos + 2)
                hlen = 10
            if n > _MAX_FRAME:
                raise WebSocketError(f"frame of {n} bytes is over the limit")
            masked = b1 & 0x80
            if masked:
                hlen += 4
            if end - pos < hlen + n:
                break
            payload = bytes(buf[pos + hlen : pos + hlen + n])
            if masked:
                payload = _xor(payload, bytes(buf[pos + hlen - 4 : pos + hlen]))
            pos += hlen + n
            self._take(b0 & 0x80 != 0, b0 & 0x0F, payload, out)
        if pos:
            del buf[:pos]
        return out

    def _take(self, fin: bool, opcode: int, payload: bytes, out: list[Message]) -> None:
        if opcode >= 0x8:
            if not fin:
                raise WebSocketError("a control frame may not be fragmented")
            out.append(Message(opcode, payload))
        elif opcode == OP_CONT:
            if self._frag_opcode is None:
                raise WebSocketError("continuation frame without a first fragment")
            self._frag += payload
            if fin:
                out.append(Message(self._frag_opcode, bytes(self._frag)))
                self._frag_opcode = None
                self._frag.clear()
        elif self._frag_opcode is not None:
            raise WebSocketError("new data frame while a fragmented message is open")
        elif fin:
            out.append(Message(opcode, payload))
        else:
            self._frag_opcode = opcode
            self._frag = bytearray(payload)
