"""A transaction as a sequence of statements, written once for both databases (sans-IO).

A *steps* function is a generator: it yields a :class:`Query`, receives that query's result
(the first row or None, the list of rows, or None), decides what to run next, and returns
the transaction's result. It performs no I/O: each implementation drives it on its own
connection, inside one transaction (SQLite in its worker thread, PostgreSQL with awaits), so
the logic of a multi-statement write exists once, whatever runs it.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

T = TypeVar("T")

Fetch = Literal["one", "all", "none"]


@dataclass(frozen=True, slots=True)
class Query:
    """One statement: shared SQL with ``?`` placeholders, its arguments, what to fetch."""

    sql: str
    args: tuple[Any, ...]
    fetch: Fetch


Steps = Generator[Query, Any, T]
"""A transaction: yields queries, is sent each one's result, returns the outcome."""


def one(sql: str, *args: Any) -> Query:
    """Return a query whose result is its first row, or None."""
    return Query(sql, args, "one")


def rows(sql: str, *args: Any) -> Query:
    """Return a query whose result is the list of its rows."""
    return Query(sql, args, "all")


def run(sql: str, *args: Any) -> Query:
    """Return a query run for its effect; its result is None."""
    return Query(sql, args, "none")


def single(query: Query) -> Steps[Any]:
    """Return the steps of one query, whose outcome is that query's result."""
    return (yield query)
