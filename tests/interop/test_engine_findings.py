"""Regression tests for engine deviations the interop work found (all fixed).

The conformance-suite ones live next to their suite expectation in test_conformance.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from engine import EngineOptions, Socket, SocketServer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def server() -> AsyncIterator[SocketServer]:
    async with anyio.create_task_group() as tg:
        server = SocketServer(EngineOptions(ping_interval=5.0, ping_timeout=5.0))
        await tg.start(server.serve, "127.0.0.1", 0)
        yield server
        tg.cancel_scope.cancel()


async def _exchange(port: int, data: bytes, wait: float = 1.0) -> bytes:
    """Send ``data`` on a fresh connection; return everything read before EOF or ``wait``."""
    received = b""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(data)
        with anyio.move_on_after(wait):
            try:
                while True:
                    received += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
    return received


async def test_refused_request_with_body_keeps_or_announces_close(server: SocketServer) -> None:
    refused = b"POST /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
    follow_up = b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: t\r\n\r\n"
    assert server.port is not None
    answer = await _exchange(server.port, refused + follow_up)
    first, _, rest = answer.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 400")
    assert b"connection: close" in first.lower() or b"HTTP/1.1 200" in rest


async def test_emit_from_connect_handler_reaches_client(server: SocketServer) -> None:
    @server.on_connect("/")
    def greet(socket: Socket, auth: object) -> None:
        socket.emit("hello", "from connect")

    session, _ = server.open_session("test")
    server.message_received(session, "0")
    for _ in range(200):  # the connect handler runs in a task of its own
        if session.sockets:
            break
        await anyio.sleep(0.01)
    assert session.sockets, "the connect was never accepted"
    assert any(
        '["hello","from connect"]' in item for item in session.queue if isinstance(item, str)
    ), session.queue
