"""One webhook per inbound message kind, written from Meta's Cloud API webhook reference.

Each kind is the ``messages[]`` object Meta documents for it (ids, numbers and texts are
ours), wrapped in the documented envelope by :func:`webhook`. ``KINDS`` pairs each with what
an agent must see: the message type and its readable content (and error, when Meta reports
one). Nothing here is copied from another project's fixtures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TS = "1764750000"
MEDIA_ID = "1029384756"


def webhook(
    phone_number_id: str,
    messages: list[dict[str, Any]],
    *,
    contacts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``messages`` webhook envelope around ``messages``."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": phone_number_id},
        "messages": messages,
    }
    if contacts is not None:
        value["contacts"] = contacts
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA-1", "changes": [{"value": value, "field": "messages"}]}],
    }


def profile(wa_id: str, name: str) -> list[dict[str, Any]]:
    """The ``contacts`` array naming ``wa_id``."""
    return [{"profile": {"name": name}, "wa_id": wa_id}]


def message(sender: str, wamid: str, kind: str, part: Any = None, **extra: Any) -> dict[str, Any]:
    """A ``messages[]`` object of ``kind`` carrying ``part`` under its own name."""
    body: dict[str, Any] = {"from": sender, "id": wamid, "timestamp": TS, "type": kind}
    if part is not None:
        body[kind] = part
    body.update(extra)
    return body


@dataclass(frozen=True)
class Kind:
    """One documented kind: its ``messages[]`` object's parts and what the agent sees."""

    kind: str
    part: Any
    type: str
    content: str
    extra: dict[str, Any]
    error: dict[str, Any] | None = None


def _kind(
    kind: str,
    part: Any,
    mtype: str,
    content: str,
    error: dict[str, Any] | None = None,
    **extra: Any,
) -> Kind:
    return Kind(kind, part, mtype, content, extra, error)


KINDS: dict[str, Kind] = {
    "text": _kind("text", {"body": "Hi, is my order ready?"}, "TEXT", "Hi, is my order ready?"),
    "text_reply": _kind(
        "text",
        {"body": "Yes, this one"},
        "TEXT",
        "Yes, this one",
        context={"from": "15550001111", "id": "wamid.earlier"},
    ),
    "referral": _kind(
        "text",
        {"body": "Tell me more"},
        "TEXT",
        "Tell me more",
        referral={
            "source_url": "https://fb.me/ad",
            "source_id": "ad-1",
            "source_type": "ad",
            "headline": "Winter sale",
            "body": "Half price",
            "media_type": "image",
            "image_url": "https://example.invalid/ad.jpg",
            "ctwa_clid": "clid-1",
        },
    ),
    "image": _kind(
        "image",
        {"caption": "the broken part", "mime_type": "image/jpeg", "sha256": "h", "id": MEDIA_ID},
        "IMAGE",
        "the broken part",
    ),
    "audio": _kind(
        "audio",
        {"mime_type": "audio/ogg; codecs=opus", "sha256": "h", "id": MEDIA_ID, "voice": True},
        "AUDIO",
        "",
    ),
    "video": _kind(
        "video",
        {"caption": "unboxing", "mime_type": "video/mp4", "sha256": "h", "id": MEDIA_ID},
        "VIDEO",
        "unboxing",
    ),
    "document": _kind(
        "document",
        {"filename": "invoice.pdf", "mime_type": "application/pdf", "sha256": "h", "id": MEDIA_ID},
        "DOCUMENT",
        "invoice.pdf",
    ),
    "sticker": _kind(
        "sticker",
        {"mime_type": "image/webp", "sha256": "h", "id": MEDIA_ID, "animated": False},
        "STICKER",
        "",
    ),
    "location": _kind(
        "location",
        {"latitude": 32.0853, "longitude": 34.7818, "name": "Shop", "address": "1 Main St"},
        "LOCATION",
        "Shop, 1 Main St (32.0853, 34.7818)",
    ),
    "contacts": _kind(
        "contacts",
        [
            {
                "name": {"formatted_name": "Dana Levi", "first_name": "Dana"},
                "phones": [{"phone": "+972 50 000 0000", "type": "CELL", "wa_id": "972500000000"}],
            }
        ],
        "CONTACTS",
        "Dana Levi",
    ),
    "button_reply": _kind(
        "interactive",
        {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes, confirm"}},
        "INTERACTIVE",
        "Yes, confirm",
    ),
    "list_reply": _kind(
        "interactive",
        {
            "type": "list_reply",
            "list_reply": {"id": "slot-2", "title": "Tomorrow 10:00", "description": "Branch A"},
        },
        "INTERACTIVE",
        "Tomorrow 10:00",
    ),
    "nfm_reply": _kind(
        "interactive",
        {
            "type": "nfm_reply",
            "nfm_reply": {
                "name": "flow",
                "body": "Sent",
                "response_json": '{"flow_token": "tok-9", "screen_0_Full_name_0": "Dana Levi",'
                ' "screen_0_Guests_1": "4"}',
            },
        },
        "INTERACTIVE",
        "Full name: Dana Levi, Guests: 4",
    ),
    "button": _kind(
        "button",
        {"payload": "STOP_PROMOS", "text": "Stop promotions"},
        "BUTTON",
        "Stop promotions",
        context={"from": "15550001111", "id": "wamid.template"},
    ),
    "order": _kind(
        "order",
        {
            "catalog_id": "cat-1",
            "text": "ring the bell",
            "product_items": [
                {
                    "product_retailer_id": "HAMBURGER",
                    "quantity": 3,
                    "item_price": 10,
                    "currency": "ILS",
                },
                {
                    "product_retailer_id": "FRIES",
                    "quantity": 1,
                    "item_price": 12.5,
                    "currency": "ILS",
                },
            ],
        },
        "ORDER",
        "3 × HAMBURGER — 30.00 ILS; 1 × FRIES — 12.50 ILS; total 42.50 ILS; ring the bell",
    ),
    "system": _kind(
        "system",
        {
            "body": "User Dana changed from 15550002222 to 15550003333",
            "wa_id": "15550003333",
            "type": "user_changed_number",
        },
        "SYSTEM",
        "User Dana changed from 15550002222 to 15550003333",
    ),
    "request_welcome": _kind(
        "request_welcome", None, "SYSTEM", "The customer opened the chat for the first time"
    ),
    "unsupported": _kind(
        "unsupported",
        {"type": "poll_creation"},
        "UNSUPPORTED",
        "Message type is currently not supported.",
        error={
            "code": 131051,
            "title": "Message type unknown",
            "details": "Message type is currently not supported.",
        },
        errors=[
            {
                "code": 131051,
                "title": "Message type unknown",
                "message": "Message type unknown",
                "error_data": {"details": "Message type is currently not supported."},
            }
        ],
    ),
    "interactive_with_error": _kind(
        "interactive",
        {"type": "button_reply", "button_reply": {"id": "no", "title": "No"}},
        "INTERACTIVE",
        "No",
        error={"code": 131000, "title": "Something went wrong", "details": "Unknown error"},
        errors=[
            {
                "code": 131000,
                "title": "Something went wrong",
                "message": "Something went wrong",
                "error_data": {"details": "Unknown error"},
            }
        ],
    ),
    "newer_type": _kind("hologram", {"shape": "cube"}, "UNSUPPORTED", ""),
}
