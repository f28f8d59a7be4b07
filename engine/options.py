"""Engine settings: one frozen record, built once by the caller (CLI, tests, bench)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """Tunables of the Socket.IO engine. Times are seconds, sizes bytes.

    The defaults are the Engine.IO v4 reference values (pingInterval 25 s, pingTimeout 20 s,
    maxPayload 1e6) so the official clients behave as they do against Node's server.
    """

    path: str = "/socket.io/"
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    max_payload: int = 1_000_000
    upgrade_timeout: float = 10.0
    connect_timeout: float = 45.0
    # A websocket that cannot take this many bytes into its kernel buffer plus ours is a slow
    # consumer and is closed: the room never waits for it and memory never grows past this.
    outbox_limit: int = 1 << 20
    # The kernel's send buffer of a websocket (SO_SNDBUF; 0: the kernel's own autotuning, up
    # to megabytes). Small, so that what a stalled client holds is mostly the outbox above.
    send_buffer: int = 64 * 1024
    # A websocket with bytes pending that the peer has not taken for this long is closed.
    stall_timeout: float = 10.0
    # The listener: a request must arrive whole within header_timeout of its first byte (of
    # the connection, for the first one); a kept-alive connection may idle idle_timeout
    # between requests; past max_connections open connections, new ones get a 503.
    header_timeout: float = 10.0
    idle_timeout: float = 60.0
    max_connections: int = 20_000
    cors_origins: tuple[str, ...] = ()
    compression: bool = False
    compression_window_bits: int = 11
    compression_threshold: int = 256
    allow_polling: bool = True
    allow_websocket: bool = True
