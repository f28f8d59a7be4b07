"""The Socket.IO server: sessions, namespaces, handlers, emit, acks, heartbeat.

Theory of operation
-------------------
``serve()`` owns one task group. In it run the accept loop, one task per TCP connection (HTTP
requests, then the websocket reader if it upgrades), the heartbeat loop, handler tasks, and the
on-demand outbox flushers. Nothing else starts tasks.

Incoming: a transport decodes Engine.IO packets and calls ``EngineSession.receive_packet``;
Socket.IO events come out of the session's sans-IO ``SioConnection`` into ``dispatch_sio``,
which starts a task per connect request and per event handler (handlers may await; the reader
must not, or a handler awaiting an ack from its own client would deadlock).

Outgoing: ``emit`` encodes once and writes to many (``rooms.py``); it is synchronous and never
yields, so it can be called from any task, including Quart request handlers on the same loop.
"""

from __future__ import annotations

import inspect
import logging
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import orjson

from engine._heartbeat import run_heartbeat
from engine._session import EngineSession
from engine._socket import Socket
from engine.options import EngineOptions
from engine.protocol import (
    NEED_DATA,
    AckReceived,
    ConnectRequest,
    DisconnectReceived,
    EventReceived,
    ProtocolError,
    SioPacket,
    SioPacketType,
    decode_ws,
    encode_sio,
    encode_sio_str,
    open_packet,
)
from engine.rooms import RoomHub
from engine.transport._frames import SharedFrame
from engine.transport._http import handle_connection
from engine.transport._listener import serve_listener
from engine.transport._websocket import WebSocketConn

log = logging.getLogger("zapline.engine")

ConnectHandler = Callable[[Socket, dict[str, Any] | None], Awaitable[None] | None]
EventHandler = Callable[..., Any]
DisconnectHandler = Callable[[Socket, str], Awaitable[None] | None]


class ConnectionRefused(Exception):
    """Raise from a connect handler to refuse: the client gets CONNECT_ERROR with ``message``."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


@dataclass
class Namespace:
    """Handlers of one namespace."""

    name: str
    connect: list[ConnectHandler] = field(default_factory=list)
    disconnect: list[DisconnectHandler] = field(default_factory=list)
    events: dict[str, EventHandler] = field(default_factory=dict)
    any_event: EventHandler | None = None


@dataclass
class ServerStats:
    """Counters the metrics endpoint reads; plain ints, updated inline."""

    connects: int = 0
    connect_errors: int = 0
    disconnects: Counter[str] = field(default_factory=Counter)
    emitted: Counter[str] = field(default_factory=Counter)
    deliveries: int = 0
    slow_consumers: int = 0
    received_events: int = 0


def _new_id() -> str:
    return secrets.token_urlsafe(15)


class SocketServer:
    """A Socket.IO v5 / Engine.IO v4 server on its own listener."""

    def __init__(self, options: EngineOptions | None = None) -> None:
        self.options = options or EngineOptions()
        self.sessions: dict[str, EngineSession] = {}
        self.sockets: dict[str, Socket] = {}
        self.rooms = RoomHub()
        self.namespaces: dict[str, Namespace] = {"/": Namespace("/")}
        self.stats = ServerStats()
        self.port: int | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._scope: anyio.CancelScope | None = None
        self._ping = SharedFrame(b"2")

    # -- registration ------------------------------------------------------------------------

    def namespace(self, name: str) -> Namespace:
        """Return the namespace ``name``, registering it on first use."""
        if not name.startswith("/"):
            raise ValueError(f"namespace must start with '/': {name!r}")
        ns = self.namespaces.get(name)
        if ns is None:
            ns = self.namespaces[name] = Namespace(name)
        return ns

    def on_connect(self, namespace: str = "/") -> Callable[[ConnectHandler], ConnectHandler]:
        """Decorator: ``handler(socket, auth)`` runs before the connect is accepted.

        It may set ``socket.data`` and join rooms; raising ``ConnectionRefused`` refuses.
        """

        def register(fn: ConnectHandler) -> ConnectHandler:
            self.namespace(namespace).connect.append(fn)
            return fn

        return register

    def on_disconnect(self, namespace: str = "/") -> Callable[[DisconnectHandler], DisconnectHandler]:
        """Decorator: ``handler(socket, reason)`` runs after a socket left ``namespace``."""

        def register(fn: DisconnectHandler) -> DisconnectHandler:
            self.namespace(namespace).disconnect.append(fn)
            return fn

        return register

    def on(self, event: str, namespace: str = "/") -> Callable[[EventHandler], EventHandler]:
        """Decorator: ``handler(socket, *args)`` for ``event``; its return value is the ack.

        A tuple return becomes several ack arguments; None becomes an empty ack.
        """

        def register(fn: EventHandler) -> EventHandler:
            self.namespace(namespace).events[event] = fn
            return fn

        return register

    def on_any(self, namespace: str = "/") -> Callable[[EventHandler], EventHandler]:
        """Decorator: ``handler(socket, event, *args)`` for events with no handler of their own."""

        def register(fn: EventHandler) -> EventHandler:
            self.namespace(namespace).any_event = fn
            return fn

        return register

    # -- running -----------------------------------------------------------------------------

    async def serve(
        self, host: str = "127.0.0.1", port: int = 3334, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on ``host:port`` until cancelled or ``shutdown()``; ``started(port)`` once bound."""
        from engine.transport._listener import bind_socket

        sock = bind_socket(host, port)
        self.port = sock.getsockname()[1]
        async with anyio.create_task_group() as tg:
            self._tg = tg
            self._scope = tg.cancel_scope
            tg.start_soon(run_heartbeat, self)
            tg.start_soon(serve_listener, sock, self._handle_tcp, tg)
            task_status.started(self.port)
        self._tg = None

    async def _handle_tcp(self, sock: Any, remote: str) -> None:
        await handle_connection(self, sock, remote)

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start ``fn(*args)`` in the server's task group (flushers, handlers)."""
        if self._tg is None:
            raise RuntimeError("the server is not running")
        self._tg.start_soon(fn, *args)

    async def shutdown(self, grace: float = 2.0) -> None:
        """Close every session with a proper close, give writes ``grace`` seconds, stop serving."""
        for session in list(self.sessions.values()):
            self.close_session(session, "server shutdown", send_close=True)
        with anyio.move_on_after(grace):
            while any(not s.closed or s.polling for s in self.sessions.values()):
                await anyio.sleep(0.01)
            await anyio.sleep(0.05)
        if self._scope is not None:
            self._scope.cancel()

    # -- sessions ----------------------------------------------------------------------------

    def open_session(self, remote: str) -> tuple[EngineSession, str]:
        """Create a session; return it and its OPEN packet in Engine.IO text form."""
        session = EngineSession(_new_id(), self, anyio.current_time(), remote)
        self.sessions[session.sid] = session
        opts = self.options
        upgrades = ["websocket"] if opts.allow_websocket else []
        packet = open_packet(
            session.sid, upgrades, int(opts.ping_interval * 1000), int(opts.ping_timeout * 1000), opts.max_payload
        )
        return session, "0" + str(packet.data)

    async def run_websocket(self, ws: WebSocketConn, session: EngineSession | None, remote: str) -> None:
        """Drive an upgraded socket: a new websocket session, or the probe of a polling one."""
        if session is None:
            session, handshake = self.open_session(remote)
            session.ws = ws
            ws.session = session
            ws.write_payload(handshake)
            reason = await ws.run(self._on_ws_message, self.options.max_payload)
            self.close_session(session, reason, send_close=False)
            return
        if not session.begin_upgrade(ws):
            ws.abort()
            return
        ws.session = session
        with anyio.move_on_after(self.options.upgrade_timeout) as scope:
            reason = await ws.run(self._on_ws_message, self.options.max_payload)
        if session.probe is ws:  # the upgrade never completed
            session.probe = None
            if scope.cancelled_caught:
                log.info("upgrade of %s timed out", session.sid)
            ws.abort()
            return
        if session.ws is ws:
            self.close_session(session, reason, send_close=False)

    def _on_ws_message(self, ws: WebSocketConn, message: str | bytes) -> None:
        session = ws.session
        if session is None or session.closed:
            return
        try:
            packet = decode_ws(message)
            if session.probe is ws:
                self._probe_packet(session, ws, packet.type.value, packet.data)
                return
            session.receive_packet(packet, anyio.current_time())
        except ProtocolError as exc:
            log.info("protocol error from %s (session %s): %s", session.remote, session.sid, exc)
            self.close_session(session, "parse error", send_close=True)

    def _probe_packet(self, session: EngineSession, ws: WebSocketConn, kind: int, data: Any) -> None:
        if kind == 2 and data == "probe":
            ws.write_payload("3probe")
            if session.polling:
                session.send_payloads(["6"])
        elif kind == 5:
            session.finish_upgrade(ws)
        else:
            raise ProtocolError(f"unexpected packet during upgrade: type {kind}")

    def close_session(self, session: EngineSession, reason: str, *, send_close: bool = True) -> None:
        """End a session: sockets disconnect (handlers run), the transport closes. Idempotent."""
        if session.closed:
            return
        for socket in list(session.sockets.values()):
            self.disconnect_socket(socket, reason, notify=False)
        self.sessions.pop(session.sid, None)
        if reason == "slow consumer":
            self.stats.slow_consumers += 1
        ws = session.ws
        session.mark_closed(reason)
        if ws is not None:
            if send_close and not ws.closed:
                ws.write_payload("1")
            ws.close(1000)
        if session.probe is not None:
            session.probe.abort()

    # -- Socket.IO ---------------------------------------------------------------------------

    def dispatch_sio(self, session: EngineSession) -> None:
        """Act on every Socket.IO event the session's state machine has ready."""
        sio = session.sio
        while True:
            event = sio.next_event()
            if event is NEED_DATA:
                return
            if isinstance(event, EventReceived):
                socket = session.sockets.get(event.namespace)
                if socket is not None:
                    self.stats.received_events += 1
                    self.spawn(self._run_event, socket, event)
            elif isinstance(event, AckReceived):
                callbacks = session.acks
                callback = callbacks.pop(event.ack_id, None) if callbacks else None
                if callback is not None:
                    self.spawn(self._run_callback, callback, event.args)
            elif isinstance(event, ConnectRequest):
                self.spawn(self._run_connect, session, event)
            elif isinstance(event, DisconnectReceived):
                socket = session.sockets.get(event.namespace)
                if socket is not None:
                    self.disconnect_socket(socket, "client namespace disconnect", notify=False)

    async def _run_connect(self, session: EngineSession, request: ConnectRequest) -> None:
        ns = self.namespaces.get(request.namespace)
        if ns is None:
            self.stats.connect_errors += 1
            session.send_message(session.sio.refuse(request.namespace, "Invalid namespace"))
            return
        socket = Socket(_new_id(), request.namespace, session, self)
        try:
            for handler in ns.connect:
                result = handler(socket, request.auth)
                if inspect.isawaitable(result):
                    await result
        except ConnectionRefused as exc:
            self.rooms.leave_all(socket)
            self.stats.connect_errors += 1
            log.info("connect to %s refused for %s: %s", request.namespace, session.remote, exc.message)
            if not session.closed:
                session.send_message(session.sio.refuse(request.namespace, exc.message, exc.data))
            return
        except Exception:
            self.rooms.leave_all(socket)
            self.stats.connect_errors += 1
            log.exception("connect handler failed for %s", request.namespace)
            if not session.closed:
                session.send_message(session.sio.refuse(request.namespace, "Internal server error"))
            return
        if session.closed:
            self.rooms.leave_all(socket)
            return
        socket.connected = True
        session.sockets[request.namespace] = socket
        self.sockets[socket.id] = socket
        self.stats.connects += 1
        session.send_message(session.sio.accept(request.namespace, socket.id))

    async def _run_event(self, socket: Socket, event: EventReceived) -> None:
        ns = self.namespaces.get(socket.namespace)
        if ns is None:
            return
        handler = ns.events.get(event.name)
        args: tuple[Any, ...] = event.args
        if handler is None:
            if ns.any_event is None:
                if event.ack_id is not None:
                    self._send_ack(socket, event.ack_id, None)
                return
            handler, args = ns.any_event, (event.name, *args)
        try:
            result = handler(socket, *args)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            log.exception("handler for %r failed (socket %s)", event.name, socket.id)
            result = {"error": "internal error"}
        if event.ack_id is not None and socket.connected:
            self._send_ack(socket, event.ack_id, result)

    def _send_ack(self, socket: Socket, ack_id: int, result: Any) -> None:
        if result is None:
            values: list[Any] = []
        elif isinstance(result, tuple):
            values = list(result)
        else:
            values = [result]
        socket.session.send_message(socket.session.sio.ack(socket.namespace, ack_id, values))

    async def _run_callback(self, callback: Any, args: tuple[Any, ...]) -> None:
        try:
            result = callback(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("ack callback failed")

    def register_ack(self, session: EngineSession, callback: Callable[..., Any]) -> int:
        """Store ``callback`` for the next ack id of ``session``; return the id."""
        if session.acks is None:
            session.acks = {}
        ack_id = session.ack_counter
        session.ack_counter += 1
        session.acks[ack_id] = callback
        return ack_id

    def disconnect_socket(self, socket: Socket, reason: str, *, notify: bool) -> None:
        """Remove ``socket`` from its namespace and rooms; run the disconnect handlers."""
        if not socket.connected:
            return
        socket.connected = False
        session = socket.session
        if notify and not session.closed:
            session.send_message(session.sio.disconnect(socket.namespace))
        session.sockets.pop(socket.namespace, None)
        self.sockets.pop(socket.id, None)
        self.rooms.leave_all(socket)
        self.stats.disconnects[reason] += 1
        ns = self.namespaces.get(socket.namespace)
        if ns is not None and ns.disconnect and self._tg is not None:
            for handler in ns.disconnect:
                self.spawn(self._run_callback, handler, (socket, reason))

    # -- emitting ----------------------------------------------------------------------------

    def emit(
        self,
        event: str,
        *args: Any,
        to: str | Iterable[str] | None = None,
        skip: str | Iterable[str] = (),
        namespace: str = "/",
    ) -> int:
        """Send ``event`` to the sockets in ``to`` (rooms or socket ids; None = the namespace).

        ``skip`` names rooms or socket ids to leave out. Encodes once; never yields. Returns the
        number of sockets written to. Sessions too slow to take it are closed.
        """
        packet = SioPacket(SioPacketType.EVENT, namespace, [event, *args])
        targets = self._targets(namespace, to, skip)
        try:
            text = "4" + encode_sio_str(packet)
        except TypeError:  # binary somewhere in args: attachments follow the header
            return self._emit_binary(packet, targets, event)
        shared = SharedFrame(text.encode(), window_bits=self.options.compression_window_bits)
        failed = self.rooms.broadcast(targets, text, shared)
        count = len(targets) if isinstance(targets, tuple | set | list) else 0
        for session in failed:
            self.close_session(session, "slow consumer", send_close=False)
        self.stats.emitted[event] += 1
        self.stats.deliveries += count - len(failed)
        return count - len(failed)

    def _emit_binary(self, packet: SioPacket, targets: Iterable[Socket], event: str) -> int:
        payloads = encode_sio(packet)
        count = 0
        for socket in list(targets):
            if socket.session.send_message(payloads):
                count += 1
        self.stats.emitted[event] += 1
        self.stats.deliveries += count
        return count

    def _targets(self, namespace: str, to: str | Iterable[str] | None, skip: str | Iterable[str]) -> Any:
        exclude = [skip] if isinstance(skip, str) else list(skip)
        if to is None:
            found = {s for s in self.sockets.values() if s.namespace == namespace}
            return self._exclude(found, namespace, exclude)
        rooms = [to] if isinstance(to, str) else list(to)
        direct = [self.sockets[r] for r in rooms if r in self.sockets and self.rooms.count(namespace, r) == 0]
        result = self.rooms.targets(namespace, rooms, exclude)
        if direct:
            merged = set(result)
            merged.update(s for s in direct if s.namespace == namespace and s.id not in exclude)
            return merged
        return result

    def _exclude(self, found: set[Socket], namespace: str, exclude: list[str]) -> set[Socket]:
        for name in exclude:
            found.difference_update(self.rooms.members(namespace, name))
            found = {s for s in found if s.id != name}
        return found

    def heartbeat_tick(self, now: float) -> None:
        """Ping due sessions, close those past their pong deadline or connect timeout."""
        opts = self.options
        ping = self._ping
        expired: list[tuple[EngineSession, str]] = []
        for session in self.sessions.values():
            if session.pong_deadline:
                if now >= session.pong_deadline:
                    expired.append((session, "ping timeout"))
                continue
            if now >= session.next_ping:
                session.pong_deadline = now + opts.ping_timeout
                if not session.send_shared("2", ping):
                    expired.append((session, "slow consumer"))
            elif not session.sockets and now - session.opened_at > opts.connect_timeout:
                expired.append((session, "connect timeout"))
        for session, reason in expired:
            self.close_session(session, reason, send_close=reason != "slow consumer")

    def dumps(self, value: Any) -> bytes:
        """orjson, as the engine encodes payloads (for callers that prebuild bodies)."""
        return orjson.dumps(value)
