"""The engine's TCP listener: a non-blocking socket and an accept loop on anyio."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc

log = logging.getLogger("zapline.engine")


@dataclass
class ListenerStats:
    """Counters of one listener; plain ints, updated inline, read by the metrics endpoint."""

    accepted: int = 0  # TCP connections accepted
    open: int = 0  # connections open now (HTTP and websocket)
    refused: int = 0  # turned away with a 503: max_connections were open
    header_timeouts: int = 0  # closed: a request did not arrive whole within header_timeout
    idle_timeouts: int = 0  # closed: a kept-alive connection idled past idle_timeout
    oversized_messages: int = 0  # websockets closed with 1009: a message over maxPayload
    stalled: int = 0  # websockets closed: the peer took nothing for stall_timeout


def bind_socket(host: str, port: int, backlog: int = 4096) -> socket.socket:
    """Return a listening, non-blocking TCP socket on ``host:port`` (port 0 picks a free one).

    Raises ``OSError`` with the address in the message if it cannot bind.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


_REFUSAL_BODY = b'{"code":503,"message":"Too many connections: try again later"}'
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(_REFUSAL_BODY)).encode() + b"\r\nretry-after: 5\r\n"
    b"connection: close\r\n\r\n" + _REFUSAL_BODY
)
# How long a refused connection may keep sending before it is dropped.
_REFUSAL_LINGER = 1.0


async def refuse(conn: socket.socket) -> None:
    """Answer 503 (JSON body, ``connection: close``) without reading the request, then close.

    The request is read and dropped for a moment after the answer, so the peer sees the
    answer rather than a reset. Raises nothing.
    """
    try:
        conn.send(_REFUSAL)  # a fresh socket's buffer takes these few bytes at once
        conn.shutdown(socket.SHUT_WR)
        with anyio.move_on_after(_REFUSAL_LINGER):
            while True:
                try:
                    if not conn.recv(65536):
                        break
                except (BlockingIOError, InterruptedError):
                    await anyio.wait_readable(conn)
    except (OSError, anyio.ClosedResourceError):
        pass
    finally:
        try:
            anyio.notify_closing(conn)
        except RuntimeError:
            pass
        conn.close()


async def serve_listener(
    sock: socket.socket,
    handler: Callable[[socket.socket, str], Coroutine[Any, Any, None]],
    task_group: anyio.abc.TaskGroup,
    *,
    stats: ListenerStats | None = None,
    max_connections: int = 0,
) -> None:
    """Accept connections forever, starting ``handler(conn, "ip:port")`` for each in ``task_group``.

    Accepts in a burst until the kernel's queue is empty, so a connect storm costs one wake-up
    per burst. With ``max_connections`` (and ``stats``, whose ``open`` the handler's side keeps
    up to date), a connection past the cap is answered 503 and closed (``refuse``). Returns
    only by cancellation; the listening socket is closed on the way out.
    """
    try:
        while True:
            await anyio.wait_readable(sock)
            while True:
                try:
                    conn, addr = sock.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:  # EMFILE and friends: log, breathe, go on
                    log.warning("accept failed: %s", exc)
                    await anyio.sleep(0.05)
                    break
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if stats is not None:
                    stats.accepted += 1
                    if max_connections and stats.open >= max_connections:
                        stats.refused += 1
                        task_group.start_soon(refuse, conn)
                        continue
                    stats.open += 1
                task_group.start_soon(handler, conn, f"{addr[0]}:{addr[1]}")
    finally:
        try:
            anyio.notify_closing(sock)
        except RuntimeError:
            pass
        sock.close()
