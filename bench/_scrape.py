"""Reading the server's own /metrics around a phase, to tell where the time went.

End-to-end latency cannot say whether a slow p99 came from the server's code, its disk or the
load generator. Zapline's histograms can: ``zapline_inbox_commit_seconds`` (one durable
group commit, fsync included) and ``zapline_fanout_latency_seconds`` (webhook receipt to the
last socket write). A phase scrapes them before and after and reports the difference. A
target without /metrics (the baseline) simply gets no such figures.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

SLOW_COMMIT_S = 0.025  # a durable commit slower than this is a disk stall on this machine


def scrape(api_url: str, timeout: float = 5.0) -> Samples | None:
    """Return every sample of ``api_url``/metrics, None when there is no such endpoint."""
    try:
        with urllib.request.urlopen(f"{api_url}/metrics", timeout=timeout) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError, ValueError):
        return None
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _buckets(samples: Samples, name: str) -> dict[float, float]:
    return {
        float(dict(labels)["le"]): value
        for (n, labels), value in samples.items()
        if n == f"{name}_bucket"
    }


def _delta(before: Samples, after: Samples, name: str) -> dict[float, float]:
    b0, b1 = _buckets(before, name), _buckets(after, name)
    return {le: b1[le] - b0.get(le, 0.0) for le in sorted(b1)}


def quantile_bound(buckets: dict[float, float], q: float) -> float | None:
    """Return the upper bound of the cumulative bucket holding quantile ``q`` (None if empty)."""
    total = buckets.get(float("inf"), 0.0)
    if total <= 0:
        return None
    for le, count in sorted(buckets.items()):
        if count >= q * total:
            return le
    return float("inf")


def server_figures(before: Samples | None, after: Samples | None) -> dict[str, Any]:
    """Return the server-side figures of a phase from two scrapes ({} without /metrics)."""
    if before is None or after is None:
        return {}
    fig: dict[str, Any] = {}
    commits = _delta(before, after, "zapline_inbox_commit_seconds")
    total = commits.get(float("inf"), 0.0)
    if total:
        fast = max((n for le, n in commits.items() if le <= SLOW_COMMIT_S), default=0.0)
        fig["inbox_commits"] = int(total)
        fig["slow_inbox_commits"] = int(total - fast)
    fanout = _delta(before, after, "zapline_fanout_latency_seconds")
    p99 = quantile_bound(fanout, 0.99)
    if p99 is not None:
        fig["server_fanout_p99_le_ms"] = p99 * 1000 if p99 != float("inf") else None
    return fig
