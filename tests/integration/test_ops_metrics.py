"""Issue 5: ``GET /metrics`` scraped with prometheus_client's own parser while a session runs.

The scripted session is the one the issue names: a python-socketio agent connects, a customer's
webhook comes in, the agent replies through the API (the fake Cloud API accepts it and posts
its status webhooks back), and the agent disconnects. Between scrapes the counters must move by
exactly what the session did. Values that settle after the visible event (job durations, inbox
done-marks) are polled for, never slept for.

Runs on SQLite and PostgreSQL (``zapline_inbox`` is read from storage). A second server with
``ZAPLINE_METRICS_TOKEN`` checks the bearer-token guard.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import anyio
import httpx
import orjson
import pytest
import socketio
from _desk_harness import (
    EventLog,
    SocketFactory,
    Tenant,
    ZaplineServer,
    auth,
    post_webhook,
)
from prometheus_client.parser import text_string_to_metric_families

from desk.whatsapp import text_message_webhook

pytestmark = pytest.mark.anyio

PRIORITIES = {"message", "status", "housekeeping"}
CLIENT_REASONS = {"client namespace disconnect", "client close", "transport close"}
METRICS_TOKEN = "scrape-" + "0123456789abcdef" * 2


@dataclass(frozen=True)
class Scrape:
    """One parsed exposition: every sample by name and label set."""

    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    families: frozenset[str]

    def value(self, name: str, **labels: str) -> float:
        """The sample ``name{labels}``, 0.0 when absent (a labelled counter not yet touched)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str, **labels: str) -> bool:
        """True if the sample ``name{labels}`` is exposed."""
        return (name, frozenset(labels.items())) in self.samples

    def by_label(self, name: str, label: str) -> dict[str, float]:
        """``{label value: sample}`` of every ``name`` sample carrying ``label``."""
        return {
            dict(labels)[label]: v
            for (n, labels), v in self.samples.items()
            if n == name and label in dict(labels)
        }

    def total(self, name: str) -> float:
        """The sum of ``name`` over all its label sets."""
        return sum(v for (n, _), v in self.samples.items() if n == name)


def parse(text: str) -> Scrape:
    """Parse the Prometheus text format with prometheus_client; raises ValueError if malformed."""
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    families = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(samples, frozenset(families))


async def scrape(
    http: httpx.AsyncClient, server: ZaplineServer, token: str | None = None
) -> Scrape:
    """GET /metrics (200 and the Prometheus text content type asserted) and parse it."""
    headers = auth(token) if token else {}
    response = await http.get(f"{server.api_url}/metrics", headers=headers)
    assert response.status_code == 200, response.text
    kind = response.headers["content-type"]
    assert kind.startswith("text/plain; version="), kind
    return parse(response.text)


async def eventually(
    http: httpx.AsyncClient,
    server: ZaplineServer,
    check: Callable[[Scrape], bool],
    what: str,
    *,
    within: float = 10.0,
) -> Scrape:
    """Scrape until ``check`` holds; return that scrape. AssertionError after ``within`` s."""
    last: Scrape | None = None
    with anyio.move_on_after(within):
        while True:
            last = await scrape(http, server)
            if check(last):
                return last
            await anyio.sleep(0.05)
    raise AssertionError(f"metrics never showed {what} within {within} s")


@pytest.fixture
async def fake(zapline: ZaplineServer, http: httpx.AsyncClient) -> AsyncIterator[str]:
    """The fake Cloud API's URL, its memory cleared for this test."""
    url = zapline.whatsapp_api_url
    assert (await http.post(f"{url}/_fake/reset")).status_code == 200
    yield url
    await http.post(f"{url}/_fake/reset")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZaplineServer]:
    """A second server (a SQLite file of its own) whose /metrics needs ``METRICS_TOKEN``."""
    workdir = tmp_path_factory.mktemp("guarded")
    server = ZaplineServer(
        database_url=f"sqlite:///{workdir / 'guarded.db'}",
        workdir=workdir,
        extra_env={"ZAPLINE_METRICS_TOKEN": METRICS_TOKEN},
    )
    try:
        server.start()
        yield server
        assert server.stop() == 0, server.log_tail()
    finally:
        server.stop()


async def test_the_exposition_parses_and_names_every_documented_metric(
    zapline: ZaplineServer, http: httpx.AsyncClient
) -> None:
    now = await scrape(http, zapline)
    documented = {
        "zapline_connections",
        "zapline_sockets",
        "zapline_connects",
        "zapline_connect_errors",
        "zapline_disconnects",
        "zapline_events_emitted",
        "zapline_deliveries",
        "zapline_events_received",
        "zapline_slow_consumer_disconnects",
        "zapline_outbox_drops",
        "zapline_fanout_latency_seconds",
        "zapline_inbox_commit_seconds",
        "zapline_webhook_posts",
        "zapline_inbox",
        "zapline_queue_depth",
        "zapline_jobs_running",
        "zapline_jobs_waiting_retry",
        "zapline_job_duration_seconds",
        "zapline_job_retries",
        "zapline_dead_letters",
        "zapline_cloud_api_sends",
        "zapline_draining",
        "zapline_tasks",
        "zapline_event_log_emitted",
        "zapline_event_log_filled",
        "zapline_event_log_pruned",
        "zapline_recoveries",
        "zapline_event_log_replayed",
        "zapline_stage_seconds",  # the bench's cost ledger (bench/_ledger.py)
        "zapline_stage_passes",
    }
    assert documented <= now.families, sorted(documented - now.families)
    # the server's own tasks at least (listeners, intake, workers): read on the event loop
    assert now.value("zapline_tasks") > 10
    assert set(now.by_label("zapline_queue_depth", "priority")) == PRIORITIES
    assert set(now.by_label("zapline_connections", "transport")) == {"websocket", "polling"}
    assert now.value("zapline_draining") == 0
    # Bounded cardinality: no label names a tenant, user, socket or message.
    names = {name for (_, labels) in now.samples for name, _ in labels}
    bounded = {"transport", "reason", "event", "result", "state", "priority", "le", "stage"}
    assert names <= bounded, names
    # the cost ledger's stages are a fixed few
    assert set(now.by_label("zapline_stage_seconds_total", "stage")) <= {
        "http",
        "fanout",
        "inbox_commit",
        "db_write",
    }


async def test_counters_follow_a_scripted_session(
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.AsyncClient,
    sio: SocketFactory,
    fake: str,
) -> None:
    s0 = await scrape(http, zapline)

    # connect
    client, events = await sio(zapline.socket_url, tenant.token)
    s1 = await scrape(http, zapline)
    ws = "zapline_connections"
    assert s1.value(ws, transport="websocket") == s0.value(ws, transport="websocket") + 1
    assert s1.value("zapline_sockets") == s0.value("zapline_sockets") + 1
    assert s1.value("zapline_connects_total") == s0.value("zapline_connects_total") + 1

    # a customer writes in
    phone = f"55117{uuid.uuid4().int % 10**8:08d}"
    body = text_message_webhook(phone_number_id=tenant.phone_number_id, wa_id=phone, body="oi")
    response = await post_webhook(http, zapline, body, secret=tenant.app_secret)
    assert response.status_code == 200, response.text
    (inbound,) = await events.wait_for("message:new")
    conversation_id = inbound["conversationId"]
    done = "zapline_inbox"
    # A plain message is stored in its inbox commit: the row is done, and no job ran for it.
    s2 = await eventually(
        http,
        zapline,
        lambda s: s.value(done, state="done") > s1.value(done, state="done"),
        "the webhook's inbox row done",
    )
    jobs = "zapline_job_duration_seconds_count"
    assert s2.value(jobs, priority="message") == s1.value(jobs, priority="message")
    posts = "zapline_webhook_posts_total"
    assert s2.value(posts, result="ok") == s1.value(posts, result="ok") + 1
    emitted = "zapline_events_emitted_total"
    assert s2.value(emitted, event="message:new") >= s1.value(emitted, event="message:new") + 1
    assert s2.value("zapline_deliveries_total") > s1.value("zapline_deliveries_total")
    latency = "zapline_fanout_latency_seconds_count"
    assert s2.value(latency) == s1.value(latency) + 1
    assert s2.value("zapline_fanout_latency_seconds_sum") > s1.value(
        "zapline_fanout_latency_seconds_sum"
    )
    commits = "zapline_inbox_commit_seconds_count"
    assert s2.value(commits) == s1.value(commits) + 1  # one post alone: one durable commit
    assert s2.value("zapline_inbox_commit_seconds_sum") > s1.value(
        "zapline_inbox_commit_seconds_sum"
    )

    # the agent replies; the fake accepts it and posts sent/delivered/read back
    reply = await http.post(
        f"{zapline.api_url}/api/conversations/{conversation_id}/messages",
        json={"content": "Olá, em que posso ajudar?"},
        headers=auth(tenant.token),
    )
    assert reply.status_code == 202, reply.text
    message_id = reply.json()["message"]["id"]
    await events.wait_for(
        "message:status-update", lambda d: d["messageId"] == message_id and d["status"] == "READ"
    )
    sends = "zapline_cloud_api_sends_total"
    s3 = await eventually(
        http,
        zapline,
        lambda s: s.value(done, state="done") >= s2.value(done, state="done") + 3,
        "the three status webhooks' inbox rows done",
    )
    assert s3.value(sends, result="sent") == s2.value(sends, result="sent") + 1
    assert s3.value(sends, result="failed") == s2.value(sends, result="failed")
    assert s3.value(posts, result="ok") == s2.value(posts, result="ok") + 3
    assert s3.value(emitted, event="message:status-update") >= (
        s2.value(emitted, event="message:status-update") + 3
    )
    assert s3.value("zapline_job_duration_seconds_count", priority="status") >= (
        s2.value("zapline_job_duration_seconds_count", priority="status") + 3
    )
    assert s3.value(latency) == s2.value(latency), "only inbound messages are fan-out timed"

    # malformed and forged posts are counted by result, not as ok
    bad = await post_webhook(http, zapline, b'{"object": "whatsapp_business_account", ')
    assert bad.status_code == 400, bad.text
    forged = await post_webhook(http, zapline, body, secret="not-the-app-secret")
    assert forged.status_code == 401, forged.text
    s4 = await scrape(http, zapline)
    assert s4.value(posts, result="bad_json") == s3.value(posts, result="bad_json") + 1
    assert s4.value(posts, result="bad_signature") == s3.value(posts, result="bad_signature") + 1
    assert s4.value(posts, result="ok") == s3.value(posts, result="ok")

    # disconnect
    await client.disconnect()
    s5 = await eventually(
        http,
        zapline,
        lambda s: s.value(ws, transport="websocket") == s0.value(ws, transport="websocket"),
        "the websocket connection gone",
    )
    assert s5.value("zapline_sockets") == s0.value("zapline_sockets")
    assert s5.total("zapline_disconnects_total") == s4.total("zapline_disconnects_total") + 1
    moved = {
        reason: n - s4.value("zapline_disconnects_total", reason=reason)
        for reason, n in s5.by_label("zapline_disconnects_total", "reason").items()
        if n != s4.value("zapline_disconnects_total", reason=reason)
    }
    # python-socketio queues its DISCONNECT and CLOSE packets and closes the websocket before
    # its writer runs, so the server may only see the close frame: any client-side reason.
    assert len(moved) == 1, moved
    ((reason, n),) = moved.items()
    assert n == 1
    assert reason in CLIENT_REASONS, moved
    assert s5.value("zapline_connects_total") == s1.value("zapline_connects_total")
    assert set(s5.by_label("zapline_queue_depth", "priority")) == PRIORITIES
    assert_events_seen(events)


def assert_events_seen(events: EventLog) -> None:
    """The client heard the inbound message, its reply and the reply's three statuses."""
    assert len(events.named("message:new")) == 2
    statuses = [e["status"] for e in events.named("message:status-update")]
    assert statuses == ["SENT", "DELIVERED", "READ"], statuses


async def test_a_refused_connect_counts_as_a_connect_error(
    zapline: ZaplineServer, http: httpx.AsyncClient, sio: SocketFactory
) -> None:
    before = await scrape(http, zapline)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio(zapline.socket_url, "not-a-jwt")
    after = await eventually(
        http,
        zapline,
        lambda s: (
            s.value("zapline_connect_errors_total") > before.value("zapline_connect_errors_total")
        ),
        "the refused connect",
    )
    assert after.value("zapline_connect_errors_total") == (
        before.value("zapline_connect_errors_total") + 1
    )
    assert after.value("zapline_connects_total") == before.value("zapline_connects_total")


async def test_a_metrics_token_guards_the_endpoint(
    guarded: ZaplineServer, http: httpx.AsyncClient
) -> None:
    url = f"{guarded.api_url}/metrics"
    for headers in ({}, auth("wrong-token"), {"Authorization": METRICS_TOKEN}):
        refused = await http.get(url, headers=headers)
        assert refused.status_code == 401, (headers, refused.text)
        assert refused.headers["content-type"] == "application/json"
        assert "ZAPLINE_METRICS_TOKEN" in orjson.loads(refused.content)["error"]
        assert "zapline_" not in refused.text
    now = await scrape(http, guarded, token=METRICS_TOKEN)
    assert now.value("zapline_draining") == 0
    assert METRICS_TOKEN not in guarded.log_path.read_text()
