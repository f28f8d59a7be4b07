"""Where the two SQL dialects differ, and nothing else: the seam the shared SQL goes through.

Statements are written once (``_statements.py``, ``_sql_storage.py``) with ``?``
placeholders, in SQL both databases accept. A :class:`Dialect` then says what differs:

- placeholders: SQLite takes ``?`` as written; PostgreSQL numbers them ``$1, $2, ...``.
- stored forms: SQLite keeps times as fixed-width ISO-8601 text and JSON as text (its
  connection converts parameters on the way in, ``_sqlite_driver.py``); PostgreSQL keeps
  timestamptz and jsonb, which asyncpg hands back as datetimes and (by our codec) objects.
- a set of ids bound as ONE parameter: ``json_each`` over a JSON array, or ``ANY`` of an array.
- row locks: ``FOR UPDATE`` on PostgreSQL; SQLite's write transaction holds the database.

Nothing here imports a database driver, so the SQLite path never loads asyncpg.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Final

import orjson

from ._common import from_iso


@dataclass(frozen=True, slots=True)
class Dialect:
    """What one database does differently from the shared SQL."""

    name: str
    sql: Callable[[str], str]
    """The statement as this database takes it (placeholders)."""
    time: Callable[[Any], datetime]
    """A stored timestamp, as an aware UTC datetime."""
    json: Callable[[Any], Any]
    """A stored JSON document, as Python values."""
    in_id_set: str
    """``<column> {in_id_set}`` is true for the ids of a list bound as one parameter."""
    for_update: str = ""
    """Appended to a SELECT whose row the transaction then rewrites: PostgreSQL locks it
    (READ COMMITTED lets a racing writer in otherwise); SQLite's write transaction already
    holds the database."""

    def json_or_none(self, value: Any) -> Any:
        """Return :attr:`json` of ``value``, or None for SQL NULL."""
        return None if value is None else self.json(value)


@lru_cache(maxsize=1024)
def numbered(sql: str) -> str:
    """Return ``sql`` with its ``?`` placeholders numbered ``$1, $2, ...`` (PostgreSQL's).

    A ``?`` inside a quoted literal or identifier is left alone.
    """
    out: list[str] = []
    count, quote = 0, ""
    for char in sql:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "?":
            count += 1
            out.append(f"${count}")
            continue
        out.append(char)
    return "".join(out)


def _same(value: Any) -> Any:
    return value


SQLITE: Final = Dialect(
    name="sqlite",
    sql=_same,
    time=from_iso,
    json=orjson.loads,
    in_id_set="IN (SELECT value FROM json_each(?))",
)
POSTGRES: Final = Dialect(
    name="postgres",
    sql=numbered,
    time=_same,
    json=_same,
    in_id_set="= ANY(CAST(? AS bigint[]))",
    for_update=" FOR UPDATE",
)
