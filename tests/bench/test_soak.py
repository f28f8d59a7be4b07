"""The soak's own accounting: which webhooks were acknowledged, what storage holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bench._webhook import WebhookPlan
from bench.soak import Ledger, _stored


def _body(plan: WebhookPlan, seq: int) -> bytes:
    return plan.body(seq - 1, seq, 1_700_000_000_000_000_000)[1]


def test_a_200_is_final_and_503s_are_counted_apart() -> None:
    plan = WebhookPlan(["pn"], run_id="abc123")
    ledger = Ledger()
    ledger.on_answer(_body(plan, 1), 503)
    ledger.on_answer(_body(plan, 1), 200)  # the retry after the outage
    ledger.on_answer(_body(plan, 2), 200)
    ledger.on_answer(_body(plan, 2), None)  # a later failure cannot un-acknowledge it
    ledger.on_answer(_body(plan, 3), 503)
    ledger.on_answer(_body(plan, 4), None)
    ledger.on_answer(b"{}", 200)  # not one of ours
    assert ledger.acked() == {1, 2}
    assert ledger.refused_in_outage == {1, 3}
    assert ledger.answers == {1: 200, 2: 200, 3: 503, 4: None}


def test_stored_counts_each_seq_of_this_run_only(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE messages (whatsapp_message_id TEXT)")
        conn.executemany(
            "INSERT INTO messages VALUES (?)",
            [("wamid.bench.abc123.1",), ("wamid.bench.abc123.2",), ("wamid.bench.abc123.2",),
             ("wamid.bench.other.3",), (None,)],
        )  # fmt: skip
    assert _stored(db, "abc123") == {1: 1, 2: 2}
