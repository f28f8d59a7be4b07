"""Delivery accounting and latency percentiles: the pure arithmetic behind every figure.

The ledger is the judge of "nothing lost": each webhook is registered when it is sent with
the tenant it targets, and each ``message:new`` a client reads is checked against it. A
delivery is keyed by (client, seq): the first one counts and carries a latency, later ones
are duplicates; one that reaches a client of another tenant is misrouted; one whose seq
this ledger never sent (a late arrival from an earlier phase) is stray.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

_BODY_PREFIX = "bench "


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Return the nearest-rank ``p``-th percentile of already sorted values.

    Returns None for no values. Raises ValueError when ``p`` is outside [0, 100].
    """
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {p}")
    n = len(sorted_values)
    if n == 0:
        return None
    rank = max(1, math.ceil(p / 100 * n))
    return sorted_values[rank - 1]


def format_body(seq: int, sent_ns: int) -> str:
    """Return the webhook text body that carries ``seq`` and the send time."""
    return f"{_BODY_PREFIX}{seq} {sent_ns}"


def parse_body(content: str) -> tuple[int, int] | None:
    """Return (seq, sent_ns) from a body made by ``format_body``; None for any other text."""
    if not content.startswith(_BODY_PREFIX):
        return None
    parts = content.split(" ")
    if len(parts) != 3:
        return None
    try:
        return int(parts[1]), int(parts[2])
    except ValueError:
        return None


class DeliveryLedger:
    """Expected and observed deliveries of one measured phase.

    ``clients_per_tenant[t]`` is how many clients of tenant ``t`` are connected: each webhook
    sent to ``t`` is expected that many times. ``on_complete(seq, last_recv_ns)`` (optional)
    is called once when every client of the seq's tenant has it.
    """

    def __init__(
        self,
        clients_per_tenant: Sequence[int],
        on_complete: Callable[[int, int], None] | None = None,
    ) -> None:
        self.clients_per_tenant = list(clients_per_tenant)
        self.on_complete = on_complete
        # per seq: [tenant, deliveries so far, last recv_ns (0: none yet), clients expected];
        # one list per seq so that a delivery costs one dict lookup, not four
        self._progress: dict[int, list[int]] = {}
        self._seen: set[int] = set()
        self.latencies_ns: list[int] = []
        self.expected = 0
        self.duplicates = 0
        self.misrouted = 0
        self.stray = 0

    def sent(self, seq: int, tenant: int) -> None:
        """Register webhook ``seq`` as sent to ``tenant``; returns None.

        Raises ValueError for a seq registered twice or an unknown tenant.
        """
        if seq in self._progress:
            raise ValueError(f"seq {seq} was already sent")
        if not 0 <= tenant < len(self.clients_per_tenant):
            raise ValueError(f"unknown tenant index {tenant}")
        clients = self.clients_per_tenant[tenant]
        self._progress[seq] = [tenant, 0, 0, clients]
        self.expected += clients

    def deliver(
        self, client: int, client_tenant: int, seq: int, sent_ns: int, recv_ns: int
    ) -> None:
        """Record that ``client`` (of ``client_tenant``) read ``seq`` at ``recv_ns``; returns None.

        Runs once per delivery in the load generator: one dict lookup plus the duplicate check
        on the common path.
        """
        progress = self._progress.get(seq)
        if progress is None:
            self.stray += 1
            return
        if progress[0] != client_tenant:
            self.misrouted += 1
            return
        # client ids stay far below 2**32, so one int keys the pair without a tuple per delivery
        key = (client << 32) | seq
        seen = self._seen
        if key in seen:
            self.duplicates += 1
            return
        seen.add(key)
        self.latencies_ns.append(recv_ns - sent_ns)
        count = progress[1] + 1
        progress[1] = count
        if recv_ns > progress[2]:
            progress[2] = recv_ns
        if count == progress[3] and self.on_complete is not None:
            self.on_complete(seq, progress[2])

    @property
    def delivered(self) -> int:
        """Return the number of unique (client, seq) deliveries so far."""
        return len(self.latencies_ns)

    @property
    def sent_count(self) -> int:
        """Return how many webhooks were registered as sent."""
        return len(self._progress)

    def last_receive_ns(self, seq: int) -> int | None:
        """Return when the last client read ``seq`` (time.time_ns), None if nobody did."""
        progress = self._progress.get(seq)
        return progress[2] if progress is not None and progress[2] > 0 else None

    def summary(self) -> dict[str, Any]:
        """Return the phase's figures: counts, loss and latency percentiles in ms."""
        lat = sorted(self.latencies_ns)

        def ms(p: float) -> float | None:
            v = percentile(lat, p)
            return None if v is None else round(v / 1e6, 3)

        return {
            "webhooks": self.sent_count,
            "expected": self.expected,
            "delivered": self.delivered,
            "lost": self.expected - self.delivered,
            "duplicates": self.duplicates,
            "misrouted": self.misrouted,
            "stray": self.stray,
            "p50_ms": ms(50),
            "p95_ms": ms(95),
            "p99_ms": ms(99),
            "max_ms": ms(100),
        }
