from __future__ import annotations

import json
import logging

import orjson

from zapline import logs


def test_json_lines_carry_context() -> None:
    formatter = logs.JsonFormatter()
    record = logging.LogRecord(
        "zapline.api", logging.WARNING, __file__, 1, "hello %s", ("there",), None
    )
    token = logs.request_id.set("req-1")
    try:
        logs.ContextFilter().filter(record)
    finally:
        logs.request_id.reset(token)
    line = formatter.format(record)
    assert "\n" not in line
    data = orjson.loads(line)
    assert data["msg"] == "hello there"
    assert data["level"] == "warning" and data["logger"] == "zapline.api"
    assert data["request_id"] == "req-1"
    assert "tenant" not in data


def test_a_lone_surrogate_from_outside_still_logs_one_json_line() -> None:
    # A webhook's message id "\ud800m": orjson refuses the text, the stdlib escapes it.
    record = logging.LogRecord(
        "zapline.desk", logging.INFO, __file__, 1, "skipped: %s", ("message \ud800m",), None
    )
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line and "\\ud800" in line
    assert json.loads(line)["msg"] == "skipped: message \ud800m"
