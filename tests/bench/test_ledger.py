"""The cost ledger: per-webhook arithmetic on real exposition text, the adaptive saturate
climb, medians of runs, and a short run against a real Zapline whose stages all move."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bench._cli import median_run
from bench._ledger import cost_ledger, format_ledger, stage_seconds
from bench._procs import ProcessSet
from bench._scenarios import Options, fanout, next_rate
from bench._scrape import Samples
from bench._targets import Target, start_zapline


def _samples(registry: CollectorRegistry) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _server() -> tuple[CollectorRegistry, Counter, Counter]:
    r = CollectorRegistry()
    stages = Counter("zapline_stage_seconds", "s", ["stage"], registry=r)
    posts = Counter("zapline_webhook_posts", "p", ["result"], registry=r)
    return r, stages, posts


def test_ledger_divides_what_happened_between_the_scrapes_by_the_webhooks() -> None:
    r, stages, posts = _server()
    stages.labels("http").inc(5.0)  # before the phase: must not count
    posts.labels("ok").inc(7)
    before = _samples(r)
    for stage, seconds in (("http", 0.2), ("fanout", 0.1), ("inbox_commit", 0.4),
                           ("db_write", 0.6)):  # fmt: skip
        stages.labels(stage).inc(seconds)
    posts.labels("ok").inc(400)
    posts.labels("bad_json").inc(3)  # refused posts are not webhooks processed
    fig = cost_ledger(before, _samples(r), webhooks=390, cpu_s=1.0, main_cpu_s=0.6)
    assert fig["cost_webhooks"] == 400  # the server's own count wins over the poster's
    assert fig["cost_cpu_ms"] == 2.5 and fig["cost_loop_ms"] == 1.5
    assert fig["cost_threads_ms"] == 1.0
    assert fig["cost_http_ms"] == 0.5 and fig["cost_fanout_ms"] == 0.25
    assert fig["cost_rest_ms"] == 0.75  # loop - http - fanout
    assert fig["cost_inbox_commit_ms"] == 1.0 and fig["cost_db_write_ms"] == 1.5
    line = format_ledger(fig)
    assert line.startswith("CPU/webhook 2.5 ms = loop 1.5 (http 0.5, fan-out 0.25, rest 0.75)")
    assert "inbox commit 1.0, db writes 1.5 ms" in line


def test_a_target_without_metrics_gets_the_proc_figures_only() -> None:
    fig = cost_ledger(None, None, webhooks=200, cpu_s=0.3, main_cpu_s=0.2)
    assert fig == {"cost_webhooks": 200, "cost_cpu_ms": 1.5, "cost_loop_ms": 1.0,
                   "cost_threads_ms": 0.5}  # fmt: skip
    assert cost_ledger(None, None, webhooks=0, cpu_s=0.3, main_cpu_s=0.2) == {}
    assert format_ledger({}) == ""


def test_stage_seconds_reads_each_label() -> None:
    r, stages, _ = _server()
    stages.labels("db_write").inc(0.25)
    assert stage_seconds(_samples(r)) == {"db_write": 0.25}


def test_the_adaptive_climb_doubles_then_places_the_knee_within_a_step() -> None:
    def climb(knee: float) -> list[float]:
        done: list[tuple[float, bool]] = []
        while (rate := next_rate(done, start=100, step=100, top=6400)) is not None:
            done.append((rate, rate <= knee))
        return [r for r, _ in done]

    assert climb(650) == [100, 200, 400, 800, 500, 600, 700]
    assert climb(5000) == [100, 200, 400, 800, 1600, 3200, 6400, *range(3300, 5200, 100)]
    assert climb(50) == [100]  # the first rate misses: nothing to place
    assert climb(10_000) == [100, 200, 400, 800, 1600, 3200, 6400]  # top reached, all held


def test_median_run_takes_the_middle_run_and_the_median_of_each_figure() -> None:
    runs = [
        {"scenario": "saturate", "target": "node", "max_rate_held": 2400, "cost_cpu_ms": 0.3},
        {"scenario": "saturate", "target": "node", "max_rate_held": 2000, "cost_cpu_ms": 0.5},
        {"scenario": "saturate", "target": "node", "max_rate_held": 2200, "cost_cpu_ms": 0.2},
    ]
    m = median_run(runs)
    assert m["max_rate_held"] == 2200 and m["cost_cpu_ms"] == 0.3
    assert m["median_of"] == 3 and m["runs_primary"] == [2400, 2000, 2200]
    assert median_run(runs[:1]) is runs[0]
    two = median_run([{**runs[0], "clients": 1000}, {**runs[1], "clients": 1000}])
    assert two["clients"] == 1000 and isinstance(two["clients"], int)


@pytest.fixture(scope="module", params=["socket", "api"])
def zapline(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """A server whose webhooks the bench posts to its Socket.IO port, or to its API port."""
    with ProcessSet() as procs:
        workdir = Path(tmp_path_factory.mktemp("zapline"))
        target = start_zapline(procs, workdir, 2, webhook_port=request.param)
        assert target.post_url == (
            target.socket_url if request.param == "socket" else target.api_url
        )
        yield target


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_every_stage_of_a_real_server_moves(zapline: Target) -> None:
    fig = await fanout(zapline, Options(clients=10, tenants=2, rate=40, duration=1, quiet_s=1))
    assert fig["lost"] == 0 and fig["cost_webhooks"] == 40
    for stage in ("http", "fanout", "inbox_commit"):
        assert fig[f"cost_{stage}_ms"] > 0, stage
    # Plain messages are stored in their inbox commit: none took the job path's db write.
    assert fig.get("cost_db_write_ms", 0) == 0
    assert fig["cost_cpu_ms"] >= fig["cost_loop_ms"] > 0
    parts = fig["cost_http_ms"] + fig["cost_fanout_ms"] + fig["cost_rest_ms"]
    assert parts == pytest.approx(fig["cost_loop_ms"], abs=0.01)
