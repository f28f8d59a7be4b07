"""Logging set-up: one JSON object per line (or plain text in dev), secrets never logged."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import orjson

from desk.logcontext import request_id, socket_id, tenant_id

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

# Set by the API per request (and by socket handlers); copied onto every log record.
__all__ = [
    "ContextFilter",
    "JsonFormatter",
    "request_id",
    "setup_logging",
    "socket_id",
    "tenant_id",
]


class ContextFilter(logging.Filter):
    """Adds ``request_id``, ``tenant`` and ``socket`` to records when they are known."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in (("request_id", request_id), ("tenant", tenant_id), ("socket", socket_id)):
            value = var.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line with time, level, logger, message and extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(out, default=str).decode()
        except TypeError:
            # Text from outside (a webhook's ids, a client's event) can hold what UTF-8
            # cannot (a lone surrogate); the stdlib writes it as a \\u escape, so the line
            # is still one JSON object instead of a logging traceback.
            return json.dumps(out, default=str)


def setup_logging(level: str = "info", fmt: str = "json") -> None:
    """Configure the root logger for the process (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Hypercorn's per-request noise stays out unless debugging.
    logging.getLogger("hypercorn.access").setLevel(logging.WARNING)
