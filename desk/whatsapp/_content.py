"""The readable text of an inbound message, whatever its type.

Agents scan a Kanban of conversations by their last line, so every message type gets the one
string that best stands for it: a caption, a file name, a place, an emoji, a tapped button, an
order's lines, a form's answers, a system notice.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

__all__ = ["error_summary", "message_content"]


def _text(obj: Any, key: str) -> str | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) and value else None


def _number(obj: dict[str, Any], key: str) -> int | float | None:
    value = obj.get(key)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def message_content(mtype: str, raw: dict[str, Any]) -> str | None:
    """Return the text a person would read for a message of type ``mtype``, or None.

    ``raw`` is the message object as Meta sent it; nothing in it is trusted, so a missing or
    oddly typed field yields None rather than an exception. Never raises.
    """
    if mtype == "TEXT":
        return _text(raw.get("text"), "body") or _referral(raw.get("referral"))
    if mtype in ("IMAGE", "VIDEO", "AUDIO", "STICKER"):
        return _text(raw.get(mtype.lower()), "caption")
    if mtype == "DOCUMENT":
        doc = raw.get("document")
        return _text(doc, "caption") or _text(doc, "filename")
    if mtype == "LOCATION":
        return _location(raw.get("location"))
    if mtype == "REACTION":
        return _text(raw.get("reaction"), "emoji")  # absent when the user removed a reaction
    if mtype == "CONTACTS":
        return _shared_contacts(raw.get("contacts"))
    if mtype == "INTERACTIVE":
        return _interactive(raw.get("interactive"))
    if mtype == "BUTTON":
        button = raw.get("button")
        return _text(button, "text") or _text(button, "payload")
    if mtype == "ORDER":
        return _order(raw.get("order"))
    if mtype == "SYSTEM":
        if raw.get("type") == "request_welcome":
            return "The customer opened the chat for the first time"
        return _text(raw.get("system"), "body")
    return None


def error_summary(error: dict[str, Any] | None) -> str | None:
    """The readable part of a message's ``error`` ({code, title, details}), or None."""
    if not error:
        return None
    return _text(error, "details") or _text(error, "title")


def _referral(referral: Any) -> str | None:
    # A click-to-WhatsApp ad opens the chat; the text may be empty, the ad never is.
    headline = _text(referral, "headline") or _text(referral, "body")
    return f"Ad: {headline}" if headline else _text(referral, "source_url")


def _interactive(reply: Any) -> str | None:
    kind = _text(reply, "type")
    if kind is None or not isinstance(reply, dict):
        return None
    inner = reply.get(kind)
    if kind == "nfm_reply":
        return _flow_answers(inner)
    return _text(inner, "title") or _text(inner, "body") or _text(inner, "name")


_SCREEN_PREFIX = re.compile(r"^screen_\d+_")
_INDEX_SUFFIX = re.compile(r"_\d+$")


def _field_label(key: str) -> str:
    # Flow Builder names fields "screen_0_First_name_0"; the agent wants "First name".
    label = _INDEX_SUFFIX.sub("", _SCREEN_PREFIX.sub("", key)).replace("_", " ").strip()
    return label or key


def _answer(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(_answer(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


def _flow_answers(reply: Any) -> str | None:
    """A WhatsApp Flow's answers (``response_json``, a JSON string) as "field: value, ..."."""
    raw = reply.get("response_json") if isinstance(reply, dict) else None
    answers: Any = None
    if isinstance(raw, str):
        try:
            answers = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answers = None
    elif isinstance(raw, dict):
        answers = raw
    if isinstance(answers, dict):
        parts = [
            f"{_field_label(str(key))}: {_answer(value)}"
            for key, value in answers.items()
            if key != "flow_token"  # an opaque token of ours, nothing the customer wrote
        ]
        if parts:
            return ", ".join(parts)
    return _text(reply, "body")


def _money(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _order(order: Any) -> str | None:
    """ "3 × HAMBURGER — 30.00 ILS; 1 × COLA — 5.00 ILS; total 35.00 ILS" (line totals)."""
    if not isinstance(order, dict):
        return None
    lines: list[str] = []
    totals: dict[str, Decimal] = {}
    items = order.get("product_items")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        product = _text(item, "product_retailer_id") or "item"
        quantity = _money(item.get("quantity")) or Decimal(1)
        price, currency = _money(item.get("item_price")), _text(item, "currency") or ""
        line = f"{quantity.normalize():f} × {product}"
        if price is not None:
            amount = (price * quantity).quantize(Decimal("0.01"))
            line += f" — {amount} {currency}".rstrip()
            totals[currency] = totals.get(currency, Decimal(0)) + amount
        lines.append(line)
    if len(lines) > 1 and len(totals) == 1:
        currency, total = next(iter(totals.items()))
        lines.append(f"total {total} {currency}".rstrip())
    note = _text(order, "text")
    if note:
        lines.append(note)
    return "; ".join(lines) or None


def _location(loc: Any) -> str | None:
    if not isinstance(loc, dict):
        return None
    label = ", ".join(p for p in (_text(loc, "name"), _text(loc, "address")) if p)
    lat, lng = _number(loc, "latitude"), _number(loc, "longitude")
    where = f"({lat}, {lng})" if lat is not None and lng is not None else ""
    return " ".join(p for p in (label, where) if p) or None


def _shared_contacts(cards: Any) -> str | None:
    if not isinstance(cards, list):
        return None
    names: list[str] = []
    for card in cards:
        name = card.get("name") if isinstance(card, dict) else None
        full = _text(name, "formatted_name")
        if full is None and isinstance(name, dict):
            full = " ".join(p for p in (_text(name, "first_name"), _text(name, "last_name")) if p)
        if full:
            names.append(full)
    return ", ".join(names) or None
