"""What a log line is about: the request, tenant and socket being served, as context variables.

Set by the API per request and by the socket handlers; ``zapline.logs`` copies them onto every
log record. They live here, below both, so that neither the API nor the desk imports the
composition root.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["request_id", "socket_id", "tenant_id"]

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
tenant_id: ContextVar[str | None] = ContextVar("tenant_id", default=None)
socket_id: ContextVar[str | None] = ContextVar("socket_id", default=None)
