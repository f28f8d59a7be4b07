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


async def run_websocket(
    server: SocketServer, ws: WebSocketConn, session: EngineSession | None, remote: str
) -> None:
    """Drive an upgraded socket: a new websocket session (``session`` None) or a probe.

    Returns when the websocket is gone; the session is closed if it was riding on it.
    """
    max_payload = server.options.max_payload

    def on_message(conn: WebSocketConn, message: str | bytes) -> None:
        _on_message(server, conn, message)

    if session is None:
        session, _ = server.open_session(remote)
        session.ws = ws
        ws.session = session
        ws.write_payload(server.handshake(session.sid, upgradable=False))
        reason = "transport error"
        try:
            reason = await ws.run(on_message, max_payload)
        finally:
            server.close_session(session, reason, send_close=False)
        return
    if not session.begin_upgrade(ws):
        ws.abort()
        return
    ws.session = session
    # The deadline bounds the probe only: "5" lifts it (``_probe_packet``).
    deadline = anyio.current_time() + server.options.upgrade_timeout
    reason = "transport error"
    try:
        reason = await ws.run(on_message, max_payload, deadline=deadline)
    finally:
        if session.probe is ws:  # the upgrade never completed; the session goes on polling
            session.probe = None
            session.upgrading = False
            ws.abort()
            if reason == "timeout":
                log.info("upgrade of %s timed out", session.sid)
        elif session.ws is ws:
            server.close_session(session, reason, send_close=False)


def _on_message(server: SocketServer, ws: WebSocketConn, message: str | bytes) -> None:
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
