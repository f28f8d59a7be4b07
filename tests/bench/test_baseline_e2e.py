"""The harness end to end against the python-socketio baseline, started as a subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from bench._client import ClientPool
from bench._procs import ProcessSet
from bench._scenarios import Options, broadcast, fanout
from bench._targets import Target, start_baseline

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with ProcessSet() as procs:
        yield start_baseline(procs, Path(tmp_path_factory.mktemp("baseline")), 2)


async def test_fanout_counts_every_delivery(baseline: Target) -> None:
    fig = await fanout(baseline, Options(clients=20, tenants=2, rate=20, duration=1, quiet_s=1))
    assert fig["connect_failures"] == 0
    assert fig["expected"] == 20 * 10 and fig["delivered"] == fig["expected"]
    assert fig["lost"] == fig["duplicates"] == fig["misrouted"] == 0
    assert fig["p99_ms"] is not None and fig["p99_ms"] > 0
    assert fig["server_rss_mb"] > 0 and fig["post_statuses"] == {"200": 20}


async def test_broadcast_reports_all_received(baseline: Target) -> None:
    fig = await broadcast(baseline, Options(clients=10, messages=3))
    assert fig["incomplete"] == 0 and fig["delivered"] == 30
    assert fig["all_received_p99_ms"] >= fig["all_received_p50_ms"] > 0


async def test_bad_token_is_a_counted_connect_failure(baseline: Target) -> None:
    forged = jwt.encode(
        {"sub": "u", "tenantId": baseline.tenant_ids[0]},
        "a-wrong-secret-that-is-long-enough-for-hs256",
        algorithm="HS256",
    )
    pool = ClientPool(baseline.socket_url, [(0, forged), (0, baseline.token(0, 1))])
    report = await pool.connect_all(limit_s=10)
    await pool.close_all()
    assert report.connected == 1 and report.failures == 1
    assert any("ConnectionRefusedError" in e for e in report.errors)
