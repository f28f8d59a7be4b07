"""Versioned schema migrations, read from ``storage/migrations/<dialect>/NNNN_name.sql``.

A migration is applied at most once per database and recorded in ``schema_migrations``.
Files are never edited after release; a change to the schema is a new, higher-numbered file.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration: its version number, short name and SQL script."""

    version: int
    name: str
    sql: str


def load_migrations(dialect: str) -> list[Migration]:
    """Return the migrations of ``dialect`` ("sqlite" or "postgres"), by ascending version.

    Raises ValueError if two files share a version or a file name is malformed.
    """
    folder = resources.files("storage").joinpath("migrations", dialect)
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise ValueError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"two {dialect} migrations have version {version}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def split_sqlite_script(script: str) -> list[str]:
    """Return the statements of a SQLite script, one string each (comments kept).

    ``sqlite3.executescript`` would commit on its own; splitting lets the caller run every
    statement inside its own transaction. Raises ValueError if the script ends mid-statement.
    """
    statements: list[str] = []
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        # A ';' inside a string literal or a trigger body does not end the statement.
        if sqlite3.complete_statement(buffer):
            if _strip_comments(buffer).strip(" \t\r\n;"):
                statements.append(buffer.strip())
            buffer = ""
    if _strip_comments(buffer[:-1]).strip():
        raise ValueError("SQLite migration ends in the middle of a statement")
    return statements


def _strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
