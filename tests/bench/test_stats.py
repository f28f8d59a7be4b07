"""Percentiles and the delivery ledger: loss, duplicates, misrouting and stray accounting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench._stats import DeliveryLedger, format_body, parse_body, percentile


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    assert percentile([7], 99) == 7
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 101)


@given(st.lists(st.integers(), min_size=1), st.floats(min_value=0, max_value=100))
def test_percentile_is_a_member_and_monotone(values: list[int], p: float) -> None:
    s = sorted(values)
    v = percentile(s, p)
    assert v in s
    assert v is not None and v <= (percentile(s, min(100.0, p + 1)) or v)


@given(st.integers(min_value=0, max_value=2**40), st.integers(min_value=0, max_value=2**63))
def test_body_roundtrip(seq: int, ns: int) -> None:
    assert parse_body(format_body(seq, ns)) == (seq, ns)


@pytest.mark.parametrize("text", ["hello", "bench 1", "bench x 2", "bench 1 2 3", ""])
def test_parse_body_rejects_other_text(text: str) -> None:
    assert parse_body(text) is None


def test_ledger_counts_loss_duplicates_misrouted_and_stray() -> None:
    ledger = DeliveryLedger([2, 1])  # tenant 0 has clients 0 and 1, tenant 1 has client 2
    ledger.sent(10, 0)
    ledger.sent(11, 1)
    assert ledger.expected == 3
    ledger.deliver(0, 0, 10, sent_ns=1_000_000, recv_ns=3_000_000)
    ledger.deliver(0, 0, 10, sent_ns=1_000_000, recv_ns=4_000_000)  # duplicate
    ledger.deliver(1, 0, 11, sent_ns=0, recv_ns=1)  # tenant 1's message at a tenant 0 client
    ledger.deliver(2, 1, 99, sent_ns=0, recv_ns=1)  # never sent in this phase
    ledger.deliver(2, 1, 11, sent_ns=0, recv_ns=5_000_000)
    s = ledger.summary()
    assert (s["expected"], s["delivered"], s["lost"]) == (3, 2, 1)
    assert (s["duplicates"], s["misrouted"], s["stray"]) == (1, 1, 1)
    assert s["p50_ms"] == 2.0 and s["max_ms"] == 5.0


def test_ledger_reports_completion_once_with_last_receive() -> None:
    done: list[tuple[int, int]] = []
    ledger = DeliveryLedger([3], on_complete=lambda seq, last: done.append((seq, last)))
    ledger.sent(1, 0)
    for client, recv in [(0, 30), (2, 50), (2, 60), (1, 40)]:
        ledger.deliver(client, 0, 1, sent_ns=0, recv_ns=recv)
    assert done == [(1, 50)]
    assert ledger.last_receive_ns(1) == 50 and ledger.duplicates == 1


def test_ledger_rejects_resent_seq_and_unknown_tenant() -> None:
    ledger = DeliveryLedger([1])
    ledger.sent(1, 0)
    with pytest.raises(ValueError):
        ledger.sent(1, 0)
    with pytest.raises(ValueError):
        ledger.sent(2, 1)


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 9)), max_size=200))
def test_ledger_unique_plus_duplicates_is_everything(pairs: list[tuple[int, int]]) -> None:
    ledger = DeliveryLedger([5])
    for seq in range(10):
        ledger.sent(seq, 0)
    for client, seq in pairs:
        ledger.deliver(client, 0, seq, 0, 1)
    assert ledger.delivered == len(set(pairs))
    assert ledger.delivered + ledger.duplicates == len(pairs)
    assert ledger.summary()["lost"] == 50 - len(set(pairs))


def test_gate_names_every_broken_promise() -> None:
    from bench._scenarios import gate_failures

    good = {"lost": 0, "duplicates": 0, "misrouted": 0, "post_failed": 0, "p99_ms": 99.9}
    assert gate_failures(good) == []
    bad = {**good, "lost": 3, "duplicates": 1, "p99_ms": 100.0, "connect_failures": 2}
    assert gate_failures(bad) == [
        "lost 3",
        "duplicates 1",
        "connect_failures 2",
        "p99 100.0 ms (limit < 100 ms)",
    ]
    assert gate_failures({**good, "p99_ms": None}) != []
