"""Folding a raw py-spy profile into stages: leaf-first rules, idle workers left out."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.profile_stages import fold, main

RAW = """\
thread (1): MainThread;run (uvloop/__init__.py:82);WebhookPost.__call__ (api/webhook_post.py:120);HTTPStream.app_send (hypercorn/protocol/http_stream.py:180) 30
thread (1): MainThread;run (uvloop/__init__.py:82);WebhookPost.__call__ (api/webhook_post.py:115);uuid4 (uuid.py:723) 10
thread (1): MainThread;run (uvloop/__init__.py:82);Desk.handle_inbound (desk/_desk.py:335);SocketServer.emit_many (engine/_server.py:420);dumps (json/__init__.py:1) 20
thread (1): MainThread;run (uvloop/__init__.py:82);SQLiteStorage._call (storage/sqlite.py:80);run_sync (anyio/to_thread.py:56);Condition.notify (threading.py:360) 15
thread (1): MainThread;Runner.run (asyncio/runners.py:118) 25
thread (2): AnyIO worker thread;WorkerThread.run (anyio/_backends/_asyncio.py:900);Queue.get (queue.py:171);Condition.wait (threading.py:320) 99
thread (2): AnyIO worker thread;WorkerThread.run (anyio/_backends/_asyncio.py:900);guarded (storage/_sqlite_driver.py:60);StorableConnection.execute (storage/_sqlite_driver.py:120) 40
thread (2): AnyIO worker thread;WorkerThread.run (anyio/_backends/_asyncio.py:900);inbound (storage/_transactions.py:50);uuid4 (uuid.py:723) 10
"""


def test_each_sample_goes_to_the_stage_of_its_leaf_most_known_frame() -> None:
    loop, worker = fold(RAW.splitlines())
    assert loop == {
        "http: Hypercorn and h11": 30,
        "http: webhook handler": 10,  # uuid4 names no stage: its caller does
        "fan-out (encode, rooms, socket writes)": 20,
        "thread hand-off (run_sync, queue, notify)": 15,
        "event loop (uvloop C code, scheduling)": 25,
    }
    assert worker == {
        "idle": 99,
        "sqlite: SQL and commit (C)": 40,
        "sqlite: Python around the SQL": 10,
    }


def test_the_tables_turn_shares_into_ms_per_webhook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prof = tmp_path / "prof.txt"
    prof.write_text(RAW)
    assert main([str(prof), "--loop-ms", "1.0", "--threads-ms", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "| http: Hypercorn and h11 | 30 | 30.0 % | 0.300 |" in out
    assert "| sqlite: SQL and commit (C) | 40 | 80.0 % | 0.400 |" in out
    assert "idle" not in out
