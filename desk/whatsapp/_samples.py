"""Webhook bodies shaped like Meta's, for tests, the fake Cloud API, the bench and the README."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

__all__ = ["new_wamid", "status_webhook", "text_message_webhook", "webhook_body"]


def new_wamid() -> str:
    """Return a fresh, unique message id in the ``wamid.`` form WhatsApp uses."""
    return f"wamid.{uuid.uuid4().hex.upper()}"


def _unix(timestamp: int | float | datetime | None) -> str:
    if timestamp is None:
        return str(int(time.time()))
    if isinstance(timestamp, datetime):
        return str(int(timestamp.timestamp()))
    return str(int(timestamp))


def webhook_body(
    value: dict[str, Any],
    *,
    phone_number_id: str,
    display_phone_number: str = "15550000000",
    waba_id: str = "test-waba-id",
) -> dict[str, Any]:
    """Return a full webhook body with one entry and one ``messages`` change carrying ``value``.

    ``value`` gets ``messaging_product`` and ``metadata`` filled in; it is not copied.
    """
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": display_phone_number,
            "phone_number_id": phone_number_id,
        },
        **value,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"value": value, "field": "messages"}]}],
    }


def text_message_webhook(
    *,
    phone_number_id: str = "test-phone-id",
    wa_id: str = "5511999999999",
    name: str = "Test User",
    wamid: str | None = None,
    body: str = "Hello!",
    timestamp: int | float | datetime | None = None,
    display_phone_number: str = "15550000000",
    waba_id: str = "test-waba-id",
) -> dict[str, Any]:
    """Return the webhook Meta sends when ``wa_id`` texts ``body`` to ``phone_number_id``.

    ``wamid`` defaults to a fresh unique id and ``timestamp`` (unix seconds or a datetime) to now.
    """
    message = {
        "from": wa_id,
        "id": wamid or new_wamid(),
        "timestamp": _unix(timestamp),
        "text": {"body": body},
        "type": "text",
    }
    value = {"contacts": [{"profile": {"name": name}, "wa_id": wa_id}], "messages": [message]}
    return webhook_body(
        value,
        phone_number_id=phone_number_id,
        display_phone_number=display_phone_number,
        waba_id=waba_id,
    )


def status_webhook(
    *,
    phone_number_id: str,
    wamid: str,
    status: str,
    recipient_id: str = "5511999999999",
    errors: list[dict[str, Any]] | None = None,
    timestamp: int | float | datetime | None = None,
    display_phone_number: str = "15550000000",
    waba_id: str = "test-waba-id",
) -> dict[str, Any]:
    """Return the webhook Meta sends when message ``wamid`` reaches ``status``.

    ``status`` is Meta's lower-case word (sent, delivered, read, failed); ``errors`` are Meta's
    error objects (``code``, ``title``, ``message``, ``error_data.details``) for a failure.
    """
    item: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": _unix(timestamp),
        "recipient_id": recipient_id,
    }
    if errors:
        item["errors"] = errors
    return webhook_body(
        {"statuses": [item]},
        phone_number_id=phone_number_id,
        display_phone_number=display_phone_number,
        waba_id=waba_id,
    )
