"""The one heartbeat loop of a server: pings and timeouts for every session.

A single task walks the sessions a few times per ``min(pingInterval, pingTimeout)`` instead of
one timer task per connection: 10,000 idle clients cost one wake-up every few seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from engine._server import SocketServer
    from engine._session import EngineSession


def tick_interval(
    ping_interval: float, ping_timeout: float, connect_timeout: float = 45.0
) -> float:
    """How often the loop wakes: a quarter of the shortest period, between 5 ms and 2 s."""
    return max(0.005, min(2.0, min(ping_interval, ping_timeout, connect_timeout) / 4))


def heartbeat_tick(server: SocketServer, now: float) -> None:
    """Ping the sessions that are due; close those past their pong deadline or connect timeout.

    Raises nothing: a session too slow to take its ping is closed like any slow consumer.
    """
    opts = server.options
    ping = server.ping_frame
    expired: list[tuple[EngineSession, str]] = []
    # A copy: a ping that overflows an outbox closes its session (and drops it from the dict)
    # right inside send_shared.
    for session in list(server.sessions.values()):
        if session.closed:
            continue
        if session.pong_deadline:
            if now >= session.pong_deadline:
                expired.append((session, "ping timeout"))
            continue
        if now >= session.next_ping:
            session.pong_deadline = now + opts.ping_timeout
            if not session.send_shared("2", ping):
                expired.append((session, "slow consumer"))
        elif (
            not session.sockets
            and not session.connecting
            and now - session.opened_at > opts.connect_timeout
        ):
            expired.append((session, "connect timeout"))
    for session, reason in expired:
        server.close_session(session, reason, send_close=reason != "slow consumer")


async def run_heartbeat(server: SocketServer) -> None:
    """Run ``heartbeat_tick`` forever (until cancelled)."""
    opts = server.options
    interval = tick_interval(opts.ping_interval, opts.ping_timeout, opts.connect_timeout)
    while True:
        await anyio.sleep(interval)
        heartbeat_tick(server, anyio.current_time())
