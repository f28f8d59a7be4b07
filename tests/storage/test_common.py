"""Pure helpers: cursor codec, password hashing, URL redaction, migration loading."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage._common import (
    decode_cursor,
    encode_cursor,
    from_iso,
    hash_password,
    redact_url,
    to_iso,
    verify_password,
)
from storage._migrations import load_migrations, split_sqlite_script
from storage._text import REPLACEMENT, storable, storable_text

aware = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3)), timezone(timedelta(hours=9))]),
)


@given(at=st.none() | aware, row_id=st.text(min_size=1), kind=st.sampled_from(["a", "b"]))
def test_cursor_round_trip(at: datetime | None, row_id: str, kind: str) -> None:
    cursor = encode_cursor(kind, at, row_id)
    assert cursor.isascii() and "=" not in cursor
    assert decode_cursor(kind, cursor) == (at, row_id)
    other = "b" if kind == "a" else "a"
    with pytest.raises(ValueError):
        decode_cursor(other, cursor)


@given(garbage=st.text())
def test_cursor_decoding_never_crashes(garbage: str) -> None:
    try:
        decode_cursor("a", garbage)
    except ValueError:
        pass


@given(a=aware, b=aware)
def test_iso_text_sorts_like_time(a: datetime, b: datetime) -> None:
    assert from_iso(to_iso(a)) == a
    assert (to_iso(a) < to_iso(b)) == (a < b)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        to_iso(datetime(2024, 1, 1))


def test_password_hash_is_salted_and_verifies() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$")
    assert verify_password("correct horse", first) and verify_password("correct horse", second)
    assert not verify_password("correct horsE", first)
    assert not verify_password("x", "not-a-hash") and not verify_password("x", "md5$1$2$3$4$5")
    with pytest.raises(ValueError):
        hash_password("")


def test_redact_url() -> None:
    assert redact_url("postgresql://u:secret@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert redact_url("postgresql://u@db/x") == "postgresql://u@db/x"


def test_migrations_load_in_order_for_both_dialects() -> None:
    # Versions ascend and both dialects have the same ones; a number may be left free for a
    # migration another branch brings (0005 is reserved for inbox pruning).
    versions = {}
    for dialect in ("sqlite", "postgres"):
        migrations = load_migrations(dialect)
        versions[dialect] = [m.version for m in migrations]
        assert versions[dialect] == sorted(set(versions[dialect]))
        assert migrations[0].version == 1
        assert migrations[0].name == "initial"
    assert versions["sqlite"] == versions["postgres"]


def test_split_sqlite_script_respects_literals_and_comments() -> None:
    script = "-- header;\nCREATE TABLE a (x TEXT DEFAULT ';');\n\nINSERT INTO a VALUES ('b;c');\n"
    assert split_sqlite_script(script) == [
        "-- header;\nCREATE TABLE a (x TEXT DEFAULT ';');",
        "INSERT INTO a VALUES ('b;c');",
    ]
    with pytest.raises(ValueError):
        split_sqlite_script("INSERT INTO a VALUES ('unterminated")


@given(st.text())
def test_storable_text_is_utf8_without_nul_and_keeps_what_is_valid(text: str) -> None:
    out = storable_text(text)
    out.encode("utf-8")  # never raises: no surrogate is left
    assert "\x00" not in out and storable_text(out) == out
    if "\x00" not in text:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            assert out == text


def test_storable_walks_parameters_and_json() -> None:
    assert storable(("\x00", [b"\x00", {"\x00": ("\ud800", 1, None)}])) == (
        REPLACEMENT,
        [b"\x00", {REPLACEMENT: (REPLACEMENT, 1, None)}],
    )
    pair = "\ud83d\ude00"  # a surrogate pair in a Python str: joined, not replaced
    assert storable_text(f"a\x00{pair}\udc00") == f"a{REPLACEMENT}\U0001f600{REPLACEMENT}"


def test_ids_are_unique_and_increase_in_creation_order() -> None:
    from storage._common import new_id

    ids = [new_id() for _ in range(5000)]  # many within one millisecond
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >> 76 & 0xF == 7 for i in ids)  # UUIDv7 layout
