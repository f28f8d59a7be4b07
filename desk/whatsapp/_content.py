"""The readable text of an inbound message, whatever its type.

Agents scan a Kanban of conversations by their last line, so every message type gets the one
string that best stands for it: a caption, a file name, a place, an emoji, a tapped button.
"""

from __future__ import annotations

from typing import Any

__all__ = ["message_content"]


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
        return _text(raw.get("text"), "body")
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
        reply = raw.get("interactive")
        kind = _text(reply, "type")
        if kind is None or not isinstance(reply, dict):
            return None
        inner = reply.get(kind)
        return _text(inner, "title") or _text(inner, "body") or _text(inner, "name")
    if mtype == "BUTTON":
        button = raw.get("button")
        return _text(button, "text") or _text(button, "payload")
    return None


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
