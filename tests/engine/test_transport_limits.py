"""Listener limits (issue 15, items 4-6): unfinished requests, idle keep-alive, the connection
cap, oversized frames, the kernel send buffer and stalled consumers."""

from __future__ import annotations

import socket
import struct

import anyio
import anyio.lowlevel
import pytest
from engine_wire import (
    OP_CLOSE,
    WsClient,
    running,
    sio_connect,
    wait_until,
)

from engine import EngineOptions, SocketServer

pytestmark = pytest.mark.anyio


async def _read_until_closed(stream: anyio.abc.SocketStream, within: float) -> bytes:
    """Everything the server sends until it closes (fails the test past ``within``)."""
    data = b""
    with anyio.fail_after(within):
        try:
            while True:
                data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
            return data


async def test_unfinished_request_is_closed_after_the_header_timeout() -> None:
    server = SocketServer(EngineOptions(header_timeout=0.2))
    async with running(server) as port:
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            for byte in b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHo":
                await stream.send(bytes([byte]))  # slowloris: never finishes
            await _read_until_closed(stream, within=2)
        assert server.stats.listener.header_timeouts == 1
        await wait_until(lambda: server.stats.listener.open == 0)


async def test_idle_keep_alive_connection_is_closed_after_the_idle_timeout() -> None:
    server = SocketServer(EngineOptions(idle_timeout=0.2, header_timeout=5))
    async with running(server) as port:
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(
                b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: h\r\n\r\n"
            )
            answer = await _read_until_closed(stream, within=2)
        assert answer.startswith(b"HTTP/1.1 200")
        assert server.stats.listener.idle_timeouts == 1
        assert server.stats.listener.header_timeouts == 0


async def test_connections_past_the_cap_get_a_503_with_a_json_body() -> None:
    server = SocketServer(EngineOptions(max_connections=2))
    async with running(server) as port:
        held = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(2)]
        await wait_until(lambda: server.stats.listener.open == 2)
        async with await anyio.connect_tcp("127.0.0.1", port) as extra:
            await extra.send(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: h\r\n\r\n")
            answer = await _read_until_closed(extra, within=3)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503")
        assert b"connection: close" in head.lower()
        assert body == b'{"code":503,"message":"Too many connections: try again later"}'
        assert server.stats.listener.refused == 1
        for stream in held:
            await stream.aclose()
        await wait_until(lambda: server.stats.listener.open == 0)
        # Room again: a new connection is served.
        ws, _ = await sio_connect(port)
        assert server.stats.listener.open == 1
        await ws.aclose()


async def test_oversized_frame_is_refused_from_its_header() -> None:
    server = SocketServer(EngineOptions(max_payload=1000))
    async with running(server) as port:
        ws, _ = await sio_connect(port)
        # A masked text frame announcing 50 MB; only its header and 10 bytes are ever sent.
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, 50 * 1024 * 1024) + b"\x00" * 4
        await ws.send_raw(header + b"4" * 10)
        frame = await ws.frame(within=2)
        while frame.opcode != OP_CLOSE:  # a CLOSE packet may come first
            frame = await ws.frame(within=2)
        assert struct.unpack("!H", frame.payload[:2])[0] == 1009
        await ws.aclose()
        assert server.stats.listener.oversized_messages == 1


async def test_fragments_add_up_against_the_limit() -> None:
    server = SocketServer(EngineOptions(max_payload=1000))
    async with running(server) as port:
        ws, _ = await sio_connect(port)
        first = struct.pack("!BB", 0x01, 0x80 | 126) + struct.pack("!H", 600) + b"\x00" * 4
        await ws.send_raw(first + b"4" * 600)
        second = struct.pack("!BB", 0x80, 0x80 | 126) + struct.pack("!H", 600) + b"\x00" * 4
        await ws.send_raw(second + b"4" * 600)  # each fragment fits, the message does not
        assert await ws.expect_closed(within=2) == 1009


def _server_websocket(server: SocketServer) -> socket.socket:
    [session] = server.sessions.values()
    assert session.ws is not None
    return session.ws.sock


async def test_websocket_send_buffer_is_bounded() -> None:
    server = SocketServer(EngineOptions(send_buffer=32 * 1024))
    async with running(server) as port:
        ws, _ = await sio_connect(port)
        size = _server_websocket(server).getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        assert size <= 2 * 32 * 1024  # Linux doubles what it is given, for its bookkeeping
        await ws.aclose()


async def test_stalled_client_is_closed_after_the_stall_timeout() -> None:
    # The outbox limit is far away: only the stall timeout can close this client.
    options = EngineOptions(outbox_limit=64 << 20, stall_timeout=0.3, send_buffer=16 * 1024)
    server = SocketServer(options)
    async with running(server) as port:
        ws = await WsClient.connect(port, rcvbuf=4096)
        await ws.recv()  # OPEN
        await ws.send("40")
        await ws.recv()  # CONNECT reply; from now on the client reads nothing
        [socket_id] = server.sockets
        with anyio.fail_after(5):
            while server.sessions and not _outbox_pending(server):
                server.emit("fill", "x" * 8192, to=socket_id)
                await anyio.lowlevel.checkpoint()
        await wait_until(lambda: not server.sessions, within=3)
        assert server.stats.listener.stalled == 1
        assert server.stats.slow_consumers == 1
        await ws.aclose()


def _outbox_pending(server: SocketServer) -> bool:
    [session] = server.sessions.values()
    return session.ws is not None and session.ws.outbox.pending_bytes > 0
