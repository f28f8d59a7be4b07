"""Helpers both implementations share: passwords, cursors, clocks, argument checks.

Everything here except :func:`check_password` is pure and synchronous, so it is tested
without a database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import orjson

from ._records import DIRECTIONS, INBOX_STATES, MESSAGE_STATUSES, ROLES, STATUS_RANK

T = TypeVar("T")

# scrypt cost: ~16 MiB and a few tens of milliseconds per hash, the interactive-login
# setting recommended by the scrypt paper; stored in the hash so it can be raised later.
_SCRYPT_N: Final = 2**14
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
_SALT_BYTES: Final = 16
_KEY_BYTES: Final = 32


# The status ladder as SQL, valid in SQLite and PostgreSQL alike. Anything off the ladder
# ranks above FAILED so no status update or send result ever rewrites it.
def status_rank_sql(column: str) -> str:
    """The status ladder rank of ``column`` as SQL (off the ladder: above FAILED)."""
    return (
        f"(CASE {column} "
        + " ".join(f"WHEN '{name}' THEN {rank}" for name, rank in STATUS_RANK.items())
        + " ELSE 10 END)"
    )


STATUS_RANK_SQL: Final = status_rank_sql("status")

# The size of check_writable's probe row: more than a page (4 KiB by default in SQLite), so
# committing it needs free pages, not only room in a page that is already there.
WRITE_PROBE_BYTES: Final = 8192
WRITE_PROBE_KEY: Final = "zapline:write-probe"


def write_probe_value() -> str:
    """Return the value check_writable writes: the time, padded to WRITE_PROBE_BYTES."""
    return to_iso(utcnow()).ljust(WRITE_PROBE_BYTES, "-")


_ID_LOCK = threading.Lock()
_last_id_time = [0, 0]  # (milliseconds, counter) of the last id minted in this process


def new_id() -> str:
    """Return a fresh record id: 32 lower-case hex digits, ordered by creation (UUIDv7).

    48 bits of Unix milliseconds, a 12-bit counter that keeps the ids of one process strictly
    increasing within a millisecond (a clock step back reuses the last millisecond), 62 random
    bits. Messages sort by (timestamp, id): WhatsApp's timestamps are whole seconds, so a
    customer's burst in one second keeps the order it was stored in (ids used to be uuid4:
    such a burst came back shuffled).
    """
    with _ID_LOCK:
        ms, counter = time.time_ns() // 1_000_000, 0
        last_ms, last_counter = _last_id_time
        if ms <= last_ms:
            ms, counter = last_ms, last_counter + 1
            if counter > 0xFFF:
                ms, counter = last_ms + 1, 0
        _last_id_time[0], _last_id_time[1] = ms, counter
    random = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | random
    return f"{value:032x}"


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Return ``value`` converted to UTC; raise ValueError if it is naive."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"datetime {value!r} is naive; storage needs timezone-aware values")
    return value.astimezone(UTC)


def to_iso(value: datetime) -> str:
    """Return the fixed-width ISO-8601 UTC text form (sorts as text); raise ValueError if naive."""
    return as_utc(value).isoformat(timespec="microseconds")


def from_iso(text: str) -> datetime:
    """Return the aware UTC datetime stored as ``text``; raise ValueError if it is not one."""
    return as_utc(datetime.fromisoformat(text))


def hash_password(password: str) -> str:
    """Return a self-describing scrypt hash ``scrypt$n$r$p$salt$key`` of ``password``.

    Raises ValueError for an empty password. CPU-bound: call it off the event loop.
    """
    if not password:
        raise ValueError("password must not be empty")
    salt = os.urandom(_SALT_BYTES)
    key = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Return True if ``password`` matches ``stored`` (a :func:`hash_password` result).

    The comparison is constant-time; a malformed stored hash returns False, never raises.
    """
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(key)
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(actual, expected)


# Verified against when an email is unknown, so a miss costs as much time as a hit.
DUMMY_PASSWORD_HASH: Final = (
    f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}$" + "A" * 22 + "$" + "A" * 43
)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int = _KEY_BYTES) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=256 * n * r + 2**20
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_cursor(kind: str, at: datetime | None, row_id: str) -> str:
    """Return an opaque page cursor naming the last row seen (its sort time and id)."""
    payload = [kind, None if at is None else to_iso(at), row_id]
    return _b64(orjson.dumps(payload))


def decode_cursor(kind: str, cursor: str) -> tuple[datetime | None, str]:
    """Return ``(sort time, id)`` from a cursor made by :func:`encode_cursor` for ``kind``.

    Raises ValueError for anything else (garbage, tampering, a cursor of another list).
    """
    try:
        payload = orjson.loads(_unb64(cursor))
        tag, at, row_id = payload
        if tag != kind or not isinstance(row_id, str) or not row_id:
            raise ValueError
        return (None if at is None else from_iso(at)), row_id
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise ValueError(f"invalid cursor {cursor!r}") from None


def check_limit(limit: int) -> int:
    """Return ``limit`` if it is a positive int; raise ValueError otherwise."""
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    return limit


def check_role(role: str) -> str:
    """Return ``role`` if it is one of admin/agent/ops; raise ValueError otherwise."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {sorted(ROLES)}, got {role!r}")
    return role


def check_message(direction: str, status: str) -> None:
    """Raise ValueError unless ``direction`` and ``status`` are known values."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
    if status not in MESSAGE_STATUSES:
        raise ValueError(f"status must be one of {sorted(MESSAGE_STATUSES)}, got {status!r}")


def check_status_update(status: str) -> int:
    """Return the ladder rank of ``status``; raise ValueError if it is not on the ladder."""
    try:
        return STATUS_RANK[status]
    except KeyError:
        raise ValueError(f"status must be one of {sorted(STATUS_RANK)}, got {status!r}") from None


def check_inbox_state(state: str) -> str:
    """Return ``state`` if it is an inbox state; raise ValueError otherwise."""
    if state not in INBOX_STATES:
        raise ValueError(f"inbox state must be one of {list(INBOX_STATES)}, got {state!r}")
    return state


def check_bodies(bodies: Sequence[bytes]) -> list[bytes]:
    """Return ``bodies`` as a list of bytes; raise TypeError if any item is not bytes."""
    out = [bytes(b) for b in bodies if isinstance(b, bytes | bytearray | memoryview)]
    if len(out) != len(bodies):
        raise TypeError("inbox bodies must be bytes")
    return out


def normalize_email(email: str) -> str:
    """Return the stored form of ``email`` (trimmed, lower-case); raise ValueError if blank."""
    normal = email.strip().lower()
    if "@" not in normal:
        raise ValueError(f"not an email address: {email!r}")
    return normal


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (for error messages and logs)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        netloc = f"{parts.username or ''}:***@{host}"
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparsable url>"


async def check_password(password: str, stored: str | None) -> bool:
    """Return True if ``password`` matches ``stored``; a None ``stored`` costs the same time.

    Runs scrypt in a worker thread so the event loop keeps serving while it works.
    """
    target = DUMMY_PASSWORD_HASH if stored is None else stored
    ok = await anyio.to_thread.run_sync(verify_password, password, target)
    return ok and stored is not None


def binder(args: list[Any]) -> Callable[[object], str]:
    """Return a ``bind(value)`` that appends ``value`` to ``args`` and answers ``?``."""

    def bind(value: object) -> str:
        args.append(value)
        return "?"

    return bind


def conversation_filters(
    tenant_id: str,
    stage: str | None,
    assignee_id: str | None,
    cursor: str | None,
    bind: Callable[[object], str],
    *,
    visible_to: str | None = None,
) -> str:
    """Return the WHERE clause of a conversation page; ``bind`` adds a parameter.

    ``visible_to``: only conversations assigned to that user or unassigned.

    ``bind(value)`` returns the placeholder for ``value`` (see :func:`binder`). Raises
    ValueError for a bad cursor.
    """
    conds = [f"c.tenant_id = {bind(tenant_id)}"]
    if stage is not None:
        conds.append(f"c.stage = {bind(stage)}")
    if assignee_id is not None:
        conds.append(f"c.assignee_id = {bind(assignee_id)}")
    if visible_to is not None:
        conds.append(f"(c.assignee_id IS NULL OR c.assignee_id = {bind(visible_to)})")
    if cursor is not None:
        at, last_id = decode_cursor("conversations", cursor)
        # Keyset for "last_message_at DESC NULLS LAST, id ASC": rows after the cursor row.
        if at is None:
            conds.append(f"(c.last_message_at IS NULL AND c.id > {bind(last_id)})")
        else:
            conds.append(
                f"(c.last_message_at < {bind(at)} OR c.last_message_at IS NULL"
                f" OR (c.last_message_at = {bind(at)} AND c.id > {bind(last_id)}))"
            )
    return " AND ".join(conds)


def message_filters(
    tenant_id: str,
    conversation_id: str,
    before: str | None,
    bind: Callable[[object], str],
) -> str:
    """Return the WHERE clause of a message page (newest first); ``bind`` adds a parameter.

    Raises ValueError for a bad cursor.
    """
    conds = [f"m.tenant_id = {bind(tenant_id)}", f"m.conversation_id = {bind(conversation_id)}"]
    if before is not None:
        at, last_id = decode_cursor("messages", before)
        if at is None:
            raise ValueError(f"invalid cursor {before!r}")
        conds.append(f"(m.timestamp, m.id) < ({bind(at)}, {bind(last_id)})")
    return " AND ".join(conds)


def next_page(
    rows: list[T], limit: int, kind: str, key: Callable[[T], tuple[datetime | None, str]]
) -> tuple[list[T], str | None]:
    """Return ``rows[:limit]`` and a cursor after its last row if ``rows`` held more.

    Callers fetch ``limit + 1`` rows so "is there a next page" needs no second query.
    """
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    at, row_id = key(page[-1])
    return page, encode_cursor(kind, at, row_id)
