"""The WhatsApp side of Zapline: webhook parsing, signatures, the Cloud API client.

Nothing here touches storage or sockets; intake and workers call these functions.
"""

from __future__ import annotations

from ._changes import Change
from ._cloud import CloudApiClient, CloudApiError, SendResult, build_message
from ._media import MediaInfo
from ._media_types import UPLOAD_MAX_BYTES, MediaRule, media_rule, sniff_mismatch
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
from ._samples import new_wamid, status_webhook, text_message_webhook
from ._signature import SIGNATURE_HEADER, sign, verify_signature

__all__ = [
    "SIGNATURE_HEADER",
    "Change",
    "CloudApiClient",
    "CloudApiError",
    "InboundMessage",
    "MediaInfo",
    "MediaRule",
    "UPLOAD_MAX_BYTES",
    "SendResult",
    "StatusUpdate",
    "WebhookBatch",
    "WebhookFormatError",
    "WrongWebhookObject",
    "build_message",
    "load_json",
    "media_rule",
    "parse_webhook",
    "phone_number_ids",
    "sign",
    "sniff_mismatch",
    "new_wamid",
    "status_webhook",
    "text_message_webhook",
    "verify_signature",
]
