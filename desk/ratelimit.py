"""Rate limits: token buckets for what agents send, generous for a person, tight for a script.

A bucket holds up to ``burst`` tokens and refills at ``rate`` per second; each event takes one.
Client events are checked against two buckets, the socket's and the agent's (all their tabs
together), so neither one tab nor many tabs can flood. An event over the limit is dropped and
its sender told how long to wait; a socket that keeps flooding (``strikes`` dropped events
within ``strike_window`` seconds) is to be disconnected. The REST API takes one bucket per
tenant. Webhooks are never limited: Meta retries what is refused, which would only pile up.

Buckets of idle keys are forgotten (``prune``), so memory follows the active agents.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Limit", "RateLimiter", "TokenBucket", "parse_limit"]


@dataclass(frozen=True, slots=True)
class Limit:
    """``rate`` tokens per second, at most ``burst`` at once."""

    rate: float
    burst: float


def parse_limit(text: str) -> Limit:
    """Return the Limit of ``"RATE/BURST"`` (e.g. ``"20/40"``); raise ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*", text)
    if match is None or float(match.group(1)) <= 0 or float(match.group(2)) < 1:
        raise ValueError(f"expected RATE/BURST with RATE > 0 and BURST >= 1, got {text!r}")
    return Limit(float(match.group(1)), float(match.group(2)))


@dataclass(slots=True)
class TokenBucket:
    """One bucket; ``take(now)`` returns 0.0 when a token was taken, else the seconds to wait."""

    limit: Limit
    tokens: float
    at: float

    def take(self, now: float) -> float:
        """Take one token at time ``now``; return 0.0, or how long until one is available."""
        self.tokens = min(self.limit.burst, self.tokens + (now - self.at) * self.limit.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.limit.rate


@dataclass(slots=True)
class _Strikes:
    count: int = 0
    since: float = 0.0


@dataclass
class RateLimiter:
    """Buckets by key, for client events (socket + agent) and for the REST API (tenant)."""

    per_socket: Limit = field(default_factory=lambda: Limit(20, 40))
    per_agent: Limit = field(default_factory=lambda: Limit(40, 80))
    per_tenant_api: Limit = field(default_factory=lambda: Limit(100, 200))
    strikes: int = 50
    strike_window: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[tuple[str, str], TokenBucket] = field(default_factory=dict)
    _strikes: dict[str, _Strikes] = field(default_factory=dict)
    dropped: int = 0
    disconnected: int = 0
    api_refused: int = 0

    def _bucket(self, kind: str, key: str, limit: Limit, now: float) -> TokenBucket:
        bucket = self._buckets.get((kind, key))
        if bucket is None:
            bucket = self._buckets[(kind, key)] = TokenBucket(limit, limit.burst, now)
        return bucket

    def client_event(self, socket_id: str, user_id: str) -> tuple[float, bool]:
        """Check one client event; return (seconds to wait, disconnect?).

        (0.0, False) lets the event through. A positive wait drops it; ``disconnect?`` is
        True once the socket has struck ``strikes`` times within ``strike_window`` seconds.
        """
        now = self.clock()
        # The agent's bucket is asked only when the socket's allows: a flooding tab must
        # not spend the tokens of the agent's other tabs.
        wait = self._bucket("socket", socket_id, self.per_socket, now).take(now)
        if not wait:
            wait = self._bucket("agent", user_id, self.per_agent, now).take(now)
        if wait == 0.0:
            return 0.0, False
        self.dropped += 1
        strikes = self._strikes.setdefault(socket_id, _Strikes(0, now))
        if now - strikes.since > self.strike_window:
            strikes.count, strikes.since = 0, now
        strikes.count += 1
        flood = strikes.count >= self.strikes
        if flood:
            self.disconnected += 1
            self.forget_socket(socket_id)
        return wait, flood

    def api_request(self, tenant_id: str) -> float:
        """Check one REST request of a tenant; return 0.0, or the seconds to wait (a 429)."""
        now = self.clock()
        wait = self._bucket("tenant", tenant_id, self.per_tenant_api, now).take(now)
        if wait:
            self.api_refused += 1
        return wait

    def forget_socket(self, socket_id: str) -> None:
        """Drop a socket's bucket and strikes (it disconnected)."""
        self._buckets.pop(("socket", socket_id), None)
        self._strikes.pop(socket_id, None)

    def prune(self, idle: float = 300.0) -> int:
        """Forget buckets untouched for ``idle`` seconds (they would be full again); count them."""
        now = self.clock()
        stale = [key for key, bucket in self._buckets.items() if now - bucket.at > idle]
        for key in stale:
            del self._buckets[key]
        return len(stale)
