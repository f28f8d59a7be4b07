"""Zapline's load harness: many raw Socket.IO clients in one process, paced webhooks, and
end-to-end delivery latency (webhook POST to ``message:new`` read) with loss accounting.

Run it as ``python -m bench <scenario>``; the public names below are its building blocks.
"""

from __future__ import annotations

from bench._client import BenchClient, ClientPool, ConnectReport, connect_packet, event_content
from bench._procs import ProcessSet, sample_tree
from bench._report import append_result, load_results, markdown_table, ratio_table
from bench._scenarios import SCENARIOS, Options
from bench._stats import DeliveryLedger, format_body, parse_body, percentile
from bench._targets import Target, start_baseline, start_zapline
from bench._webhook import HttpPoster, WebhookPlan, send_paced, webhook_body
from bench._ws import FrameParser, Message, WebSocketError, encode_frame

__all__ = [
    "SCENARIOS",
    "BenchClient",
    "ClientPool",
    "ConnectReport",
    "DeliveryLedger",
    "FrameParser",
    "HttpPoster",
    "Message",
    "Options",
    "ProcessSet",
    "Target",
    "WebSocketError",
    "WebhookPlan",
    "append_result",
    "connect_packet",
    "encode_frame",
    "event_content",
    "format_body",
    "load_results",
    "markdown_table",
    "parse_body",
    "percentile",
    "ratio_table",
    "sample_tree",
    "send_paced",
    "start_baseline",
    "start_zapline",
    "webhook_body",
]
