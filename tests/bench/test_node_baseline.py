"""The Node.js baseline (bench/baselines/node) started as the bench starts it: it serves the
contract (a webhook reaches the tenant's clients, as the README's wire contract says) and the
harness counts every delivery from it.

Skipped with the reason when node or the baseline's socket.io is not installed; failed
instead under CI=true, where `make bench` must be able to run it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
import socketio

from bench._client import ClientPool
from bench._procs import ProcessSet
from bench._scenarios import Options, fanout
from bench._targets import Target, node_missing, start_node
from bench._webhook import webhook_body

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from _contract import event_violations  # noqa: E402

pytestmark = [pytest.mark.anyio, pytest.mark.node]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def node_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    missing = node_missing()
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    with ProcessSet() as procs:
        yield start_node(procs, Path(tmp_path_factory.mktemp("node")), 2)


async def test_a_webhook_reaches_the_tenant_with_the_contract_events(node_target: Target) -> None:
    seen: list[tuple[str, Any]] = []
    got_update = anyio.Event()
    client = socketio.AsyncClient()
    for name in ("conversation:new", "message:new", "conversation:updated"):

        def record(data: Any, name: str = name) -> None:
            seen.append((name, data))
            if name == "conversation:updated":
                got_update.set()

        client.on(name, record)
    # an official-protocol client nobody here wrote, over the websocket transport
    await client.connect(
        node_target.socket_url, auth={"token": node_target.token(0, 1)}, transports=["websocket"]
    )
    try:
        body = webhook_body(
            phone_number_id=node_target.phone_number_ids[0], wa_id="5511900000001",
            name="Ana", wamid="wamid.node.1", text="hello from the bench",
            unix_s=int(time.time()),
        )  # fmt: skip
        async with httpx.AsyncClient(base_url=node_target.api_url) as http:
            r = await http.post("/webhooks/whatsapp", content=body)
            assert r.status_code == 200 and r.json() == {"status": "ok"}
            # another tenant's webhook must not reach this client
            other = body.replace(
                node_target.phone_number_ids[0].encode(), node_target.phone_number_ids[1].encode()
            )
            assert (await http.post("/webhooks/whatsapp", content=other)).status_code == 200
        with anyio.fail_after(5):
            await got_update.wait()
        await anyio.sleep(0.3)  # a stray event of the other tenant would arrive by now
    finally:
        await client.disconnect()
    assert [name for name, _ in seen] == ["conversation:new", "message:new", "conversation:updated"]
    for name, data in seen:
        assert event_violations(name, data) == [], name
    message = seen[1][1]["message"]
    assert message["content"] == "hello from the bench" and message["type"] == "TEXT"
    assert seen[0][1]["conversation"]["tenantId"] == node_target.tenant_ids[0]


async def test_bad_token_is_refused(node_target: Target) -> None:
    forged = jwt.encode(
        {"sub": "u", "tenantId": node_target.tenant_ids[0]},
        "a-wrong-secret-that-is-long-enough-for-hs256",
        algorithm="HS256",
    )
    pool = ClientPool(node_target.socket_url, [(0, forged), (0, node_target.token(0, 1))])
    report = await pool.connect_all(limit_s=10)
    await pool.close_all()
    assert report.connected == 1 and report.failures == 1
    assert any("Authentication error" in e for e in report.errors)


async def test_fanout_counts_every_delivery(node_target: Target) -> None:
    fig = await fanout(node_target, Options(clients=20, tenants=2, rate=20, duration=1, quiet_s=1))
    assert fig["connect_failures"] == 0
    assert fig["expected"] == 20 * 10 and fig["delivered"] == fig["expected"]
    assert fig["lost"] == fig["duplicates"] == fig["misrouted"] == 0
    assert fig["server_cpu_pct"] is not None and fig["post_statuses"] == {"200": 20}
