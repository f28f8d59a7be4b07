"""The server profile the official protocol test-suites expect (``zapline serve --conformance``).

Two suites, one port (3000 by default):

* socket.io-protocol ``test-suite/``: Socket.IO at ``/socket.io/`` with pingInterval 300 ms,
  pingTimeout 200 ms, connectTimeout 1 s, maxPayload 1e6. Every namespace connect (``/`` and
  ``/custom``) is answered with an ``auth`` event carrying the handshake auth (``{}`` when the
  client sent none); ``message`` is echoed back as ``message-back``; ``message-with-ack`` is
  acknowledged with its own arguments.
* engine.io-protocol ``test-suite/``: bare Engine.IO at ``/engine.io/`` with the same heartbeat
  and maxPayload, every MESSAGE sent back unchanged (text as text, binary as binary).

Why a front proxy: a ``SocketServer`` serves one path and dispatches every Engine.IO MESSAGE to
Socket.IO. The echo is a bare Engine.IO host (``engine._engine.EngineIO``) whose application
sends every message back, each on a private loopback port; a small TCP front on the public port reads each connection's first
request line and splices the connection to the server owning that path. A connection stays
with its first path (keep-alive requests for the other path get a 404), which is how the
suites' clients behave. Nothing here is on the product's path.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from engine import EngineIO, EngineOptions, EngineSession, Socket, SocketServer

log = logging.getLogger("zapline.conformance")

SOCKETIO_PATH = "/socket.io/"
ENGINEIO_PATH = "/engine.io/"
_MAX_REQUEST_LINE = 8192
AUTH_DELAY = 0.02


def socketio_options() -> EngineOptions:
    """Return the Socket.IO suite's engine settings (300/200 ms heartbeat, 1 s connect timeout)."""
    return EngineOptions(
        path=SOCKETIO_PATH,
        ping_interval=0.3,
        ping_timeout=0.2,
        connect_timeout=1.0,
        max_payload=1_000_000,
        cors_origins=("*",),
    )


def engineio_options() -> EngineOptions:
    """Return the Engine.IO suite's settings; sessions never join a namespace, so no connect timeout."""
    return EngineOptions(
        path=ENGINEIO_PATH,
        ping_interval=0.3,
        ping_timeout=0.2,
        connect_timeout=math.inf,
        max_payload=1_000_000,
        cors_origins=("*",),
    )


# -- Socket.IO profile -------------------------------------------------------------------------


async def _emit_auth(socket: Socket, auth: dict[str, Any]) -> None:
    # The suite's client waits for one message at a time with a fresh listener, and its
    # websocket library emits every message of a TCP read at once: an event written in the
    # same read as the CONNECT reply (as an emit from the connect handler would be) is lost
    # to it. So the event follows the reply a moment later, in a write of its own, as Node's
    # server does by waiting for each write to drain. The first ping is pingInterval after
    # the OPEN packet, far behind it.
    while not socket.connected:
        if socket.session.closed or not socket.is_connecting:
            return
        await anyio.sleep(0.001)
    await anyio.sleep(AUTH_DELAY)
    socket.emit("auth", auth)


def build_socketio_server(options: EngineOptions | None = None) -> SocketServer:
    """Return a ``SocketServer`` with the socket.io-protocol suite's handlers on ``/`` and ``/custom``."""
    server = SocketServer(options or socketio_options())
    for namespace in ("/", "/custom"):
        _attach_echo_handlers(server, namespace)
    return server


def _attach_echo_handlers(server: SocketServer, namespace: str) -> None:
    @server.on_connect(namespace)
    def echo_auth(socket: Socket, auth: dict[str, Any] | None) -> None:
        server.spawn(_emit_auth, socket, auth if auth is not None else {})

    @server.on("message", namespace)
    def message(socket: Socket, *args: Any) -> None:
        socket.emit("message-back", *args)

    @server.on("message-with-ack", namespace)
    def message_with_ack(socket: Socket, *args: Any) -> tuple[Any, ...]:
        return args


# -- Engine.IO echo ----------------------------------------------------------------------------


class EchoApp:
    """The Engine.IO application of the engine.io-protocol suite: every MESSAGE goes back."""

    def message_received(self, session: EngineSession, data: str | bytes) -> None:
        """Echo ``data`` as is (text as text, binary as binary)."""
        session.send_payloads(["4" + data if isinstance(data, str) else data])

    def session_closed(self, session: EngineSession, reason: str) -> None:
        """Nothing to clean up."""

    def connect_expired(self, session: EngineSession) -> bool:
        """Bare Engine.IO has no namespaces to wait for."""
        return False


def build_engineio_echo(options: EngineOptions | None = None) -> EngineIO:
    """Return a bare Engine.IO host (no Socket.IO layer) that echoes every message."""
    return EngineIO(options or engineio_options(), EchoApp())


# -- the front: one public port, two servers ---------------------------------------------------


async def _pump(source: anyio.abc.ByteReceiveStream, sink: anyio.abc.ByteStream) -> None:
    try:
        async for chunk in source:
            await sink.send(chunk)
        await sink.send_eof()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass


async def _splice(client: anyio.abc.SocketStream, routes: list[tuple[str, int]]) -> None:
    async with client:
        buffered = BufferedByteReceiveStream(client)
        try:
            line = await buffered.receive_until(b"\r\n", _MAX_REQUEST_LINE)
        except (anyio.IncompleteRead, anyio.DelimiterNotFound, anyio.BrokenResourceError, OSError):
            return
        parts = line.split(b" ")
        target = parts[1].decode("latin-1") if len(parts) >= 2 else ""
        port = next((p for prefix, p in routes if target.startswith(prefix)), routes[-1][1])
        try:
            backend = await anyio.connect_tcp("127.0.0.1", port)
        except OSError:
            return
        async with backend:
            await backend.send(line + b"\r\n" + bytes(buffered.buffer))
            async with anyio.create_task_group() as tg:

                async def downstream() -> None:
                    await _pump(backend, client)
                    tg.cancel_scope.cancel()  # the server closed: the client connection ends too

                tg.start_soon(downstream)
                await _pump(client, backend)  # the client half-closed: keep reading the answer


async def run_conformance(
    host: str = "127.0.0.1",
    port: int = 3000,
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve both protocol suites on ``host:port`` until cancelled; ``started(port)`` once bound.

    ``/engine.io/`` is the Engine.IO echo, everything else the Socket.IO profile (port 0 picks a
    free port, which ``task_status`` reports). Raises ``OSError`` if the port cannot be bound.
    """
    sio = build_socketio_server()
    eio = build_engineio_echo()
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port, reuse_port=False)
    async with listener, anyio.create_task_group() as tg:
        sio_port = await tg.start(sio.serve, "127.0.0.1", 0)
        eio_port = await tg.start(eio.serve, "127.0.0.1", 0)
        routes = [(ENGINEIO_PATH.rstrip("/"), eio_port), (SOCKETIO_PATH.rstrip("/"), sio_port)]
        bound = listener.extra(anyio.abc.SocketAttribute.local_port)
        log.info(
            "conformance profile on %s:%d (socket.io -> :%d, engine.io echo -> :%d)",
            host,
            bound,
            sio_port,
            eio_port,
        )
        tg.start_soon(listener.serve, lambda client: _splice(client, routes))
        task_status.started(bound)
