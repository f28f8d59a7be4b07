"""The WhatsApp desk: what Zapline does with webhooks, replies and conversations.

Inbox intake (``InboxWriter``), the job handlers for inbound messages, statuses and sends
(``Desk``), crash recovery (``desk.recovery``), the accounts cache, JWT auth for agents, the
wire contract (room names and event payloads, ``desk.contract``), the socket handlers that
authenticate agents and check their joins (``attach_realtime``), and the Cloud API adapter
(``desk.whatsapp``). The desk depends on ``engine`` and ``storage`` only; the API and the
composition root depend on it.
"""

from __future__ import annotations

from desk._desk import Desk
from desk.accounts import AccountCache
from desk.auth import AuthError, Claims, issue_token, verify_token
from desk.inbox import InboxWriter, IntakeUnavailable
from desk.ports import DeskMetrics, DeskOptions, Emitter
from desk.sockets import attach_realtime

__all__ = [
    "AccountCache",
    "AuthError",
    "Claims",
    "Desk",
    "DeskMetrics",
    "DeskOptions",
    "Emitter",
    "InboxWriter",
    "IntakeUnavailable",
    "attach_realtime",
    "issue_token",
    "verify_token",
]
