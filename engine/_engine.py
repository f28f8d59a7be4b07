"""The Engine.IO v4 server: sessions over long-polling and websockets, heartbeat, upgrade.

Theory of operation
-------------------
``EngineIO`` is the host the listener talks to (``transport/_host.py``): the listener parses
HTTP and websocket frames and asks this object what each request means. Every decision about
a session is made by its sans-IO ``EioSession`` (``engine/protocol/_eio_session.py``); this
module feeds it packets and time, writes what it returns, and keeps the bookkeeping that
needs I/O: the table of sessions, the websocket or probe each one rides on, parked polls,
and one heartbeat timer for all of them (``_heartbeat.py``).

What the sessions carry is the application's (``EngineApp``): Socket.IO for
``SocketServer``, an echo for the conformance profile. It receives every MESSAGE and hears of
every close, exactly once, whichever side or timer ended the session.

Plain HTTP routes may be mounted beside Engine.IO (``add_http_route``): this module keeps
the table, the listener serves them (contract: ``transport/_routes.py``).

``serve()`` owns one task group: the accept loop and a task per connection while it speaks
HTTP, the reactor (one task reading every websocket), the heartbeat timer, and the outboxes'
flushers. Nothing else starts tasks here.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

import anyio
import anyio.abc

from engine._heartbeat import Heartbeat
from engine._session import EngineSession
from engine.options import EngineOptions
from engine.protocol import (
    PING_WS,
    ClientPing,
    EioPacket,
    EioSession,
    MessageReceived,
    PollRefused,
    ProtocolError,
    SessionClosed,
    decode_payload,
    decode_ws,
    encode_ws,
    open_packet,
)
from engine.transport._frames import SharedFrame
from engine.transport._host import EioError
from engine.transport._http import handle_connection
from engine.transport._listener import ListenerStats, bind_socket, serve_listener
from engine.transport._reactor import Reactor
from engine.transport._routes import HttpHandler, HttpRoute, HttpRoutes

if TYPE_CHECKING:
    from engine.transport._websocket import WebSocketConn

__all__ = ["EngineApp", "EngineIO"]

log = logging.getLogger("zapline.engine")

CLIENT_CLOSE = "client close"
SLOW_CONSUMER = "slow consumer"
# How long a session the client closed itself answers one racing poll with a NOOP.
CLOSED_POLL_GRACE = 2.0


class EngineApp(Protocol):
    """What the Engine.IO server asks of the protocol riding on it."""

    def message_received(self, session: EngineSession, data: str | bytes) -> None:
        """A MESSAGE from the client. Raising ``ProtocolError`` closes the session."""
        ...

    def session_closed(self, session: EngineSession, reason: str) -> None:
        """``session`` is over (called once, before its transport is closed)."""
        ...

    def connect_expired(self, session: EngineSession) -> bool:
        """The connect deadline passed: return True to close ``session``."""
        ...


def new_id() -> str:
    """Return a fresh random id (sids and socket ids)."""
    return secrets.token_urlsafe(15)


class EngineIO:
    """Engine.IO sessions on the engine's own listener, for one ``EngineApp``."""

    def __init__(self, options: EngineOptions, app: EngineApp) -> None:
        """Serve ``app`` with ``options``; nothing runs until ``serve``."""
        self._options = options
        self._app = app
        self.sessions: dict[str, EngineSession] = {}
        self._closing: dict[str, tuple[EngineSession, float]] = {}
        self._reactor: Reactor[WebSocketConn] = Reactor(
            self._ws_message, self._ws_ended, self._ws_overflow
        )
        self.heartbeat = Heartbeat(self._due)
        self.ping_frame = SharedFrame(PING_WS.encode())
        self._on_overflow = self._overflow  # one bound method for every session, not one each
        self._stats = ListenerStats()
        self._routes = HttpRoutes(options.path, options.path.rstrip("/"))
        self.port: int | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._scope: anyio.CancelScope | None = None
        self._listener: anyio.CancelScope | None = None

    # -- the host contract (transport/_host.py) -----------------------------------------------

    @property
    def options(self) -> EngineOptions:
        """The engine's settings."""
        return self._options

    @property
    def reactor(self) -> Reactor[WebSocketConn]:
        """The reader of every upgraded websocket."""
        return self._reactor

    @property
    def listener_stats(self) -> ListenerStats:
        """Counters of the listener."""
        return self._stats

    @property
    def http_routes(self) -> Mapping[str, Mapping[str, HttpRoute]]:
        """Routes mounted beside Engine.IO (``add_http_route``)."""
        return self._routes.by_path

    def add_http_route(
        self,
        method: str,
        path: str,
        handler: HttpHandler,
        *,
        max_body: int = 1_000_000,
        discard_bytes: int = 4 * 1024 * 1024,
        discard_seconds: float = 5.0,
    ) -> None:
        """Serve ``method path`` (exact match) on this listener with ``handler``; returns None.

        The contract (body read first within ``max_body``, one write per answer, 500 for a
        handler that raises) is ``engine/transport/_routes.py``'s. Raises ``ValueError`` for
        the Engine.IO path or a route already mounted.
        """
        route = HttpRoute(handler, max_body, discard_bytes, discard_seconds)
        self._routes.add(method, path, route)

    def spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Start ``fn(*args)`` in the engine's task group.

        Raises ``RuntimeError`` if the engine is not running.
        """
        if self._tg is None:
            raise RuntimeError("the server is not running")
        self._tg.start_soon(fn, *args)

    def open_polling(self, remote: str, *, takes_offsets: bool = True) -> str:
        """Open a long-polling session; return its OPEN packet."""
        _, handshake = self.open_session(remote, takes_offsets=takes_offsets)
        return handshake

    async def poll(self, sid: str) -> str | EioError:
        """Park a GET on ``sid`` until there is something to answer; return the body."""
        session = self._find(sid, polls_too=True)
        if session is None:
            return EioError.UNKNOWN_SID
        refused = session.eio.start_poll(anyio.current_time())
        if refused is not None:
            self._sync_closed(session)
            if refused is PollRefused.CLOSED:
                return EioError.UNKNOWN_SID
            return EioError.BAD_REQUEST
        body = await session.wait_poll()
        if session.closed:
            self._closing.pop(sid, None)
        return body

    def check_post(self, sid: str) -> EioError | None:
        """Whether a POST for ``sid`` may deliver packets."""
        session = self._find(sid)
        if session is None:
            return EioError.UNKNOWN_SID
        if session.eio.expire(anyio.current_time()):
            self._sync_closed(session)
            return EioError.UNKNOWN_SID
        if session.eio.on_websocket:
            return EioError.BAD_REQUEST
        return None

    def post(self, sid: str, body: bytes | None) -> EioError | None:
        """Apply the packets of a POST body (None: it exceeded maxPayload)."""
        refused = self.check_post(sid)  # the body took time to arrive
        if refused is not None:
            return refused
        session = self.sessions[sid]
        if body is None:
            self.close_session(session, "message too big", send_close=True)
            return None
        try:
            packets = decode_payload(body.decode())
            now = anyio.current_time()
            for packet in packets:
                if session.closed:
                    break
                self._receive(session, packet, now)
        except (ProtocolError, UnicodeDecodeError) as exc:
            log.info("bad polling payload from %s (session %s): %s", session.remote, sid, exc)
            self.close_session(session, "parse error", send_close=True)
            return EioError.BAD_REQUEST
        return None

    def websocket_sid(self, sid: str) -> EioError | None:
        """A websocket for a known sid gets its 101 (and is closed later if it cannot probe)."""
        return None if sid in self.sessions else EioError.UNKNOWN_SID

    def open_websocket(self, ws: WebSocketConn, remote: str, *, takes_offsets: bool = True) -> None:
        """Bind a new websocket-only session to ``ws`` and write its OPEN packet."""
        session, handshake = self.open_session(remote, websocket=True, takes_offsets=takes_offsets)
        session.use_websocket(ws)
        ws.session = session
        ws.remote = remote
        ws.write_payload(handshake)

    def attach_probe(self, ws: WebSocketConn, sid: str) -> None:
        """Make ``ws`` the probe of polling session ``sid``; close it if that is not possible.

        A session already on a websocket (or with a probe of its own) keeps going untouched:
        the extra websocket is closed, as the reference server does.
        """
        session = self.sessions.get(sid)
        now = anyio.current_time()
        if session is None or session.eio.expire(now) or not session.eio.attach_probe():
            if session is not None:
                self._sync_closed(session)
            ws.close(1000, "session cannot upgrade")
            return
        session.probe = ws
        ws.session = session
        ws.remote = session.remote
        # The deadline bounds the probe only: "5" lifts it (``_probe_packet``).
        ws.set_deadline(now + self._options.upgrade_timeout)

    # -- sessions ----------------------------------------------------------------------------

    def open_session(
        self, remote: str, *, websocket: bool = False, takes_offsets: bool = True
    ) -> tuple[EngineSession, str]:
        """Create a session; return it and its OPEN packet in Engine.IO text form.

        ``takes_offsets`` says whether its client can take recovery offsets (see
        ``engine.protocol.takes_offsets``); it is fixed for the session's life.
        """
        opts = self._options
        now = anyio.current_time()
        eio = EioSession(
            new_id(),
            now,
            ping_interval=opts.ping_interval,
            ping_timeout=opts.ping_timeout,
            websocket=websocket,
        )
        session = EngineSession(eio, remote, limit=opts.outbox_limit, on_overflow=self._on_overflow)
        session.connect_deadline = now + opts.connect_timeout
        session.takes_offsets = takes_offsets
        self.sessions[session.sid] = session
        self.heartbeat.schedule(session)
        return session, self.handshake(session.sid, upgradable=not websocket)

    def handshake(self, sid: str, *, upgradable: bool) -> str:
        """Return the OPEN packet (text form) for ``sid``.

        ``upgradable`` is False for a session opened on a websocket: it has nothing to upgrade
        to, so it advertises no upgrades (as the reference server does).
        """
        opts = self._options
        upgrades = ["websocket"] if opts.allow_websocket and upgradable else []
        packet = open_packet(
            sid,
            upgrades,
            int(opts.ping_interval * 1000),
            int(opts.ping_timeout * 1000),
            opts.max_payload,
        )
        return str(encode_ws(packet))

    def close_session(
        self, session: EngineSession, reason: str, *, send_close: bool = True
    ) -> None:
        """End a session: the app hears of it, the transport closes. Idempotent.

        ``send_close`` tells the client with a CLOSE packet (websocket, or the parked poll).
        """
        if session.eio.close(reason):
            self._finish_close(session, reason, send_close)

    def _find(self, sid: str, *, polls_too: bool = False) -> EngineSession | None:
        session = self.sessions.get(sid)
        if session is not None or not polls_too or not self._closing:
            return session
        entry = self._closing.get(sid)
        if entry is None:
            return None
        if entry[1] < anyio.current_time() or not entry[0].eio.owes_noop:
            del self._closing[sid]
            return None
        return entry[0]

    def _sync_closed(self, session: EngineSession) -> None:
        """Finish a close the state machine made on its own (timeout, duplicate poll)."""
        eio = session.eio
        if eio.closed and self.sessions.get(session.sid) is session:
            self._finish_close(session, eio.close_reason, eio.close_reason != CLIENT_CLOSE)

    def _finish_close(self, session: EngineSession, reason: str, send_close: bool) -> None:
        if self.sessions.get(session.sid) is session:
            del self.sessions[session.sid]
        self._app.session_closed(session, reason)
        session.wake()  # a parked poll answers (with a CLOSE packet unless the client closed)
        ws = session.ws
        if ws is not None:
            if send_close and not ws.closed:
                ws.write_payload("1")
            slow = reason == SLOW_CONSUMER
            ws.close(1008 if slow else 1000, "" if send_close else reason)
        probe = session.probe
        if probe is not None:
            session.probe = None
            probe.abort()
        if session.eio.owes_noop:
            now = anyio.current_time()
            expired = [sid for sid, (_, until) in self._closing.items() if until < now]
            for sid in expired:
                del self._closing[sid]
            self._closing[session.sid] = (session, now + CLOSED_POLL_GRACE)

    def _overflow(self, session: EngineSession) -> None:
        self.close_session(session, SLOW_CONSUMER, send_close=False)

    # -- packets -----------------------------------------------------------------------------

    def _receive(self, session: EngineSession, packet: EioPacket, now: float) -> None:
        """Apply one packet from the session's own transport. Raises ``ProtocolError``."""
        event = session.eio.receive(packet, now)
        if event is None:
            return
        if type(event) is MessageReceived:
            self._app.message_received(session, event.data)
        elif type(event) is ClientPing:
            session.send_payloads([event.reply])
        elif type(event) is SessionClosed:
            self._finish_close(session, event.reason, False)

    def _ws_message(self, ws: WebSocketConn, message: str | bytes) -> None:
        session = cast("EngineSession | None", ws.session)
        if session is None or session.closed:
            return
        try:
            packet = decode_ws(message)
            if session.probe is ws:
                self._probe_packet(session, ws, packet)
            else:
                self._receive(session, packet, anyio.current_time())
        except ProtocolError as exc:
            log.info("protocol error from %s (session %s): %s", session.remote, session.sid, exc)
            self.close_session(session, "parse error", send_close=True)

    def _probe_packet(self, session: EngineSession, ws: WebSocketConn, packet: EioPacket) -> None:
        answer = session.eio.receive_probe(packet)
        if isinstance(answer, str):  # 3probe: a parked poll now answers a NOOP
            ws.write_payload(answer)
        else:  # upgraded: what was queued for polling goes first
            session.probe = None
            session.use_websocket(ws)
            for item in answer:
                ws.write_payload(item)
            ws.set_deadline(math.inf, extend=True)
        session.wake()

    def _ws_ended(self, ws: WebSocketConn, reason: str) -> None:
        session = cast("EngineSession | None", ws.session)
        if session is None:
            return
        if session.probe is ws:  # the upgrade never completed; the session goes on polling
            session.probe = None
            session.eio.probe_failed()
            if reason == "timeout":
                log.info("upgrade of %s timed out", session.sid)
        elif session.ws is ws:
            self.close_session(session, reason, send_close=False)

    def _ws_overflow(self, ws: WebSocketConn) -> None:
        session = cast("EngineSession | None", ws.session)
        if session is not None and session.ws is ws:
            self.close_session(session, SLOW_CONSUMER, send_close=False)
        else:
            ws.abort()

    # -- heartbeat ---------------------------------------------------------------------------

    def _due(self, session: EngineSession, now: float) -> None:
        tick = session.eio.tick(now)
        if tick.timed_out:
            self._finish_close(session, session.eio.close_reason, True)
            return
        if tick.send is not None and not session.send_shared(tick.send, self.ping_frame):
            return  # too slow to take a ping: closed as a slow consumer already
        if now >= session.connect_deadline:
            session.connect_deadline = math.inf
            if self._app.connect_expired(session):
                self.close_session(session, "connect timeout", send_close=True)

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
        sock = bind_socket(host, port)
        self.port = sock.getsockname()[1]
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self._scope = tg.cancel_scope
                tg.start_soon(self.heartbeat.run)
                tg.start_soon(self._reactor.run)
                tg.start_soon(self._listen, sock, tg)
                task_status.started(self.port)
        finally:
            self._tg = None
            self._scope = None

    async def _listen(self, sock: Any, tg: anyio.abc.TaskGroup) -> None:
        with anyio.CancelScope() as scope:
            self._listener = scope
            await serve_listener(
                sock,
                self._handle_tcp,
                tg,
                stats=self._stats,
                max_connections=self._options.max_connections,
            )

    async def _handle_tcp(self, sock: Any, remote: str) -> None:
        await handle_connection(self, sock, remote)

    async def shutdown(self, grace: float = 2.0) -> None:
        """Stop accepting, close every session with a proper close, then stop serving.

        Websocket clients get a close packet and a close frame, parked polls answer ``1``;
        the writes get up to ``grace`` seconds to drain. Returns once serving is cancelled.
        """
        if self._listener is not None:
            self._listener.cancel()
        sessions = list(self.sessions.values())
        for session in sessions:
            self.close_session(session, "server shutdown", send_close=True)

        def busy(session: EngineSession) -> bool:
            ws = session.ws
            return session.polling or (ws is not None and ws.outbox.pending_bytes > 0)

        with anyio.move_on_after(grace):
            # Polled: drains finish in many tasks (flushers, poll answers) and this runs once.
            while any(busy(s) for s in sessions):  # noqa: ASYNC110
                await anyio.sleep(0.01)
            # The parked polls were answered from their own tasks; let their writes finish.
            await anyio.sleep(0.02)
        if self._scope is not None:
            self._scope.cancel()
