"""Socket.IO packets the bench clients read and write, and the webhook bodies they send."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench._client import connect_packet, delivery_of, event_content, split_socket_url
from bench._report import markdown_table, ratio_table
from bench._stats import format_body, parse_body
from bench._webhook import WebhookPlan


def _event(name: str, payload: object) -> bytes:
    return b"42" + json.dumps([name, payload], separators=(",", ":")).encode()


@given(st.text())
def test_event_content_roundtrip(text: str) -> None:
    packet = _event("message:new", {"conversationId": "c", "message": {"content": text}})
    assert event_content(packet) == text


def test_event_content_ignores_other_events_and_odd_payloads() -> None:
    assert event_content(_event("conversation:updated", {"message": {"content": "x"}})) is None
    assert event_content(_event("message:new", {"message": {}})) is None
    assert event_content(b'42["message:new",{broken') is None
    assert event_content(_event("message:new", {"message": {"content": {"text": "t"}}})) == "t"


@given(st.integers(0, 10**9), st.integers(0, 2**63 - 1), st.booleans())
def test_delivery_of_reads_what_format_body_wrote(seq: int, sent_ns: int, spaced: bool) -> None:
    # The compact form takes the byte-search path; json.dumps' spaced form the full parse.
    message = {"id": "m", "contact": {"name": "Bench 1-2"}, "content": format_body(seq, sent_ns)}
    payload = ["message:new", {"conversationId": "c", "message": message}]
    separators = (", ", ": ") if spaced else (",", ":")
    packet = b"42" + json.dumps(payload, separators=separators).encode()
    assert delivery_of(packet) == (seq, sent_ns)


def test_delivery_of_refuses_other_texts() -> None:
    assert delivery_of(_event("message:new", {"message": {"content": "hello"}})) is None
    assert delivery_of(_event("message:new", {"message": {"content": "bench 1 x"}})) is None
    assert delivery_of(_event("message:new", {"message": {"content": "bench 1"}})) is None


def test_connect_packet() -> None:
    assert connect_packet("abc") == b'40{"token":"abc"}'


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:3334", ("127.0.0.1", 3334, "/socket.io/?EIO=4&transport=websocket")),
        ("http://h:1/socket.io/", ("h", 1, "/socket.io/?EIO=4&transport=websocket")),
        ("ws://h/x", ("h", 80, "/x/socket.io/?EIO=4&transport=websocket")),
    ],
)
def test_split_socket_url(url: str, expected: tuple[str, int, str]) -> None:
    assert split_socket_url(url) == expected


def test_webhook_plan_round_robins_tenants_and_carries_seq() -> None:
    plan = WebhookPlan(["p0", "p1", "p2"], contacts=2, run_id="r")
    seen = []
    for i in range(6):
        tenant, body = plan.body(i, 100 + i, 1_700_000_000_123_456_789)
        value = json.loads(body)["entry"][0]["changes"][0]["value"]
        msg = value["messages"][0]
        assert value["metadata"]["phone_number_id"] == f"p{tenant}"
        assert msg["id"] == f"wamid.bench.r.{100 + i}" and msg["timestamp"] == "1700000000"
        assert parse_body(msg["text"]["body"]) == (100 + i, 1_700_000_000_123_456_789)
        seen.append((tenant, msg["from"]))
    assert [t for t, _ in seen] == [0, 1, 2, 0, 1, 2]
    assert seen[0][1] != seen[3][1]  # the second round goes to another contact


def test_tables_show_figures_and_ratios() -> None:
    md = markdown_table([{"scenario": "fanout", "target": "zapline", "p99_ms": 12.5}])
    assert "| scenario | target | p99 ms |" in md and "| fanout | zapline | 12.5 |" in md
    ratios = ratio_table({"p99_ms": 10.0, "rss_kb_per_conn": 2}, {"p99_ms": 40.0})
    assert "| p99_ms | 10 | 40 | 0.25 |" in ratios and "rss_kb_per_conn" not in ratios
