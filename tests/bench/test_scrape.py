"""Server-side figures from two /metrics scrapes: bucket arithmetic on real exposition text."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bench._scrape import Samples, quantile_bound, server_figures

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


def _samples(registry: CollectorRegistry) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_figures_count_only_what_happened_between_the_scrapes() -> None:
    r = CollectorRegistry()
    commits = Histogram("zapline_inbox_commit_seconds", "c", buckets=BUCKETS, registry=r)
    fanout = Histogram("zapline_fanout_latency_seconds", "f", buckets=BUCKETS, registry=r)
    commits.observe(0.2)  # before the phase: must not count
    before = _samples(r)
    for seconds in (0.002, 0.003, 0.030, 0.060):
        commits.observe(seconds)
    for _ in range(98):
        fanout.observe(0.004)
    fanout.observe(0.07)
    fanout.observe(0.07)
    fig = server_figures(before, _samples(r))
    assert fig["inbox_commits"] == 4
    assert fig["slow_inbox_commits"] == 2  # 30 and 60 ms
    assert fig["server_fanout_p99_le_ms"] == 100.0  # the 99th of 100 is in the 0.1 s bucket


def test_no_metrics_endpoint_gives_no_figures() -> None:
    assert server_figures(None, None) == {}


def test_quantile_bound_of_an_empty_histogram_is_none() -> None:
    assert quantile_bound({0.1: 0.0, float("inf"): 0.0}, 0.99) is None
    assert quantile_bound({0.1: 5.0, float("inf"): 10.0}, 0.5) == 0.1
