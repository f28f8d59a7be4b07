from __future__ import annotations

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
