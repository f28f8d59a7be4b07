"""Engine.IO over a websocket: a websocket-only session, or the upgrade of a polling one.

The upgrade, as the Engine.IO v4 clients do it: the client opens a websocket with the polling
session's sid and sends ``2probe``; we answer ``3probe`` and a noop (``6``) to a parked poll so
the client can pause polling; the client sends ``5`` and from then on the session lives on the
websocket, the packets queued for polling flushed into it first, in order. A probe that never
sends ``5`` within ``upgrade_timeout`` is dropped and the session goes on polling.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import anyio

from engine.protocol import ProtocolError, decode_ws

if TYPE_CHECKING:
    from engine._server import SocketServer
    from engine._session import EngineSession
    from engine.transport._websocket import WebSocketConn

log = logging.getLogger("zapline.engine")


def attach_websocket(
    server: SocketServer,
    ws: WebSocketConn,
    session: EngineSession | None,
    remote: str,
    trailing: bytes = b"",
) -> None:
    """Bind an upgraded socket to a new websocket session (``session`` None) or make it a probe.

    Returns at once: from here the server's reactor reads the socket, and ``websocket_ended``
    learns when it is gone. ``trailing`` bytes arrived with the upgrade request.
    """
    if session is None:
        session, _ = server.open_session(remote)
        session.use_websocket(ws)
        ws.session = session
        ws.write_payload(server.handshake(session.sid, upgradable=False))
        ws.start(trailing)
        return
    if not session.begin_upgrade(ws):
        ws.abort()
        return
    ws.session = session
    # The deadline bounds the probe only: "5" lifts it (``_probe_packet``).
    ws.set_deadline(anyio.current_time() + server.options.upgrade_timeout)
    ws.start(trailing)


def websocket_ended(server: SocketServer, ws: WebSocketConn, reason: str) -> None:
    """The reactor dropped ``ws``: close the session riding on it, or forget the probe."""
    session = ws.session
    if session is None:
        return
    if session.probe is ws:  # the upgrade never completed; the session goes on polling
        session.probe = None
        session.upgrading = False
        if reason == "timeout":
            log.info("upgrade of %s timed out", session.sid)
    elif session.ws is ws:
        server.close_session(session, reason, send_close=False)


def on_websocket_message(server: SocketServer, ws: WebSocketConn, message: str | bytes) -> None:
    """Apply one complete websocket message from the client (the reactor calls this)."""
    session = ws.session
    if session is None or session.closed:
        return
    try:
        packet = decode_ws(message)
        if session.probe is ws:
            _probe_packet(session, ws, packet.type.value, packet.data)
            return
        session.receive_packet(packet, anyio.current_time())
    except ProtocolError as exc:
        log.info("protocol error from %s (session %s): %s", session.remote, session.sid, exc)
        server.close_session(session, "parse error", send_close=True)


def _probe_packet(session: EngineSession, ws: WebSocketConn, kind: int, data: Any) -> None:
    if kind == 2 and data == "probe":
        ws.write_payload("3probe")
        # From now on every poll is answered with a noop at once, so the client can pause.
        session.upgrading = True
        if session.polling:
            session.send_payloads(["6"])
    elif kind == 5:
        session.finish_upgrade(ws)
        ws.set_deadline(math.inf, extend=True)
    else:
        raise ProtocolError(f"unexpected packet during upgrade: type {kind}")
