"""Raw clients for the engine tests: HTTP/1.1 (h11) and websocket frames written by hand.

The websocket client builds and parses frames itself (not wsproto) so a test sees every byte:
RSV1 bits, close codes, unmasked frames it sends on purpose.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import struct
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import h11
import orjson
import pytest

from engine import SocketServer

PATH = "/socket.io/"
WAIT = 5.0  # generous bound for one read; a healthy run takes milliseconds


@asynccontextmanager
async def running(server: SocketServer) -> AsyncIterator[int]:
    """Run ``server`` on 127.0.0.1:0 in a task group for the block; yield its port."""
    async with anyio.create_task_group() as tg:
        port: int = await tg.start(server.serve, "127.0.0.1", 0)
        try:
            yield port
        finally:
            tg.cancel_scope.cancel()


class ErrorLog(logging.Handler):
    """Collects records at ERROR and above (unhandled task exceptions, tracebacks)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[str]:
        """Return the messages so far and forget them (for errors a test provokes on purpose)."""
        messages = [r.getMessage() for r in self.records]
        self.records.clear()
        return messages


@pytest.fixture(name="error_log", autouse=True)
def error_log_fixture() -> Iterator[ErrorLog]:
    """Fail the test if anything logged at ERROR that the test did not ``take()``."""
    handler = ErrorLog()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
    assert not handler.records, [r.getMessage() for r in handler.records]


async def wait_until(predicate: Callable[[], object], within: float = WAIT) -> None:
    """Return once ``predicate()`` is true; fail the test after ``within`` seconds.

    For server state no event announces (sessions gone, a poll parked): polling it is the
    only way to observe it from outside.
    """
    with anyio.fail_after(within):
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.005)


# -- HTTP ------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class Http:
    """One keep-alive HTTP/1.1 client connection."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    @classmethod
    async def connect(cls, port: int) -> Http:
        return cls(await anyio.connect_tcp("127.0.0.1", port))

    async def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
    ) -> Response:
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        hdrs = [("host", "127.0.0.1"), *(headers or [])]
        if method == "POST" or body:
            hdrs.append(("content-length", str(len(body))))
        data = self.conn.send(h11.Request(method=method, target=target, headers=hdrs))
        if body:
            data += self.conn.send(h11.Data(data=body))
        data += self.conn.send(h11.EndOfMessage())
        await self.stream.send(data)
        status, got, parts = 0, {}, []
        with anyio.fail_after(WAIT):
            while True:
                event = self.conn.next_event()
                if event is h11.NEED_DATA:
                    try:
                        chunk = await self.stream.receive()
                    except anyio.EndOfStream:
                        chunk = b""
                    self.conn.receive_data(chunk)
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    got = {k.decode(): v.decode() for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    parts.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    return Response(status, got, b"".join(parts))
                else:
                    raise AssertionError(f"unexpected HTTP event {event!r}")

    async def aclose(self) -> None:
        await self.stream.aclose()


async def get(port: int, query: str, headers: list[tuple[str, str]] | None = None) -> Response:
    """One GET on a fresh connection."""
    http = await Http.connect(port)
    try:
        return await http.request("GET", PATH + "?" + query, headers=headers)
    finally:
        await http.aclose()


async def post(port: int, query: str, body: bytes) -> Response:
    """One POST on a fresh connection."""
    http = await Http.connect(port)
    try:
        return await http.request("POST", PATH + "?" + query, body)
    finally:
        await http.aclose()


async def polling_open(port: int) -> tuple[str, dict[str, Any]]:
    """Open a polling session; return its sid and handshake."""
    response = await get(port, "EIO=4&transport=polling")
    assert response.status == 200, response
    assert response.body[:1] == b"0"
    handshake = orjson.loads(response.body[1:])
    return handshake["sid"], handshake


def decode_poll(body: bytes) -> list[str | bytes]:
    """Split a long-polling body into packets (``b`` + base64 decoded to bytes)."""
    out: list[str | bytes] = []
    for part in body.decode().split("\x1e"):
        out.append(base64.b64decode(part[1:]) if part.startswith("b") else part)
    return out


# -- websocket -------------------------------------------------------------------------------

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def client_frame(
    payload: bytes,
    opcode: int = OP_TEXT,
    *,
    mask: bool = True,
    fin: bool = True,
    rsv1: bool = False,
) -> bytes:
    """A client frame (masked unless told otherwise)."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    size = len(payload)
    bit = 0x80 if mask else 0
    if size < 126:
        header = bytes((first, bit | size))
    elif size < 65536:
        header = struct.pack("!BBH", first, bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, bit | 127, size)
    if not mask:
        return header + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return header + key + masked


@dataclass
class Frame:
    opcode: int
    payload: bytes
    rsv1: bool


class Closed(Exception):
    """The server sent a close frame (``code``) or dropped the connection (``code`` None)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class WsClient:
    stream: anyio.abc.SocketStream
    headers: dict[str, str]
    buf: bytearray = field(default_factory=bytearray)
    deflate: bool = False

    @classmethod
    async def connect(
        cls,
        port: int,
        query: str = "EIO=4&transport=websocket",
        extra: str = "",
        *,
        rcvbuf: int = 0,
    ) -> WsClient:
        """Open the TCP connection and do the opening handshake; raise on a non-101 answer.

        ``rcvbuf`` shrinks the client's receive buffer (set before connecting, so the TCP
        window is small from the start): a client that stops reading then backs up fast.
        """
        if rcvbuf:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            await anyio.wait_writable(sock)
            stream = await anyio.abc.SocketStream.from_socket(sock)
        else:
            stream = await anyio.connect_tcp("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {PATH}?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
        await stream.send(request.encode())
        client = cls(stream, {})
        with anyio.fail_after(WAIT):
            while b"\r\n\r\n" not in client.buf:
                client.buf += await stream.receive()
        head, _, rest = bytes(client.buf).partition(b"\r\n\r\n")
        client.buf = bytearray(rest)
        lines = head.decode().split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101"), head
        client.headers = {
            k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])
        }
        client.deflate = "permessage-deflate" in client.headers.get("sec-websocket-extensions", "")
        return client

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send(data)

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, str):
            await self.stream.send(client_frame(message.encode(), OP_TEXT))
        else:
            await self.stream.send(client_frame(message, OP_BINARY))

    async def _fill(self) -> None:
        try:
            chunk = await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
            raise Closed(None) from None
        self.buf += chunk

    async def frame(self, within: float = WAIT) -> Frame:
        """Return the next frame as sent (payload still compressed if RSV1)."""
        with anyio.fail_after(within):
            while True:
                parsed = self._parse()
                if parsed is not None:
                    return parsed
                await self._fill()

    def _parse(self) -> Frame | None:
        buf = self.buf
        if len(buf) < 2:
            return None
        assert not buf[1] & 0x80, "server frames are never masked"
        size, offset = buf[1] & 0x7F, 2
        if size == 126:
            if len(buf) < 4:
                return None
            size, offset = struct.unpack("!H", buf[2:4])[0], 4
        elif size == 127:
            if len(buf) < 10:
                return None
            size, offset = struct.unpack("!Q", buf[2:10])[0], 10
        if len(buf) < offset + size:
            return None
        assert buf[0] & 0x80, "the server never fragments"
        result = Frame(buf[0] & 0x0F, bytes(buf[offset : offset + size]), bool(buf[0] & 0x40))
        del buf[: offset + size]
        return result

    async def recv(self, within: float = WAIT) -> str | bytes:
        """Return the next message (decompressed); answer pings; raise ``Closed`` on close."""
        while True:
            frame = await self.frame(within)
            payload = frame.payload
            if frame.rsv1:
                payload = inflate(payload)
            if frame.opcode == OP_TEXT:
                return payload.decode()
            if frame.opcode == OP_BINARY:
                return payload
            if frame.opcode == OP_CLOSE:
                raise Closed(struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005)
            if frame.opcode == OP_PING:
                await self.stream.send(client_frame(payload, OP_PONG))

    async def expect_closed(self, within: float = WAIT) -> int | None:
        """Read until the server closes; return the close code (None: dropped without one).

        Then closes our end, as a client does once the close handshake is over.
        """
        try:
            while True:
                await self.recv(within)
        except Closed as exc:
            await self.stream.aclose()
            return exc.code

    async def aclose(self) -> None:
        await self.stream.aclose()


def inflate(payload: bytes) -> bytes:
    """Undo permessage-deflate for one message."""
    return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")


def deflate(payload: bytes) -> bytes:
    """permessage-deflate one message (no context takeover)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


async def ws_open(
    port: int, query: str = "EIO=4&transport=websocket"
) -> tuple[WsClient, dict[str, Any]]:
    """A websocket-only Engine.IO session; return the client and its handshake."""
    ws = await WsClient.connect(port, query)
    first = await ws.recv()
    assert isinstance(first, str) and first[0] == "0"
    return ws, orjson.loads(first[1:])


async def sio_connect(port: int, namespace: str = "/", auth: Any = None) -> tuple[WsClient, str]:
    """A websocket session connected to ``namespace``; return the client and the socket id."""
    ws, _ = await ws_open(port)
    prefix = "" if namespace == "/" else namespace + ","
    await ws.send("40" + prefix + (orjson.dumps(auth).decode() if auth is not None else ""))
    reply = await ws.recv()
    assert isinstance(reply, str) and reply.startswith("40" + prefix), reply
    return ws, orjson.loads(reply[2 + len(prefix) :])["sid"]
