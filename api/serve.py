"""Run a Quart app on Hypercorn from inside an anyio task group, with honest readiness.

Hypercorn's ``serve`` binds its sockets after the lifespan startup and says nothing when done,
so a caller cannot tell when connecting is safe. Here the listening socket is bound first (port
0 works) and handed to Hypercorn; readiness is reported once it listens, and a connection made
from then on waits in the backlog until Hypercorn accepts it.

Stopping is always graceful: the shutdown trigger, SIGINT/SIGTERM (when no trigger is given) or
cancellation of the caller all end in the same Hypercorn shutdown. Hypercorn runs shielded so
that an outer cancellation cannot cut its cleanup short and strand connection tasks.
"""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import sniffio
from anyio.abc import TaskStatus
from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets
from hypercorn.utils import wrap_app

__all__ = ["serve_app"]


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def _until_signal() -> None:
    try:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                return
    except (RuntimeError, ValueError, NotImplementedError):
        # Not the main thread (or no signal support): only cancellation can stop us then.
        await anyio.sleep_forever()


async def serve_app(
    app: Any,
    host: str,
    port: int,
    *,
    shutdown_trigger: Callable[[], Awaitable[Any]] | None = None,
    graceful_timeout: float = 2.0,
    keep_alive_timeout: float = 5.0,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the ASGI ``app`` on ``host:port`` until told to stop; return after a clean shutdown.

    Reports the bound port through ``task_status.started(port)`` (useful with port 0). Stops
    when ``shutdown_trigger()`` returns, on SIGINT/SIGTERM if no trigger is given, or when the
    caller is cancelled. Raises OSError when the address cannot be bound and RuntimeError when
    not running on asyncio (Hypercorn's asyncio worker and Quart need it).
    """
    if sniffio.current_async_library() != "asyncio":
        raise RuntimeError("serve_app runs Hypercorn's asyncio worker: use the asyncio backend")
    config = Config()
    config.graceful_timeout = graceful_timeout
    config.keep_alive_timeout = keep_alive_timeout
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    sock = _listen(host, port, config.backlog)
    stop = anyio.Event()

    async def watch() -> None:
        try:
            await (shutdown_trigger() if shutdown_trigger is not None else _until_signal())
        finally:
            stop.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            task_status.started(sock.getsockname()[1])
            with anyio.CancelScope(shield=True):
                await worker_serve(
                    wrap_app(app, config.wsgi_max_body_size, "asgi"),
                    config,
                    sockets=Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[]),
                    shutdown_trigger=stop.wait,
                )
            tg.cancel_scope.cancel()
    finally:
        sock.close()
