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


async def serve_listener(
    sock: socket.socket,
    handler: Callable[[socket.socket, str], Coroutine[Any, Any, None]],
    task_group: anyio.abc.TaskGroup,
) -> None:
    """Accept connections forever, starting ``handler(conn, "ip:port")`` for each in ``task_group``.

    Accepts in a burst until the kernel's queue is empty, so a connect storm costs one wake-up
    per burst. Returns only by cancellation; the listening socket is closed on the way out.
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
                task_group.start_soon(handler, conn, f"{addr[0]}:{addr[1]}")
    finally:
        try:
            anyio.notify_closing(sock)
        except RuntimeError:
            pass
        sock.close()
