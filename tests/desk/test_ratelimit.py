"""Token buckets and the limiter's rules, with a hand-moved clock."""

from __future__ import annotations

import pytest

from desk.ratelimit import Limit, RateLimiter, TokenBucket, parse_limit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_parse_limit() -> None:
    assert parse_limit("20/40") == Limit(20, 40)
    assert parse_limit(" 0.5 / 2 ") == Limit(0.5, 2)
    for bad in ("", "20", "0/5", "5/0", "a/b", "-1/5", "5/5/5"):
        with pytest.raises(ValueError):
            parse_limit(bad)


def test_a_bucket_spends_its_burst_then_refills_at_its_rate() -> None:
    bucket = TokenBucket(Limit(rate=2, burst=3), tokens=3, at=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0  # one token came back in half a second
    assert bucket.take(10.0) == 0.0 and bucket.tokens == pytest.approx(2.0)  # capped at burst


def test_client_events_take_from_the_socket_and_the_agent() -> None:
    clock = Clock()
    limiter = RateLimiter(per_socket=Limit(1, 2), per_agent=Limit(1, 3), clock=clock)
    assert limiter.client_event("s1", "u") == (0.0, False)
    assert limiter.client_event("s1", "u") == (0.0, False)
    wait, flood = limiter.client_event("s1", "u")  # the socket's burst is spent
    assert wait > 0 and not flood
    assert limiter.client_event("s2", "u") == (0.0, False)  # another tab: the agent has one left
    assert limiter.client_event("s3", "u")[0] > 0  # now the agent's burst is spent too
    assert limiter.dropped == 2


def test_a_flooding_socket_is_to_be_disconnected() -> None:
    clock = Clock()
    limiter = RateLimiter(per_socket=Limit(1, 1), strikes=5, strike_window=10, clock=clock)
    limiter.client_event("s1", "u")
    results = [limiter.client_event("s1", "u") for _ in range(5)]
    assert [flood for _, flood in results] == [False, False, False, False, True]
    assert limiter.disconnected == 1
    # Strikes older than the window are forgotten: a slow repeat offender is only throttled.
    slow = RateLimiter(per_socket=Limit(1, 1), strikes=3, strike_window=1, clock=clock)
    for _ in range(6):
        slow.client_event("s2", "u")
        slow.client_event("s2", "u")
        clock.now += 1.5
    assert slow.disconnected == 0


def test_the_api_limit_is_per_tenant_and_idle_buckets_are_pruned() -> None:
    clock = Clock()
    limiter = RateLimiter(per_tenant_api=Limit(1, 2), clock=clock)
    assert [limiter.api_request("t1") for _ in range(2)] == [0.0, 0.0]
    assert limiter.api_request("t1") == pytest.approx(1.0)
    assert limiter.api_request("t2") == 0.0
    assert limiter.api_refused == 1
    clock.now += 301
    assert limiter.prune(idle=300) == 2
