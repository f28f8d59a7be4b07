"""The Socket.IO server: namespaces, handlers, emit, acks, on top of the Engine.IO host.

Theory of operation
-------------------
``serve()`` owns one task group. In it run the Engine.IO host (``_engine.py``: the listener,
the websocket reactor, the heartbeat timer, outbox flushers), the deferred-emit flusher
(``_coalesce.py``) and handler tasks. Nothing else starts tasks.

Incoming: the Engine.IO host hands every MESSAGE to ``message_received``; Socket.IO events
come out of the session's sans-IO ``SioConnection`` into ``dispatch_sio``, which starts a task
per connect request and per event handler (handlers may await; the reader must not, or a
handler awaiting an ack from its own client would deadlock).

Outgoing: ``emit`` encodes once and writes to many (``rooms.py``), synchronously, from any task.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc

from engine._coalesce import Coalescer
from engine._emit import (
    after_all,
    encode_events,
    send_in_turn,
    split_by_offsets,
    with_offsets,
)
from engine._engine import EngineIO, new_id
from engine._session import EngineSession
from engine._socket import (
    ConnectHandler,
    ConnectionRefused,
    DisconnectHandler,
    EventHandler,
    Namespace,
    Socket,
)
from engine.options import EngineOptions
from engine.protocol import (
    NEED_DATA,
    AckReceived,
    ConnectRequest,
    DisconnectReceived,
    EventReceived,
    ProtocolError,
)
from engine.rooms import RoomHub
from engine.transport._frames import SharedBatch, SharedFrame
from engine.transport._listener import ListenerStats
from engine.transport._reactor import Reactor
from engine.transport._websocket import WebSocketConn

__all__ = ["ConnectionRefused", "Namespace", "ServerStats", "SocketServer"]

log = logging.getLogger("zapline.engine")

# This thread's CPU clock: on a shared core, wall time would count other processes' turns.
_cpu_clock = time.thread_time


@dataclass
class ServerStats:
    """Counters the metrics endpoint reads; plain ints, updated inline."""

    connects: int = 0
    connect_errors: int = 0
    disconnects: Counter[str] = field(default_factory=Counter)
    emitted: Counter[str] = field(default_factory=Counter)
    deliveries: int = 0
    writes: int = 0  # one per recipient per write: deliveries / writes is the batching
    # CPU seconds (this thread's clock) spent encoding emits and writing them to sockets: the
    # bench's cost ledger reads it as the fan-out stage of a webhook.
    fanout_seconds: float = 0.0
    slow_consumers: int = 0
    received_events: int = 0
    listener: ListenerStats = field(default_factory=ListenerStats)


class SocketServer:
    """A Socket.IO v5 / Engine.IO v4 server on its own listener."""

    def __init__(self, options: EngineOptions | None = None) -> None:
        """A server with ``options`` (the defaults if None); nothing runs until ``serve``."""
        self.options = options or EngineOptions()
        self.engine = EngineIO(self.options, self)
        self.sockets: dict[str, Socket] = {}
        self.rooms = RoomHub()
        self.namespaces: dict[str, Namespace] = {"/": Namespace("/")}
        self.stats = ServerStats(listener=self.engine.listener_stats)
        self._tg: anyio.abc.TaskGroup | None = None
        self._scope: anyio.CancelScope | None = None
        self._coalescer = Coalescer(self._deliver)

    @property
    def sessions(self) -> dict[str, EngineSession]:
        """Open Engine.IO sessions by sid."""
        return self.engine.sessions

    @property
    def reactor(self) -> Reactor[WebSocketConn]:
        """The reader of every upgraded websocket."""
        return self.engine.reactor

    @property
    def port(self) -> int | None:
        """The bound port once serving, else None."""
        return self.engine.port

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

    def on_disconnect(
        self, namespace: str = "/"
    ) -> Callable[[DisconnectHandler], DisconnectHandler]:
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
        self,
        host: str = "127.0.0.1",
        port: int = 3334,
        *,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` until cancelled or ``shutdown()``; ``started(port)`` once bound.

        Raises ``OSError`` if the address cannot be bound.
        """
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self._scope = tg.cancel_scope
                tg.start_soon(self._coalescer.run)
                bound = await tg.start(self.engine.serve, host, port)
                task_status.started(bound)
        finally:
            self._tg = None
            self._scope = None

    def spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Start ``fn(*args)`` in the server's task group (handlers, callbacks).

        Raises ``RuntimeError`` if the server is not running.
        """
        if self._tg is None:
            raise RuntimeError("the server is not running")
        self._tg.start_soon(fn, *args)

    async def shutdown(self, grace: float = 2.0) -> None:
        """Stop accepting, close every session with a proper close, then stop serving.

        Websocket clients get a close packet and a close frame, parked polls answer ``1``;
        the writes get up to ``grace`` seconds to drain. Returns once serving is cancelled.
        """
        await self.engine.shutdown(grace)
        if self._scope is not None:
            self._scope.cancel()

    # -- sessions ----------------------------------------------------------------------------

    def open_session(self, remote: str, *, takes_offsets: bool = True) -> tuple[EngineSession, str]:
        """Create a polling session; return it and its OPEN packet in Engine.IO text form."""
        return self.engine.open_session(remote, takes_offsets=takes_offsets)

    def close_session(
        self, session: EngineSession, reason: str, *, send_close: bool = True
    ) -> None:
        """End a session: sockets disconnect (handlers run), the transport closes. Idempotent."""
        self.engine.close_session(session, reason, send_close=send_close)

    # -- the Engine.IO application (engine/_engine.py) ---------------------------------------

    def message_received(self, session: EngineSession, data: str | bytes) -> None:
        """Feed one Engine.IO MESSAGE to Socket.IO. Raises ``ProtocolError``."""
        session.sio.receive_message(data)
        self.dispatch_sio(session)

    def session_closed(self, session: EngineSession, reason: str) -> None:
        """The Engine.IO session ended: its sockets disconnect, pending connects give up."""
        for socket in list(session.sockets.values()):
            self.disconnect_socket(socket, reason, notify=False)
        session.connecting.clear()  # their connect tasks see it and give up
        session.acks = None
        if reason == "slow consumer":
            self.stats.slow_consumers += 1

    def connect_expired(self, session: EngineSession) -> bool:
        """Whether ``session`` joined no namespace within connectTimeout (it is then closed)."""
        return not session.sockets and not session.connecting

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
                if event.namespace not in self.namespaces:
                    self.stats.connect_errors += 1
                    session.send_message(session.sio.refuse(event.namespace, "Invalid namespace"))
                    continue
                socket = Socket(new_id(), event.namespace, session, self)
                session.connecting[event.namespace] = socket
                self.spawn(self._run_connect, socket, event.auth)
            elif isinstance(event, DisconnectReceived):
                socket = session.sockets.get(event.namespace)
                if socket is not None:
                    self.disconnect_socket(socket, "client namespace disconnect", notify=False)
                else:  # still being authorised: its connect task must not accept it now
                    session.connecting.pop(event.namespace, None)

    async def _run_connect(self, socket: Socket, auth: dict[str, Any] | None) -> None:
        session = socket.session
        namespace = socket.namespace
        ns = self.namespaces[namespace]
        refusal: tuple[str, Any] | None = None
        try:
            for handler in ns.connect:
                result = handler(socket, auth)
                if inspect.isawaitable(result):
                    await result
        except ConnectionRefused as exc:
            log.info("connect to %s refused for %s: %s", namespace, session.remote, exc.message)
            refusal = (exc.message, exc.data)
        except Exception:
            log.exception("connect handler failed for %s", namespace)
            refusal = ("Internal server error", None)
        # The client may have left (DISCONNECT, closed session) while the handlers ran; then
        # there is nobody to answer, and accept() would connect a namespace it already left.
        wanted = session.connecting.get(namespace) is socket and not session.closed
        if wanted:
            del session.connecting[namespace]
        early, socket.early = socket.early, []
        if refusal is not None or not wanted:
            self.rooms.leave_all(socket)
            if refusal is None:
                return
            self.stats.connect_errors += 1
            if wanted:
                try:
                    reply = session.sio.refuse(namespace, refusal[0], refusal[1])
                except TypeError:  # data not JSON-serialisable: the message alone still helps
                    reply = session.sio.refuse(namespace, refusal[0])
                session.send_message(reply)
            return
        if socket.id in self.sockets:  # two reconnects took one id back: the first keeps it
            socket.id = new_id()
        socket.connected = True
        session.sockets[namespace] = socket
        self.sockets[socket.id] = socket
        self.stats.connects += 1
        session.send_message(session.sio.accept(namespace, socket.id, socket.pid))
        for payloads in early:
            session.send_payloads(payloads)

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
        sio = socket.session.sio
        try:
            payloads = sio.ack(socket.namespace, ack_id, values)
        except (TypeError, ProtocolError):
            # A handler's bug must not take the server down; the client still gets its ack.
            log.exception("ack value of socket %s is not serialisable", socket.id)
            payloads = sio.ack(socket.namespace, ack_id, [{"error": "internal error"}])
        socket.session.send_message(payloads)

    async def _run_callback(self, callback: Any, args: tuple[Any, ...]) -> None:
        try:
            result = callback(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("ack callback failed")

    def join_room(self, socket: Socket, room: str) -> None:
        """Add ``socket`` to ``room`` of its namespace (idempotent)."""
        self.rooms.join(socket, room)

    def leave_room(self, socket: Socket, room: str) -> None:
        """Remove ``socket`` from ``room`` (idempotent)."""
        self.rooms.leave(socket, room)

    def socket_id_free(self, sid: str) -> bool:
        """Whether no connected socket has the id ``sid`` (a connecting one has its own,
        fresh, unless it took this one back: then the first to be accepted keeps it)."""
        return sid not in self.sockets

    def flush_deferred(self) -> None:
        """Write every deferred emit parked so far, now; never yields."""
        if self._coalescer.pending:
            self._coalescer.flush()

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
        number of sockets written to. Sessions too slow to take it are closed. Raises
        ``TypeError`` if ``args`` are not JSON-serialisable.
        """
        return self.emit_many(((event, args),), to=to, skip=skip, namespace=namespace)

    def emit_many(
        self,
        events: Sequence[tuple[str, tuple[Any, ...]]],
        *,
        to: str | Iterable[str] | None = None,
        skip: str | Iterable[str] = (),
        namespace: str = "/",
        defer: bool = False,
        on_written: Callable[[], None] | None = None,
        offsets: Sequence[str | None] | None = None,
    ) -> int:
        """Send several ``(event, args)`` to the same sockets, in order, in one write each.

        Same targets as ``emit``; each event encoded once, the frames concatenated once; a
        websocket gets one ``send``, a polling session the packets queued. ``defer=True``
        writes at the end of this scheduler turn instead, with every other deferred emit of
        the turn: one write per recipient for all (``engine/_coalesce.py``); order per
        recipient is kept. ``on_written`` is called once the frames were handed to every
        recipient (later in the turn when deferred). Never yields. Returns the sockets reached
        (or to be).

        ``offsets`` (connection state recovery) holds one ``str | None`` per event: sockets
        that ``takes_offsets`` get each event with its offset appended as the last argument,
        the others get it plain; each variant is encoded once, and per-recipient order and
        batching hold for both. Raises ``TypeError`` if any args are not JSON-serialisable,
        ``ValueError`` if ``offsets`` does not have one entry per event; nothing is sent then.
        """
        if not events:
            return 0
        started = _cpu_clock()
        texts, binary = encode_events(events, namespace)
        targets = self.rooms.targets(namespace, to, skip, self.sockets)
        parts: list[tuple[Collection[Socket], list[str], dict[int, list[str | bytes]]]]
        parts = [(targets, texts, binary)]
        if offsets is not None:
            marked = with_offsets(events, offsets)
            if any(offset is not None for offset in offsets):
                plain, takers = split_by_offsets(targets)
                if takers:
                    parts = [(takers, *encode_events(marked, namespace))]
                    if plain:
                        parts.insert(0, (plain, texts, binary))
        stats = self.stats
        for event, _ in events:
            stats.emitted[event] += 1
        coalescer = self._coalescer
        if any(part[2] for part in parts):
            coalescer.flush()
            reached = 0
            for part_targets, part_texts, part_binary in parts:
                got, deliveries = send_in_turn(part_targets, part_texts, part_binary)
                reached += got
                stats.deliveries += deliveries
            if on_written is not None:
                on_written()
            return reached
        bits = self.options.compression_window_bits
        if defer:
            done = on_written if len(parts) == 1 else after_all(len(parts), on_written)
            for part_targets, part_texts, _ in parts:
                frames = [SharedFrame(t.encode(), window_bits=bits) for t in part_texts]
                coalescer.park(part_targets, part_texts, frames, done)
            stats.fanout_seconds += _cpu_clock() - started  # the write is timed in _deliver
            return len(targets)
        stats.fanout_seconds += _cpu_clock() - started  # the writes are timed in _deliver
        if coalescer.pending:
            coalescer.flush()
        reached = 0
        for part_targets, part_texts, _ in parts:
            frames = [SharedFrame(t.encode(), window_bits=bits) for t in part_texts]
            reached += self._deliver(part_targets, part_texts, frames)
        if on_written is not None:
            on_written()
        return reached

    def _deliver(self, to: Collection[Socket], texts: list[str], frames: list[SharedFrame]) -> int:
        started = _cpu_clock()
        shared = frames[0] if len(frames) == 1 else SharedBatch(frames)
        failed = self.rooms.broadcast(to, texts, shared)
        for session in failed:
            self.close_session(session, "slow consumer", send_close=False)
        delivered = len(to) - len(failed)
        self.stats.fanout_seconds += _cpu_clock() - started
        self.stats.deliveries += delivered * len(texts)
        self.stats.writes += delivered
        return delivered
