"""Edits, deletions for everyone and reactions: what happens to a message after it arrived.

A change names its target by WhatsApp id. It is applied to the target's row in one
transaction (the row read, the change worked out here in Python, the row written back; the
row is locked on PostgreSQL), or, when the target is not stored yet, kept in
``pending_changes`` and applied in the transaction that stores the target (an inbound
message: ``_transactions.inbound`` and ``_postgres_inbound``), or by ``apply_pending`` for
targets that arrive another way (an outbound message, an echo).

The rules (``changed``): a reaction replaces the sender's earlier one unless it is older,
and an empty emoji removes it; an edit replaces the content unless a newer edit did, and is
kept in ``metadata["edits"]`` (id, time, previous content, the edit object); a deletion
empties the content, keeps the type, drops the message's own object and its edit history
from the metadata (the sender deleted it) and is final. Each change is applied once: a
replay (same id) changes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

from . import _rows as r
from ._common import as_utc
from ._dialect import Dialect
from ._records import Message, MessageChange
from ._steps import Steps, one, rows, run

KINDS: Final = frozenset({"edit", "revoke", "reaction"})
# What a deleted message's metadata keeps of the Cloud API object: who, when, what kind.
_KEPT_ON_DELETE: Final = ("id", "from", "to", "timestamp", "type", "context")

_UPDATE: Final = (
    "UPDATE messages SET content = ?, metadata = ?, reactions = ?, edited_at = ?,"
    f" deleted_at = ? WHERE id = ? RETURNING {r.MESSAGE_COLS}"
)
_KEEP: Final = (
    "INSERT INTO pending_changes (tenant_id, whatsapp_message_id, target_id, kind, sender,"
    " content, body, timestamp, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (tenant_id, whatsapp_message_id) DO NOTHING"
)
_TAKE: Final = (
    "DELETE FROM pending_changes WHERE tenant_id = ? AND target_id = ?"
    " RETURNING kind, whatsapp_message_id, sender, content, body, timestamp"
)


def iso(value: datetime) -> str:
    """A fixed-width ISO-8601 UTC text (sorts as time does)."""
    return as_utc(value).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def changed(message: Message, change: MessageChange) -> Message | None:
    """Return ``message`` with ``change`` applied, or None if it changes nothing."""
    if change.kind == "reaction":
        return _react(message, change)
    if change.kind == "edit":
        return _edit(message, change)
    if change.kind == "revoke":
        return _delete(message, change)
    raise ValueError(f"change kind must be one of {sorted(KINDS)}, got {change.kind!r}")


def _react(message: Message, change: MessageChange) -> Message | None:
    when = iso(change.timestamp)
    current = message.reactions.get(change.sender)
    if current is not None and (
        current.get("id") == change.whatsapp_message_id or str(current.get("timestamp")) > when
    ):
        return None
    reactions = dict(message.reactions)
    if change.content:
        reactions[change.sender] = {
            "emoji": change.content,
            "timestamp": when,
            "id": change.whatsapp_message_id,
        }
    elif reactions.pop(change.sender, None) is None:
        return None
    return replace(message, reactions=reactions)


def _edit(message: Message, change: MessageChange) -> Message | None:
    edits = message.metadata.get("edits")
    history: list[Any] = list(edits) if isinstance(edits, list) else []
    if message.deleted_at is not None or any(
        isinstance(e, dict) and e.get("id") == change.whatsapp_message_id for e in history
    ):
        return None
    when = as_utc(change.timestamp)
    newest = message.edited_at is None or when >= message.edited_at
    history.append(
        {
            "id": change.whatsapp_message_id,
            "timestamp": iso(when),
            "previousContent": message.content if newest else None,
            "edit": change.body,
        }
    )
    history.sort(key=lambda e: str(e.get("timestamp")) if isinstance(e, dict) else "")
    metadata = {**message.metadata, "edits": history}
    if not newest:  # an older edit arriving late: history only
        return replace(message, metadata=metadata)
    content = message.content if change.content is None else change.content
    return replace(message, content=content, metadata=metadata, edited_at=when)


def _delete(message: Message, change: MessageChange) -> Message | None:
    if message.deleted_at is not None:
        return None
    kept: dict[str, Any] = {
        k: message.metadata[k] for k in _KEPT_ON_DELETE if k in message.metadata
    }
    kept["revoke"] = {"id": change.whatsapp_message_id, "timestamp": iso(change.timestamp)}
    return replace(message, content="", metadata=kept, deleted_at=as_utc(change.timestamp))


def _write(row: r.Row, changes: list[MessageChange], d: Dialect) -> Steps[tuple[r.Row, bool]]:
    before = r.message(row, d)
    after = before
    for change in sorted(changes, key=lambda c: as_utc(c.timestamp)):
        after = changed(after, change) or after
    if after is before:
        return row, False
    new = yield one(
        _UPDATE,
        *(after.content, after.metadata, after.reactions or None),
        *(after.edited_at, after.deleted_at, before.id),
    )
    return new, True


def _target(tenant_id: str, wamid: str, d: Dialect) -> Steps[r.Row | None]:
    row: r.Row | None = yield one(
        f"SELECT {r.MESSAGE_COLS} FROM messages WHERE tenant_id = ? AND whatsapp_message_id = ?"
        f"{d.for_update}",
        *(tenant_id, wamid),
    )
    return row


def apply(change: MessageChange, now: datetime, d: Dialect) -> Steps[tuple[r.Row, bool] | None]:
    """Steps applying ``change`` to its target; return (row, changed), or None when the target
    is not stored yet (the change is then kept, once, for when it is)."""
    if change.kind not in KINDS:
        raise ValueError(f"change kind must be one of {sorted(KINDS)}, got {change.kind!r}")
    row = yield from _target(change.tenant_id, change.target_id, d)
    if row is None:
        yield run(
            _KEEP,
            *(change.tenant_id, change.whatsapp_message_id, change.target_id, change.kind),
            *(change.sender, change.content, change.body, as_utc(change.timestamp), now),
        )
        return None
    return (yield from _write(row, [change], d))


def take(row: r.Row, d: Dialect) -> Steps[tuple[r.Row, bool]]:
    """Steps applying (and forgetting) the changes kept for the message of ``row``, which was
    just stored; return its row afterwards and whether they changed it."""
    found = yield rows(_TAKE, row[1], row[4])
    changes = [
        MessageChange(
            tenant_id=row[1],
            kind=kind,
            target_id=row[4],
            whatsapp_message_id=wamid,
            sender=sender,
            timestamp=d.time(when),
            content=content,
            body=d.json(body),
        )
        for kind, wamid, sender, content, body, when in found
    ]
    if not changes:
        return row, False
    return (yield from _write(row, changes, d))


def apply_pending(limit: int, d: Dialect) -> Steps[list[r.Row]]:
    """Steps applying the kept changes whose target is stored by now; return changed rows."""
    targets = yield rows(
        "SELECT DISTINCT p.tenant_id, p.target_id FROM pending_changes p JOIN messages m"
        " ON m.tenant_id = p.tenant_id AND m.whatsapp_message_id = p.target_id LIMIT ?",
        limit,
    )
    out = []
    for tenant_id, wamid in targets:
        row = yield from _target(tenant_id, wamid, d)
        if row is not None:
            new, was_changed = yield from take(row, d)
            if was_changed:
                out.append(new)
    return out


def expire_pending(before: datetime) -> Steps[list[r.Row]]:
    """Steps forgetting the changes kept since before ``before``; return them as (tenant_id,
    own WhatsApp id, kind, target id) rows."""
    found: list[r.Row] = yield rows(
        "DELETE FROM pending_changes WHERE received_at < ?"
        " RETURNING tenant_id, whatsapp_message_id, kind, target_id",
        before,
    )
    return found
