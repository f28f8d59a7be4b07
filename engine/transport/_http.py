"""HTTP/1.1 on the engine's own listener: long-polling, the websocket upgrade, CORS.

h11 parses requests (keep-alive, pipelining, bodies); this module only routes them:

    GET  {path}?EIO=4&transport=polling            -> new session, body "0{...handshake...}"
    GET  {path}?EIO=4&transport=polling&sid=S      -> long-poll: packets queued for S
    POST {path}?EIO=4&transport=polling&sid=S      -> packets from the client, answer "ok"
    GET  {path}?EIO=4&transport=websocket[&sid=S]  + Upgrade: websocket -> 101, then frames
    OPTIONS {path}                                  -> CORS preflight
    METHOD /mounted/path                            -> a mounted route's handler (_routes.py)

Errors answer the Engine.IO error bodies (``{"code":N,"message":"..."}``) with status 400
(403 for a refused origin, 413 for an oversized body), never an exception. What a request
means for a session is the host's decision (``_host.EngineHost``); this module never sees a
session.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import anyio
import h11
import orjson
from wsproto.extensions import PerMessageDeflate

from engine.protocol import takes_offsets
from engine.transport._frames import accept_key
from engine.transport._host import EioError
from engine.transport._io import close_socket, recv_some, send_all, unwatch
from engine.transport._routes import HttpRequest, HttpResponse
from engine.transport._websocket import WebSocketConn

if TYPE_CHECKING:
    from engine.transport._host import EngineHost
    from engine.transport._routes import HttpRoute

log = logging.getLogger("zapline.engine")

UNKNOWN_TRANSPORT = EioError.UNKNOWN_TRANSPORT
BAD_HANDSHAKE_METHOD = EioError.BAD_HANDSHAKE_METHOD
BAD_REQUEST = EioError.BAD_REQUEST
FORBIDDEN = EioError.FORBIDDEN
UNSUPPORTED_PROTOCOL_VERSION = EioError.UNSUPPORTED_PROTOCOL_VERSION

_TEXT = b"text/plain; charset=UTF-8"
_JSON = b"application/json"


class _TimedOut(Exception):
    """A request (or the wait for one) ran past its deadline; ``idle`` if nothing had come."""

    def __init__(self, idle: bool) -> None:
        super().__init__("idle" if idle else "request")
        self.idle = idle


class _Request:
    __slots__ = ("method", "path", "query", "headers")

    def __init__(self, event: h11.Request) -> None:
        self.method = event.method.decode()
        parts = urlsplit(event.target.decode("latin-1"))
        self.path = parts.path
        self.query = {k: v[0] for k, v in parse_qs(parts.query).items()} if parts.query else {}
        # h11 lower-cases header names already
        self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}


async def handle_connection(host: EngineHost, sock: socket.socket, remote: str) -> None:
    """Serve one accepted TCP connection until it closes or becomes a websocket.

    An upgraded socket is handed to the server's reactor and this returns at once, so the
    HTTP parser, the request and this task's frames are freed for the websocket's lifetime.
    """
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
    options = host.options
    stats = host.listener_stats
    upgraded = False
    fresh = True
    try:
        while True:
            # The first request has header_timeout from the accept; a kept-alive connection
            # may idle idle_timeout, then its request has header_timeout from its first byte.
            event = await _next_event(
                conn,
                sock,
                anyio.current_time() + (options.header_timeout if fresh else options.idle_timeout),
                restart_after=None if fresh else options.header_timeout,
            )
            fresh = False
            if isinstance(event, h11.ConnectionClosed) or event is None:
                return
            if not isinstance(event, h11.Request):
                return
            request = _Request(event)
            upgraded = await _route(host, conn, sock, request, remote)
            if upgraded:
                return
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return
    except _TimedOut as exc:
        if exc.idle:
            stats.idle_timeouts += 1
        else:
            stats.header_timeouts += 1
            log.info("request from %s not complete within %s s", remote, options.header_timeout)
    except h11.RemoteProtocolError as exc:
        log.info("bad HTTP from %s: %s", remote, exc)
        await _try_send_error(conn, sock, exc.error_status_hint, BAD_REQUEST)
    except (OSError, anyio.ClosedResourceError, anyio.BrokenResourceError):
        pass
    except Exception:
        # A bug met by one connection is logged and ends that connection; letting it out
        # would cancel the server's task group and drop every other client with it.
        log.exception("connection from %s failed", remote)
    finally:
        if not upgraded:
            stats.open -= 1
            close_socket(sock)


async def _next_event(
    conn: h11.Connection,
    sock: socket.socket,
    deadline: float = math.inf,
    *,
    restart_after: float | None = None,
) -> h11.Event | None:
    """Return h11's next event, reading as needed until ``deadline``.

    ``restart_after``: the deadline was an idle one; once the first byte arrives, the rest
    must come within this many seconds. Raises ``_TimedOut`` past the deadline.
    """
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            with anyio.CancelScope(deadline=deadline) as scope:
                data = await recv_some(sock)
            if scope.cancelled_caught:
                raise _TimedOut(idle=restart_after is not None)
            if restart_after is not None and data:
                deadline = anyio.current_time() + restart_after
                restart_after = None
            conn.receive_data(data)
            continue
        if event is h11.PAUSED:
            return None
        return event  # type: ignore[return-value]


async def _read_body(
    conn: h11.Connection, sock: socket.socket, limit: int, within: float
) -> bytes | None:
    """Return the request body, or None if it exceeds ``limit``.

    Raises ``_TimedOut`` if it does not arrive within ``within`` seconds.
    """
    parts: list[bytes] = []
    size = 0
    deadline = anyio.current_time() + within
    while True:
        event = await _next_event(conn, sock, deadline)
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > limit:
                return None
            parts.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return b"".join(parts)
        else:
            raise h11.RemoteProtocolError("connection closed in the middle of a body")


def _cors_headers(host: EngineHost, request: _Request) -> list[tuple[bytes, bytes]] | None:
    """CORS headers for ``request``, or None if its origin is refused."""
    origin = request.headers.get("origin")
    if origin is None:
        return []
    allowed = host.options.cors_origins
    if not allowed or "*" in allowed or origin in allowed:
        return [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-credentials", b"true"),
            (b"vary", b"Origin"),
        ]
    return None


async def _respond(
    conn: h11.Connection,
    sock: socket.socket,
    status: int,
    body: bytes,
    content_type: bytes = _TEXT,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await _send_response(conn, sock, status, headers, body)


async def _send_response(
    conn: h11.Connection,
    sock: socket.socket,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> None:
    """Write status line, ``headers`` and ``body`` in one socket write."""
    if conn.their_state is h11.SEND_BODY:
        # We answer without reading the request's body (a refusal), so this connection cannot
        # carry another request: say so, or a keep-alive client would lose its next one.
        headers.append((b"connection", b"close"))
    data = conn.send(h11.Response(status_code=status, headers=headers))
    data += conn.send(h11.Data(data=body)) if body else b""
    data += conn.send(h11.EndOfMessage())
    await send_all(sock, data)


async def _error(
    conn: h11.Connection,
    sock: socket.socket,
    error: EioError,
    status: int = 400,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = orjson.dumps({"code": error.code, "message": error.message})
    await _respond(conn, sock, status, body, _JSON, extra)


async def _try_send_error(
    conn: h11.Connection, sock: socket.socket, status: int, error: EioError
) -> None:
    if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
        try:
            await _error(conn, sock, error, status)
        except (OSError, h11.LocalProtocolError, anyio.ClosedResourceError):
            pass


async def _route(
    host: EngineHost, conn: h11.Connection, sock: socket.socket, request: _Request, remote: str
) -> bool:
    """Answer one request; return True if the socket became a websocket (and is done)."""
    options = host.options
    mounted = host.http_routes.get(request.path)
    if mounted is not None:
        await _serve_mounted(conn, sock, request, mounted, remote, options.header_timeout)
        return False
    # Only POST carries a body; every other request is read to its end here, so keep-alive
    # works (h11 starts the next cycle only once both sides are DONE) and an upgrade request
    # reaches the PAUSED state h11 expects before the 101.
    if request.method != "POST" and await _read_body(conn, sock, 0, options.header_timeout) is None:
        await _error(conn, sock, BAD_REQUEST, 400)
        return False
    if request.path not in (options.path, options.path.rstrip("/")):
        await _respond(conn, sock, 404, b'{"error":"not found"}', _JSON)
        return False
    cors = _cors_headers(host, request)
    if cors is None:
        log.info("refused origin %r from %s", request.headers.get("origin"), remote)
        await _error(conn, sock, FORBIDDEN, 403)
        return False
    if request.method == "OPTIONS":
        allow = request.headers.get("access-control-request-headers", "content-type")
        await _respond(
            conn,
            sock,
            204,
            b"",
            _TEXT,
            cors
            + [
                (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                (b"access-control-allow-headers", allow.encode("latin-1")),
                (b"access-control-max-age", b"86400"),
            ],
        )
        return False
    query = request.query
    if query.get("EIO") != "4":
        await _error(conn, sock, UNSUPPORTED_PROTOCOL_VERSION, 400, cors)
        return False
    transport = query.get("transport")
    if transport == "websocket" and options.allow_websocket:
        if request.headers.get("upgrade", "").lower() != "websocket":
            await _error(conn, sock, BAD_REQUEST, 400, cors)
            return False
        return await _upgrade(host, conn, sock, request, remote)
    if transport != "polling" or not options.allow_polling:
        await _error(conn, sock, UNKNOWN_TRANSPORT, 400, cors)
        return False
    sid = query.get("sid")
    if sid is None:
        if request.method != "GET":
            await _error(conn, sock, BAD_HANDSHAKE_METHOD, 400, cors)
            return False
        handshake = host.open_polling(remote, takes_offsets=takes_offsets(request.headers, query))
        await _respond(conn, sock, 200, handshake.encode(), _TEXT, cors)
        return False
    if request.method == "GET":
        answer = await host.poll(sid)
        if isinstance(answer, EioError):
            await _error(conn, sock, answer, 400, cors)
        else:
            await _respond(conn, sock, 200, answer.encode(), _TEXT, cors)
        return False
    if request.method == "POST":
        refused = host.check_post(sid)
        if refused is not None:
            await _error(conn, sock, refused, 400, cors)
            return False
        raw = await _read_body(conn, sock, options.max_payload, options.header_timeout)
        refused = host.post(sid, raw)
        if raw is None:
            await _respond(
                conn, sock, 413, b'{"code":3,"message":"Payload too large"}', _JSON, cors
            )
        elif refused is not None:
            log.info("bad polling payload from %s (session %s)", remote, sid)
            await _error(conn, sock, refused, 400, cors)
        else:
            await _respond(conn, sock, 200, b"ok", b"text/html", cors)
        return False
    await _error(conn, sock, BAD_HANDSHAKE_METHOD, 400, cors)
    return False


async def _serve_mounted(
    conn: h11.Connection,
    sock: socket.socket,
    request: _Request,
    methods: Mapping[str, HttpRoute],
    remote: str,
    within: float,
) -> None:
    """Serve a request to a mounted path (the contract of ``_routes.py``)."""
    route = methods.get(request.method)
    if route is None:
        await _read_body(conn, sock, 0, within)  # a body left unread closes the connection
        allow = ", ".join(sorted(methods)).encode()
        await _respond(
            conn, sock, 405, b'{"error":"method not allowed"}', _JSON, [(b"allow", allow)]
        )
        return
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > route.max_body:
        raw = None
    else:
        raw = await _read_body(conn, sock, route.max_body, within)
    if raw is None and conn.their_state is h11.SEND_BODY:
        await _discard(conn, sock, route.discard_bytes, route.discard_seconds)
    incoming = HttpRequest(request.method, request.path, request.headers, raw, remote)
    try:
        response = await route.handler(incoming)
    except Exception:
        log.exception("%s %s from %s: the handler failed", request.method, request.path, remote)
        response = HttpResponse(
            500, b'{"error":"internal server error"}', ((b"content-type", _JSON),)
        )
    headers = [*response.headers, (b"content-length", str(len(response.body)).encode())]
    await _send_response(conn, sock, response.status, headers, response.body)


async def _discard(conn: h11.Connection, sock: socket.socket, budget: int, seconds: float) -> None:
    """Read and drop the request's body until it ends, ``budget`` bytes or ``seconds``."""
    with anyio.move_on_after(seconds):
        while budget > 0:
            event = await _next_event(conn, sock)
            if isinstance(event, h11.Data):
                budget -= len(event.data)
            else:
                return  # EndOfMessage (keep-alive stays possible), or the peer went away


def _negotiate_deflate(
    host: EngineHost, request: _Request
) -> tuple[list[PerMessageDeflate] | None, str | None]:
    if not host.options.compression:
        return None, None
    offer = request.headers.get("sec-websocket-extensions", "")
    for item in offer.split(","):
        if item.strip().startswith("permessage-deflate"):
            bits = host.options.compression_window_bits
            ext = PerMessageDeflate(
                client_no_context_takeover=True,
                server_no_context_takeover=True,
                server_max_window_bits=bits,
            )
            accepted = ext.accept(item.strip())
            # One deflated frame is shared by every connection, so a client asking for a
            # smaller window than ours gets no compression rather than a frame of its own.
            if accepted is None or accepted is False or ext.server_max_window_bits < bits:
                continue
            # accept() answers the parameters only; the header names the extension first.
            return [ext], ext.name + (
                "; " + accepted if isinstance(accepted, str) and accepted else ""
            )
    return None, None


async def _upgrade(
    host: EngineHost, conn: h11.Connection, sock: socket.socket, request: _Request, remote: str
) -> bool:
    key = request.headers.get("sec-websocket-key")
    if not key or request.headers.get("sec-websocket-version") != "13":
        await _error(conn, sock, BAD_REQUEST, 400)
        return False
    sid = request.query.get("sid")
    if sid is not None:
        refused = host.websocket_sid(sid)
        if refused is not None:
            await _error(conn, sock, refused, 400)
            return False
    extensions, ext_header = _negotiate_deflate(host, request)
    headers = [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", accept_key(key).encode()),
    ]
    if ext_header:
        headers.append((b"sec-websocket-extensions", ext_header.encode()))
    await send_all(sock, conn.send(h11.InformationalResponse(status_code=101, headers=headers)))
    trailing, _closed = conn.trailing_data
    unwatch(sock)  # the reactor reads it from now on
    options = host.options
    if options.send_buffer > 0:
        # Bound what the kernel holds for a peer that stops reading: the outbox limit is
        # then what a stalled client costs, not megabytes of autotuned buffer on top.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, options.send_buffer)
    ws = WebSocketConn(
        sock,
        host.reactor,
        stats=host.listener_stats,
        stall_timeout=options.stall_timeout,
        outbox_limit=options.outbox_limit,
        max_size=options.max_payload,
        spawn=host.spawn,
        extensions=extensions,  # type: ignore[arg-type]
        window_bits=options.compression_window_bits,
        threshold=options.compression_threshold,
    )
    if sid is None:
        host.open_websocket(ws, remote, takes_offsets=takes_offsets(request.headers, request.query))
    else:
        host.attach_probe(ws, sid)
    ws.start(bytes(trailing))
    return True
