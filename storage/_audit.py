"""The audit log in storage: its records and the SQL that appends, lists and prunes them.

``AuditRecord`` is one row to write (the desk's ``desk.audit.AuditLog`` buffers them and
writes them in batches); ``AuditEntry`` is one row read back. ``AuditStorage`` holds the
methods, written once in SQL both databases run; ``SQLStorage`` inherits them, and their
contract is written on :class:`storage.Storage`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from . import _common as c
from . import _rows as r
from ._steps import Steps, rows, run, single

__all__ = ["AuditEntry", "AuditRecord", "AuditStorage"]

AUDIT_COLS: Final = "id, tenant_id, user_id, action, target, details, request_id, created_at"
_INSERT_COLS: Final = "tenant_id, user_id, action, target, details, request_id, created_at"
# Rows per INSERT statement: 7 parameters each stays far below SQLite's parameter limit.
_ROWS_PER_STATEMENT: Final = 200


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited action to store. ``tenant_id`` None: no tenant (a login for no user)."""

    tenant_id: str | None
    user_id: str | None
    action: str
    target: str | None
    at: datetime
    details: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One stored audit row; ``id`` grows with every row written."""

    id: int
    tenant_id: str | None
    user_id: str | None
    action: str
    target: str | None
    details: dict[str, Any]
    request_id: str | None
    at: datetime


def _insert(records: Sequence[AuditRecord]) -> Steps[None]:
    for start in range(0, len(records), _ROWS_PER_STATEMENT):
        chunk = records[start : start + _ROWS_PER_STATEMENT]
        values = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
        args: list[Any] = []
        for rec in chunk:
            args += [rec.tenant_id, rec.user_id, rec.action, rec.target]
            args += [rec.details, rec.request_id, c.as_utc(rec.at)]
        yield run(f"INSERT INTO audit_log ({_INSERT_COLS}) VALUES {values}", *args)


class AuditStorage:
    """The audit log's storage methods; mixed into ``SQLStorage`` (which supplies ``_run``)."""

    dialect: Any
    _run: Any  # SQLStorage._run

    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        if records:
            await self._run(_insert(records))

    async def list_audit(
        self,
        tenant_id: str,
        *,
        action: str | None = None,
        user_id: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[AuditEntry], str | None]:
        conds, args = ["tenant_id = ?"], [tenant_id]
        if action is not None:
            conds.append("action = ?")
            args.append(action)
        if user_id is not None:
            conds.append("user_id = ?")
            args.append(user_id)
        if cursor is not None:
            _, last = c.decode_cursor("audit", cursor)
            if not last.isdigit():
                raise ValueError(f"invalid cursor {cursor!r}")
            conds.append("id < ?")
            args.append(int(last))  # type: ignore[arg-type]
        found = await self._run(
            single(
                rows(
                    f"SELECT {AUDIT_COLS} FROM audit_log WHERE {' AND '.join(conds)}"
                    " ORDER BY id DESC LIMIT ?",
                    *args,
                    c.check_limit(limit) + 1,
                )
            ),
            "read",
        )
        entries = [self._entry(row) for row in found]
        if len(entries) <= limit:
            return entries, None
        page = entries[:limit]
        return page, c.encode_cursor("audit", None, str(page[-1].id))

    async def prune_audit(self, *, before: datetime, limit: int = 1000) -> int:
        deleted = await self._run(
            single(
                rows(
                    "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log"
                    " WHERE created_at < ? ORDER BY created_at LIMIT ?) RETURNING id",
                    *(c.as_utc(before), c.check_limit(limit)),
                )
            ),
            "autocommit",
        )
        return len(deleted)

    async def find_user_id_by_email(self, email: str) -> tuple[str, str] | None:
        found = await self._run(
            single(rows("SELECT id, tenant_id FROM users WHERE email = ?", email.strip().lower())),
            "read",
        )
        return (found[0][0], found[0][1]) if found else None

    def _entry(self, row: r.Row) -> AuditEntry:
        d = self.dialect
        return AuditEntry(
            id=int(row[0]),
            tenant_id=row[1],
            user_id=row[2],
            action=row[3],
            target=row[4],
            details=d.json_or_none(row[5]) or {},
            request_id=row[6],
            at=d.time(row[7]),
        )
