"""The WhatsApp side of Zapline: webhook parsing, signatures, the Cloud API client, a fake.

Nothing here touches storage or sockets; intake and workers call these functions.
"""

from __future__ import annotations

from ._cloud import CloudApiClient, CloudApiError, SendResult, build_message
from ._fake import create_fake_app, serve_fake
from ._payload import (
    InboundMessage,
    StatusUpdate,
    WebhookBatch,
    WebhookFormatError,
    WrongWebhookObject,
    load_json,
    parse_webhook,
    phone_number_ids,
)
from ._samples import status_webhook, text_message_webhook
from ._signature import SIGNATURE_HEADER, sign, verify_signature

__all__ = [
    "SIGNATURE_HEADER",
    "CloudApiClient",
    "CloudApiError",
    "InboundMessage",
    "SendResult",
    "StatusUpdate",
    "WebhookBatch",
    "WebhookFormatError",
    "WrongWebhookObject",
    "build_message",
    "create_fake_app",
    "load_json",
    "parse_webhook",
    "phone_number_ids",
    "serve_fake",
    "sign",
    "status_webhook",
    "text_message_webhook",
    "verify_signature",
]
