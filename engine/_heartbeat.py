"""The one heartbeat loop of a server: pings and timeouts for every session.

A single task walks the sessions a few times per ``min(pingInterval, pingTimeout)`` instead of
one timer task per connection: 10,000 idle clients cost one wake-up every few seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from engine._server import SocketServer


def tick_interval(ping_interval: float, ping_timeout: float) -> float:
    """How often the loop wakes: a quarter of the shorter period, between 5 ms and 2 s."""
    return max(0.005, min(2.0, min(ping_interval, ping_timeout) / 4))


async def run_heartbeat(server: SocketServer) -> None:
    """Run ``server.heartbeat_tick`` forever (until cancelled)."""
    interval = tick_interval(server.options.ping_interval, server.options.ping_timeout)
    while True:
        await anyio.sleep(interval)
        server.heartbeat_tick(anyio.current_time())
