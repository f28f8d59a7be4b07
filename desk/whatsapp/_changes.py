"""Messages that change an earlier message instead of adding one: reactions, edits, deletions.

WhatsApp sends each as a message of its own (``type`` reaction, edit or revoke) naming the
earlier message by its WhatsApp id. The desk applies them to that message; this module only
reads what the change says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._content import message_content

__all__ = ["Change", "message_change", "readable_change"]


@dataclass(frozen=True, slots=True)
class Change:
    """What one change message does to the message ``target`` (a WhatsApp id)."""

    kind: str  # "reaction", "edit" or "revoke"
    target: str
    content: str | None  # the emoji ('' removes), the edited text (None: not readable)
    body: dict[str, Any]  # the change's own Cloud API object (``reaction``, ``edit``, ...)


def _text(obj: Any, key: str) -> str | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) and value else None


def message_change(kind: Any, raw: dict[str, Any], types: dict[str, str]) -> Change | None:
    """Return the change a message of ``kind`` makes, or None if it is no (readable) change.

    ``types`` maps Cloud API type names to ours (to read an edited message's new text).
    A change without the id of its target is None: stored as a message of its own, it is at
    least not lost.
    """
    if kind not in ("reaction", "edit", "revoke"):
        return None
    part = raw.get(kind)
    if not isinstance(part, dict):
        return None
    if kind == "reaction":
        target = _text(part, "message_id")
        return None if target is None else Change(kind, target, _text(part, "emoji") or "", part)
    target = _text(part, "original_message_id")
    if target is None:
        return None
    if kind == "revoke":
        return Change(kind, target, None, part)
    inner = part.get("message")
    inner_kind = inner.get("type") if isinstance(inner, dict) else None
    inner_type = types.get(inner_kind) if isinstance(inner_kind, str) else None
    content = None
    if inner_type is not None and isinstance(inner, dict):
        content = message_content(inner_type, inner) or ""
    return Change(kind, target, content, part)


def readable_change(kind: Any, raw: dict[str, Any], types: dict[str, str]) -> str | None:
    """The text for a change stored as a message of its own (its target was not named)."""
    if kind == "revoke":
        return "Deleted a message"
    if kind == "edit":
        edit = raw.get("edit")
        inner = edit.get("message") if isinstance(edit, dict) else None
        if isinstance(inner, dict):
            inner_kind = inner.get("type")
            inner_type = types.get(inner_kind) if isinstance(inner_kind, str) else None
            text = message_content(inner_type, inner) if inner_type else None
            if text:
                return f"Edited a message: {text}"
        return "Edited a message"
    return None
