"""Non-blocking socket primitives on anyio's readiness API.

Why raw sockets and not ``anyio.abc.SocketStream``: on asyncio, anyio's streams sit on
transports, and every ``send`` is an await with a checkpoint. The broadcast path wants the
opposite: try ``socket.send`` directly, and only when the kernel refuses do we park bytes and
wait for writability. ``anyio.wait_readable`` / ``wait_writable`` / ``notify_closing`` give us
exactly that on asyncio (``add_reader``) and trio (``wait_readable``) alike.
"""

from __future__ import annotations

import socket

import anyio

RECV_SIZE = 65536


async def recv_some(sock: socket.socket, size: int = RECV_SIZE) -> bytes:
    """Return the next bytes from ``sock``; ``b""`` at end of stream.

    Raises ``anyio.ClosedResourceError`` if another task called ``notify_closing`` on it and
    ``OSError`` for a reset connection.
    """
    while True:
        try:
            return sock.recv(size)
        except (BlockingIOError, InterruptedError):
            await anyio.wait_readable(sock)


async def send_all(sock: socket.socket, data: bytes | memoryview) -> None:
    """Write all of ``data``, waiting for writability when the kernel buffer is full.

    Used for HTTP responses (polling, handshakes), not for the broadcast path. Raises
    ``OSError`` if the peer went away and ``anyio.ClosedResourceError`` if closed under us.
    """
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
        except (BlockingIOError, InterruptedError):
            await anyio.wait_writable(sock)
            continue
        view = view[sent:]


def close_socket(sock: socket.socket) -> None:
    """Wake any task waiting on ``sock`` and close it; safe to call twice."""
    if sock.fileno() < 0:
        return
    try:
        anyio.notify_closing(sock)
    except RuntimeError:  # no running event loop (shutdown path)
        pass
    try:
        sock.close()
    except OSError:
        pass
