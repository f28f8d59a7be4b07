"""Many cheap Socket.IO clients in one process, speaking Engine.IO v4 over raw websockets.

A client is an asyncio Protocol (no task, no stream per connection): it writes the upgrade
request, answers Engine.IO pings, sends the Socket.IO CONNECT with its token, and hands each
``message:new`` to the pool's current ledger. Every other event is dropped after a prefix
check, so JSON is decoded only for the messages being measured.

Receiving has two paths. The general one runs every read through ``FrameParser`` and handles
anything RFC 6455 allows. The fast one is what a measured phase spends its time in: the server
writes each recipient whole, unmasked, unfragmented text frames under 64 KiB, so while the
handshake is done and the parser holds nothing, ``data_received`` walks the frames of the read
in place (no copy per frame, no Message objects), reads seq and send time of a bench
``message:new`` with byte searches, and skips other events after a prefix check. An incomplete
last frame is kept as a tail and joined to the next read; the first frame the walk does not
handle (masked, fragmented, control, 8-byte length) and everything after it goes to the
parser, and the general path stays in charge until the parser is idle again.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import orjson

from bench._stats import DeliveryLedger, parse_body
from bench._ws import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameParser,
    WebSocketError,
    check_upgrade_response,
    encode_frame,
    new_key,
    upgrade_request,
)

MESSAGE_NEW_PREFIX = b'42["message:new",'
_PONG = encode_frame(OP_TEXT, b"3", mask=b"\x00\x00\x00\x00")  # a zero mask is still a mask
_MAX_HEAD = 16 * 1024


def connect_packet(token: str) -> bytes:
    """Return the Socket.IO CONNECT packet (Engine.IO message) for namespace "/" with a token."""
    return b"40" + orjson.dumps({"token": token})


def event_content(packet: bytes) -> str | None:
    """Return ``message.content`` of a ``42["message:new",{...}]`` packet.

    Returns None for any other packet or a payload without a text content. A content that
    is an object (``{"text": ...}`` or ``{"body": ...}``) yields that text.
    """
    if not packet.startswith(MESSAGE_NEW_PREFIX):
        return None
    try:
        event = orjson.loads(memoryview(packet)[2:])
        content = event[1]["message"]["content"]
    except (orjson.JSONDecodeError, LookupError, TypeError):
        return None
    if isinstance(content, dict):
        content = content.get("text", content.get("body"))
    return content if isinstance(content, str) else None


_CONTENT_MARK = b'"content":"bench '
_time_ns = time.time_ns


def delivery_of(packet: bytes) -> tuple[int, int] | None:
    """Return (seq, sent_ns) of a bench ``message:new`` packet; None if it is not one.

    The load generator's hot path: a byte search for the compact ``"content":"bench `` form
    (what orjson writes) instead of parsing the whole JSON, with the full parse as the
    fallback for any other spelling (a baseline's ``json.dumps`` puts a space after colons).
    """
    start = packet.find(_CONTENT_MARK)
    if start >= 0:
        start += len(_CONTENT_MARK)
        parts = packet[start : packet.find(b'"', start)].split(b" ")
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            return int(parts[0]), int(parts[1])
    content = event_content(packet)
    return parse_body(content) if content is not None else None


def split_socket_url(url: str) -> tuple[str, int, str]:
    """Return (host, port, request target) of the Engine.IO websocket endpoint at ``url``.

    Raises ValueError for a URL that is not http(s)/ws(s) with a host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "ws", "https", "wss") or not parts.hostname:
        raise ValueError(f"not a socket URL: {url!r}")
    port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
    path = parts.path.rstrip("/") or ""
    if not path.endswith("/socket.io"):
        path += "/socket.io"
    return parts.hostname, port, f"{path}/?EIO=4&transport=websocket"


class BenchClient(asyncio.Protocol):
    """One Socket.IO client; ``connected`` resolves once the server acknowledged CONNECT."""

    def __init__(self, pool: ClientPool, index: int, tenant: int, token: str) -> None:
        self.pool = pool
        self.index = index
        self.tenant = tenant
        self.token = token
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.started_ns = 0
        self.handshake_ns = 0
        self.open = False
        self._transport: asyncio.Transport | None = None
        self._key = new_key()
        self._head: bytearray | None = bytearray()
        self._parser = FrameParser()
        # True once the handshake is done and the parser is idle: data_received walks frames
        self._fast = False
        self._tail = b""  # an incomplete frame the fast path left for the next read

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        # uvloop's transports are not asyncio.Transport subclasses, so no isinstance check
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(upgrade_request(self.pool.host_header, self.pool.target, self._key))

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        if self.open:
            self.pool.disconnects += 1
        self.open = False
        self._fail(ConnectionError(f"connection closed during handshake: {exc}"))

    def data_received(self, data: bytes) -> None:  # noqa: D102
        if not self._fast:
            self._receive_general(data)
            return
        now = _time_ns()
        if self._tail:
            data = self._tail + data
            self._tail = b""
        ledger = self.pool.ledger
        startswith = data.startswith
        find = data.find
        prefix = MESSAGE_NEW_PREFIX
        mark_at = _CONTENT_MARK
        end = len(data)
        pos = 0
        while pos < end:
            if data[pos] != 0x81:  # FIN + text: anything else is for the parser
                break
            try:  # an IndexError here is a header cut short by the end of the read
                n = data[pos + 1]
                if n == 126:
                    n = (data[pos + 2] << 8) | data[pos + 3]
                    start = pos + 4
                elif n < 126:
                    start = pos + 2
                else:  # an 8-byte length or the mask bit
                    break
            except IndexError:
                break
            stop = start + n
            if stop > end:
                break
            # data[start + 4] is the "m" of message:new: one byte read before the full check
            if n > 16 and data[start + 4] == 0x6D and startswith(prefix, start):
                if ledger is not None:
                    # delivery_of's byte search, on a short window instead of the whole frame
                    at = find(mark_at, start)
                    if at >= 0:
                        at += 17  # len(_CONTENT_MARK)
                        text, quote, _ = data[at : at + 64].partition(b'"')  # a short window
                        seq, _, sent = text.partition(b" ")
                        # the quote ends the content inside this frame, and it is "<d+> <d+>"
                        if quote and at + len(text) < stop and seq.isdigit() and sent.isdigit():
                            ledger.deliver(self.index, self.tenant, int(seq), int(sent), now)
                            pos = stop
                            continue
                    self._on_packet(data[start:stop], now)  # anything else: the full parse
            elif n < 2 or data[start] != 0x34 or data[start + 1] != 0x32:
                self._on_packet(data[start:stop], now)  # not "42": _on_packet drops events
            pos = stop
        else:
            return
        # a break: the frame at pos is either incomplete or one the walk does not take
        if data[pos] == 0x81 and (pos + 1 == end or data[pos + 1] <= 126):
            self._tail = data[pos:]
        else:
            self._receive_frames(data[pos:], now)

    def _receive_general(self, data: bytes) -> None:
        """Take one read through the upgrade answer and FrameParser: every case, any state.

        Returns None; a bad handshake answer or frame aborts the connection.
        """
        now = _time_ns()
        if self._tail:
            data, self._tail = self._tail + data, b""
        if self._head is not None:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > _MAX_HEAD:
                    self._abort(WebSocketError("upgrade answer head too long"))
                return
            head, data = bytes(self._head[:end]), bytes(self._head[end + 4 :])
            self._head = None
            try:
                check_upgrade_response(head, self._key)
            except WebSocketError as exc:
                self._abort(exc)
                return
            self._fast = True
            if not data:
                return
        self._receive_frames(data, now)

    def _receive_frames(self, data: bytes, now: int) -> None:
        try:
            messages = self._parser.feed(data)
        except WebSocketError as exc:
            self._fast = False
            self._abort(exc)
            return
        self._fast = self._parser.idle
        for msg in messages:
            if msg.opcode == OP_TEXT:
                self._on_packet(msg.payload, now)
            elif msg.opcode == OP_PING:
                self._write(encode_frame(OP_PONG, msg.payload))
            elif msg.opcode == OP_CLOSE:
                self._write(encode_frame(OP_CLOSE, msg.payload[:2]))
                self.close()

    def _on_packet(self, packet: bytes, now: int) -> None:
        if packet.startswith(MESSAGE_NEW_PREFIX):
            ledger = self.pool.ledger
            if ledger is None:
                return
            parsed = delivery_of(packet)
            if parsed is None:
                ledger.stray += 1
            else:
                ledger.deliver(self.index, self.tenant, parsed[0], parsed[1], now)
        elif packet == b"2":
            self._write(_PONG)
        elif packet.startswith(b"40"):
            self.open = True
            self.handshake_ns = now - self.started_ns
            if not self.connected.done():
                self.connected.set_result(None)
        elif packet[:1] == b"0":
            self._write(encode_frame(OP_TEXT, connect_packet(self.token)))
        elif packet.startswith(b"44"):
            self._abort(ConnectionRefusedError(f"CONNECT_ERROR {packet[2:200].decode()}"))
        elif packet.startswith(b"41") or packet[:1] == b"1":
            self.close()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _fail(self, exc: Exception) -> None:
        if not self.connected.done():
            self.connected.set_exception(exc)
            self.connected.exception()  # retrieved here: a failed client is counted, not raised

    def _abort(self, exc: Exception) -> None:
        self._fail(exc)
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        """Close the connection (Engine.IO close packet, then websocket close); returns None."""
        if self._transport is not None and not self._transport.is_closing():
            self._write(encode_frame(OP_TEXT, b"1"))
            self._write(encode_frame(OP_CLOSE, b"\x03\xe8"))
            self._transport.close()


@dataclass
class ConnectReport:
    """What connecting a pool took: handshake times of the clients that made it, and failures."""

    attempted: int
    connected: int
    wall_s: float
    handshake_ns: list[int]
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def failures(self) -> int:
        """Return how many clients did not connect."""
        return self.attempted - self.connected


class ClientPool:
    """The load generator's clients. Set ``ledger`` to start counting ``message:new``."""

    def __init__(self, socket_url: str, tokens: Sequence[tuple[int, str]]) -> None:
        self.host, self.port, self.target = split_socket_url(socket_url)
        self.host_header = f"{self.host}:{self.port}"
        self.tokens = list(tokens)
        self.clients: list[BenchClient] = []
        self.ledger: DeliveryLedger | None = None
        self.disconnects = 0

    async def connect_all(self, *, concurrency: int = 200, limit_s: float = 30.0) -> ConnectReport:
        """Connect every client, at most ``concurrency`` handshakes at a time.

        A client not connected within ``limit_s`` counts as failed. Returns a ConnectReport;
        failures are counted there (by error type), never raised.
        """
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(concurrency)
        errors: Counter[str] = Counter()
        self.clients = [BenchClient(self, i, t, tok) for i, (t, tok) in enumerate(self.tokens)]

        async def one(client: BenchClient) -> None:
            async with sem:
                client.started_ns = time.time_ns()
                try:
                    async with asyncio.timeout(limit_s):
                        await loop.create_connection(lambda: client, self.host, self.port)
                        await client.connected
                except (OSError, TimeoutError, ConnectionError) as exc:
                    errors[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
                    client.close()

        t0 = time.perf_counter()
        await asyncio.gather(*(one(c) for c in self.clients))
        wall = time.perf_counter() - t0
        ok = [c for c in self.clients if c.open]
        return ConnectReport(len(self.clients), len(ok), wall, [c.handshake_ns for c in ok], errors)

    def clients_per_tenant(self, tenants: int) -> list[int]:
        """Return, per tenant index, how many clients are connected now."""
        counts = [0] * tenants
        for c in self.clients:
            if c.open:
                counts[c.tenant] += 1
        return counts

    async def close_all(self) -> None:
        """Close every client and give the loop a moment to flush the close frames."""
        for c in self.clients:
            c.close()
        await asyncio.sleep(0.1)
