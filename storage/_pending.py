"""Statuses that overtook their message: kept, applied when the message is known, expired.

A status webhook can reach us before the send worker has recorded the message's WhatsApp id
(the Cloud API answered, Meta's status was quicker than our commit), or for a message this
desk has not stored (sent from elsewhere; an echo still on its way). Such a status is kept in
``pending_statuses``, one row per (tenant, WhatsApp id) holding the highest status reported,
and applied (monotonic, as any status) when the message gets that id: in the same
transaction as ``mark_message_sent``. A status and the send racing to commit can each miss
the other's row (PostgreSQL runs READ COMMITTED, and ``record_status`` runs its statements
in autocommit to spare a status two round trips); ``apply_pending``, run now and then by the
desk, closes that window. Rows nobody claims expire (``expire_pending``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from . import _rows as r
from ._common import STATUS_RANK_SQL, status_rank_sql
from ._records import STATUS_RANK
from ._steps import Steps, one, rows, run

_KEEP: Final = (
    "INSERT INTO pending_statuses (tenant_id, whatsapp_message_id, status, error, received_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, whatsapp_message_id) DO UPDATE SET"
    f" status = CASE WHEN {status_rank_sql('excluded.status')}"
    f" > {status_rank_sql('pending_statuses.status')}"
    " THEN excluded.status ELSE pending_statuses.status END,"
    " error = coalesce(excluded.error, pending_statuses.error)"
)
_TAKE: Final = (
    "DELETE FROM pending_statuses WHERE tenant_id = ? AND whatsapp_message_id = ?"
    " RETURNING status, error"
)
# Parameters: status, error, tenant_id, WhatsApp id, the status's rank.
_APPLY: Final = (
    "UPDATE messages SET status = ?, error = coalesce(?, error) WHERE tenant_id = ?"
    f" AND whatsapp_message_id = ? AND direction = 'outbound' AND {STATUS_RANK_SQL} < ?"
    f" RETURNING {r.MESSAGE_COLS}"
)


def rank(status: str) -> int:
    """The ladder rank of a stored status (off the ladder: above FAILED)."""
    return STATUS_RANK.get(status, 10)


def keep(
    tenant_id: str, wamid: str, status: str, error: dict[str, Any] | None, now: datetime
) -> Steps[None]:
    """Steps keeping ``status`` for ``wamid`` unless a higher one is kept already."""
    yield run(_KEEP, tenant_id, wamid, status, error, now)


def take(tenant_id: str, wamid: str) -> Steps[r.Row | None]:
    """Steps applying (and forgetting) the status kept for ``wamid``; return the message's
    row if that changed it, else None."""
    pending = yield one(_TAKE, tenant_id, wamid)
    if pending is None:
        return None
    status, error = pending[0], pending[1]
    changed: r.Row | None = yield one(_APPLY, status, error, tenant_id, wamid, rank(status))
    return changed


def apply_pending(limit: int) -> Steps[list[r.Row]]:
    """Steps applying every kept status whose message is now known; return the changed rows."""
    found = yield rows(
        "SELECT p.tenant_id, p.whatsapp_message_id FROM pending_statuses p"
        " JOIN messages m ON m.tenant_id = p.tenant_id"
        " AND m.whatsapp_message_id = p.whatsapp_message_id"
        " ORDER BY p.received_at LIMIT ?",
        limit,
    )
    changed = []
    for tenant_id, wamid in found:
        row = yield from take(tenant_id, wamid)
        if row is not None:
            changed.append(row)
    return changed


def expire_pending(before: datetime) -> Steps[list[r.Row]]:
    """Steps forgetting the statuses kept since before ``before``; return them as
    (tenant_id, WhatsApp id, status) rows."""
    found: list[r.Row] = yield rows(
        "DELETE FROM pending_statuses WHERE received_at < ?"
        " RETURNING tenant_id, whatsapp_message_id, status",
        before,
    )
    return found


def or_keep(
    applied: Steps[tuple[r.Row, bool] | None],
    tenant_id: str,
    wamid: str,
    status: str,
    error: dict[str, Any] | None,
    now: datetime,
) -> Steps[tuple[r.Row, bool] | None]:
    """Steps running ``applied`` (a status update) and, when it found no message, keeping
    the status; return what ``applied`` returned."""
    result = yield from applied
    if result is None:
        yield from keep(tenant_id, wamid, status, error, now)
    return result


def then_take(applied: Steps[tuple[r.Row, bool] | None]) -> Steps[tuple[r.Row, bool] | None]:
    """Steps running ``applied`` (which gave a message its WhatsApp id) and then applying the
    status kept for that id; return the message's row as it is afterwards."""
    result = yield from applied
    if result is None:
        return None
    row = result[0]
    later = yield from take(row[1], row[4])
    return result if later is None else (later, True)
