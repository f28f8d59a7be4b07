"""Parsing of WhatsApp Cloud API webhook bodies into small frozen events.

Meta batches freely: one body holds many entries (business accounts), each entry many changes,
each change many messages and/or statuses. A body is trusted only as far as its outer frame
(``object`` and ``entry``); below that every part is judged on its own, so one odd message never
costs the rest of the batch. Whatever is not understood is named in ``WebhookBatch.skipped``
instead of vanishing silently, because a message dropped without a trace is a customer ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from ._changes import Change, message_change, readable_change
from ._content import error_summary, message_content

__all__ = [
    "InboundMessage",
    "StatusUpdate",
    "WebhookBatch",
    "WebhookFormatError",
    "WrongWebhookObject",
    "load_json",
    "parse_webhook",
    "phone_number_ids",
]

_OBJECT = "whatsapp_business_account"

# Every inbound type Meta documents, by name. A type not listed here (one Meta adds later) is
# stored as UNSUPPORTED with the original object in metadata: never lost.
_MESSAGE_TYPES = {
    "text": "TEXT",
    "image": "IMAGE",
    "video": "VIDEO",
    "audio": "AUDIO",
    "document": "DOCUMENT",
    "location": "LOCATION",
    "sticker": "STICKER",
    "reaction": "REACTION",
    "contacts": "CONTACTS",
    "interactive": "INTERACTIVE",
    "button": "BUTTON",
    "order": "ORDER",
    "system": "SYSTEM",
    # The customer opened the chat for the first time (no text: the business may greet).
    "request_welcome": "SYSTEM",
    # Meta could not deliver the message to us; ``errors`` says why.
    "unsupported": "UNSUPPORTED",
    # Coexistence (WhatsApp Business app) numbers: an edit or deletion of an earlier message,
    # applied to it (``InboundMessage.change``); only one that names no target is stored.
    "edit": "UNSUPPORTED",
    "revoke": "UNSUPPORTED",
}

# The webhook fields read: the customers' messages and statuses, and the echoes of what the
# business sent from the WhatsApp Business app (coexistence numbers).
_FIELDS = frozenset({"messages", "smb_message_echoes"})

# "played" is what Meta reports when a voice message was listened to: for a desk that is a read.
_STATUSES = {
    "sent": "SENT",
    "delivered": "DELIVERED",
    "read": "READ",
    "played": "READ",
    "failed": "FAILED",
}


class WebhookFormatError(ValueError):
    """The body is not a WhatsApp Business Account webhook at all (answer it with a 400)."""


class WrongWebhookObject(WebhookFormatError):
    """The body names an ``object`` other than a WhatsApp Business Account (another product's
    webhook sent to this endpoint: a subscription mistake worth a warning)."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message a WhatsApp user sent to one of our business phone numbers."""

    phone_number_id: str
    display_phone_number: str | None
    wa_id: str
    contact_name: str | None
    whatsapp_message_id: str
    timestamp: datetime
    type: str
    content: str  # the readable text; '' when the message has none (media without caption)
    metadata: dict[str, Any]
    error: dict[str, Any] | None = None
    """What WhatsApp reported about this message (``errors[]``): {code, title, details}."""
    change: Change | None = None
    """Set when the message changes an earlier one (a reaction, an edit, a deletion)."""
    new_wa_id: str | None = None
    """A system notice that the customer changed numbers: the new one (from ``system``)."""
    echo: bool = False
    """A message the business sent from the WhatsApp Business app (``smb_message_echoes``):
    ``wa_id`` is then its recipient, the customer, and it is stored as OUTBOUND."""


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A delivery status for a message we sent (SENT, DELIVERED, READ or FAILED)."""

    phone_number_id: str
    whatsapp_message_id: str
    recipient_id: str | None
    status: str
    timestamp: datetime
    errors: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class WebhookBatch:
    """Everything one webhook body carried, plus a reason for every part that was left out.

    ``phone_number_ids`` holds every business number the body names, the same set
    ``phone_number_ids(body)`` returns, whether or not anything for it could be parsed.
    """

    messages: list[InboundMessage]
    statuses: list[StatusUpdate]
    skipped: list[str]
    phone_number_ids: frozenset[str]


def load_json(raw: bytes) -> Any:
    """Return the JSON value of a webhook body; raise ValueError if it is not JSON.

    orjson refuses what RFC 8259 allows but UTF-8 cannot hold (a lone surrogate escape such as
    ``\\ud800``); such a body is still a customer's message, so the standard library reads it
    then, and storage makes the text storable. Either way an integer beyond 64 bits comes
    back as a float, as orjson reads it, so that storage can write it.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as fast:
        try:
            return json.loads(raw, parse_int=_int_as_orjson_reads_it)
        except (ValueError, RecursionError):
            raise ValueError(str(fast)) from None


def _int_as_orjson_reads_it(text: str) -> int | float:
    # orjson reads an integer beyond 64 bits as a float and cannot write one back; the
    # stdlib keeps it exact, and then no worker could store the message nor its dead letter.
    value = int(text)
    return value if -(2**63) <= value < 2**64 else float(text)


def _entries(body: object) -> list[Any]:
    if not isinstance(body, dict):
        raise WebhookFormatError(f"webhook body must be a JSON object, not {type(body).__name__}")
    # Meta always sends ``object``; people testing by hand often leave it out, and a body
    # without it is still read as a WhatsApp webhook. Naming another object is a mistake.
    if "object" in body and body["object"] != _OBJECT:
        raise WrongWebhookObject(
            f"webhook object is {body.get('object')!r}, expected {_OBJECT!r}: "
            "is this endpoint subscribed to the right app?"
        )
    entries = body.get("entry")
    if not isinstance(entries, list):
        raise WebhookFormatError("webhook body has no 'entry' list")
    return entries


def _changes(entries: list[Any], skipped: list[str]) -> list[tuple[str, Any]]:
    """Flatten entries x changes into (where, change) pairs, noting malformed containers."""
    found: list[tuple[str, Any]] = []
    for i, entry in enumerate(entries):
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            skipped.append(f"entry[{i}]: not an object with a 'changes' list")
            continue
        found.extend((f"entry[{i}].changes[{j}]", change) for j, change in enumerate(changes))
    return found


def _phone_number_id(change: Any) -> str | None:
    value = change.get("value") if isinstance(change, dict) else None
    meta = value.get("metadata") if isinstance(value, dict) else None
    pid = meta.get("phone_number_id") if isinstance(meta, dict) else None
    return pid if isinstance(pid, str) and pid else None


def phone_number_ids(body: dict[str, Any]) -> frozenset[str]:
    """Return the business phone number ids a webhook body is addressed to, without parsing it.

    Meant for intake, which must route (and pick the secret to verify with) before trusting the
    body. Raises WebhookFormatError when the body is not a WhatsApp Business Account webhook.
    """
    ids: set[str] = set()
    for _, change in _changes(_entries(body), []):
        pid = _phone_number_id(change)
        if pid is not None:
            ids.add(pid)
    return frozenset(ids)


def parse_webhook(body: dict[str, Any]) -> WebhookBatch:
    """Return every message and status in a webhook body, in the order Meta sent them.

    Malformed parts inside a well-formed body are left out and described in ``skipped``.
    Raises WebhookFormatError only when the body as a whole is not a WhatsApp Business Account
    webhook (not an object, no ``entry`` list; WrongWebhookObject when it names another
    ``object``; a body without ``object`` is read as a WhatsApp webhook).
    """
    skipped: list[str] = []
    messages: list[InboundMessage] = []
    statuses: list[StatusUpdate] = []
    ids: set[str] = set()
    for where, change in _changes(_entries(body), skipped):
        if not isinstance(change, dict):
            skipped.append(f"{where}: not an object")
            continue
        pid = _phone_number_id(change)
        if pid is not None:
            ids.add(pid)
        # A change without ``field`` (hand-written tests) is read by its ``value``.
        field = change.get("field", "messages")
        if not isinstance(field, str) or field not in _FIELDS:
            skipped.append(f"{where}: field {field!r} is not handled")
            continue
        echoes = field == "smb_message_echoes"
        value = change.get("value")
        if pid is None or not isinstance(value, dict):
            skipped.append(f"{where}: no value.metadata.phone_number_id")
            continue
        meta = value["metadata"]
        display = meta.get("display_phone_number")
        display = display if isinstance(display, str) else None
        names = _contact_names(value.get("contacts"))
        key = "message_echoes" if echoes else "messages"
        for k, raw in enumerate(_list(value, key, where, skipped)):
            spot = f"{where}.value.{key}[{k}]"
            message = _message(raw, pid, display, names, spot, skipped, echo=echoes)
            if message is not None:
                messages.append(message)
        for k, raw in enumerate(_list(value, "statuses", where, skipped)):
            status = _status(raw, pid, f"{where}.value.statuses[{k}]", skipped)
            if status is not None:
                statuses.append(status)
        errors = value.get("errors")
        if errors:
            skipped.append(f"{where}: WhatsApp reported errors: {_describe_errors(errors)}")
    return WebhookBatch(messages, statuses, skipped, frozenset(ids))


def _list(value: dict[str, Any], key: str, where: str, skipped: list[str]) -> list[Any]:
    items = value.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        skipped.append(f"{where}: value.{key} is not a list")
        return []
    return items


def _contact_names(contacts: Any) -> dict[str, str | None]:
    names: dict[str, str | None] = {}
    if isinstance(contacts, list):
        for contact in contacts:
            if isinstance(contact, dict) and isinstance(contact.get("wa_id"), str):
                profile = contact.get("profile")
                name = profile.get("name") if isinstance(profile, dict) else None
                names[contact["wa_id"]] = name if isinstance(name, str) else None
    return names


def _timestamp(raw: Any) -> datetime | None:
    """Meta sends unix seconds as a string; anything else unreadable is None."""
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    try:
        return datetime.fromtimestamp(int(raw), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _message(
    raw: Any,
    pid: str,
    display: str | None,
    names: dict[str, str | None],
    where: str,
    skipped: list[str],
    *,
    echo: bool = False,
) -> InboundMessage | None:
    if not isinstance(raw, dict):
        skipped.append(f"{where}: not an object")
        return None
    # An echo is filed under its recipient: the customer's conversation.
    wamid, sender = raw.get("id"), raw.get("to" if echo else "from")
    if not isinstance(wamid, str) or not wamid:
        skipped.append(f"{where}: no message 'id'")
        return None
    if not isinstance(sender, str) or not sender:
        # Newer payloads may identify users without a phone number; with a single contact in
        # the change there is no doubt who wrote, otherwise we cannot file the message.
        sender = next(iter(names)) if len(names) == 1 else None
        if sender is None:
            skipped.append(f"{where}: message {wamid} has no 'from'")
            return None
    when = _timestamp(raw.get("timestamp"))
    if when is None:
        skipped.append(f"{where}: message {wamid} has no readable 'timestamp'")
        return None
    kind = raw.get("type")
    mtype = _MESSAGE_TYPES.get(kind, "UNSUPPORTED") if isinstance(kind, str) else "UNSUPPORTED"
    error = _message_error(raw.get("errors"))
    change = message_change(kind, raw, _MESSAGE_TYPES)
    content = (
        message_content(mtype, raw)
        or readable_change(kind, raw, _MESSAGE_TYPES)
        or error_summary(error)
    )
    return InboundMessage(
        phone_number_id=pid,
        display_phone_number=display,
        wa_id=sender,
        # A name only ever names its own wa_id: a change may list someone else.
        contact_name=names.get(sender),
        new_wa_id=_new_number(raw, sender) if mtype == "SYSTEM" else None,
        echo=echo,
        whatsapp_message_id=wamid,
        timestamp=when,
        type=mtype,
        content=content or "",
        metadata=raw,
        error=error,
        change=change,
    )


# What Meta has called a change of the customer's number over the API's versions.
_NUMBER_CHANGES = frozenset({"user_changed_number", "customer_changed_number"})


def _new_number(raw: dict[str, Any], sender: str) -> str | None:
    system = raw.get("system")
    if not isinstance(system, dict) or system.get("type") not in _NUMBER_CHANGES:
        return None
    new = system.get("wa_id") or system.get("new_wa_id")
    new = str(new) if isinstance(new, str | int) and not isinstance(new, bool) else None
    return new if new and new != sender else None


def _message_error(errors: Any) -> dict[str, Any] | None:
    """The first of a message's ``errors[]`` as {code, title, details}, or None."""
    if not isinstance(errors, list):
        return None
    for raw in errors:
        if not isinstance(raw, dict):
            continue
        data = raw.get("error_data")
        details = data.get("details") if isinstance(data, dict) else None
        if not isinstance(details, str) or not details:
            details = raw.get("message")
        title = raw.get("title")
        code = raw.get("code")
        return {
            "code": code if isinstance(code, int | str) and not isinstance(code, bool) else None,
            "title": title if isinstance(title, str) else None,
            "details": details if isinstance(details, str) else None,
        }
    return None


def _status(raw: Any, pid: str, where: str, skipped: list[str]) -> StatusUpdate | None:
    if not isinstance(raw, dict):
        skipped.append(f"{where}: not an object")
        return None
    wamid = raw.get("id")
    if not isinstance(wamid, str) or not wamid:
        skipped.append(f"{where}: no message 'id'")
        return None
    status = _STATUSES.get(raw["status"]) if isinstance(raw.get("status"), str) else None
    if status is None:
        skipped.append(f"{where}: status {raw.get('status')!r} of {wamid} is not handled")
        return None
    when = _timestamp(raw.get("timestamp"))
    if when is None:
        skipped.append(f"{where}: status of {wamid} has no readable 'timestamp'")
        return None
    recipient = raw.get("recipient_id")
    errors = raw.get("errors")
    return StatusUpdate(
        phone_number_id=pid,
        whatsapp_message_id=wamid,
        recipient_id=recipient if isinstance(recipient, str) else None,
        status=status,
        timestamp=when,
        errors=[e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else [],
    )


def _describe_errors(errors: Any) -> str:
    if not isinstance(errors, list):
        return repr(errors)[:200]
    parts = [
        f"{e.get('code')} {e.get('title') or e.get('message') or ''}".strip()
        if isinstance(e, dict)
        else repr(e)[:80]
        for e in errors
    ]
    return "; ".join(parts)[:500]
