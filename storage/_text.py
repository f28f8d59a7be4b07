"""Values both databases can store: the one rule applied to everything on its way in.

PostgreSQL refuses two things Python strings may hold: the NUL character (``text`` and
``jsonb`` alike: "invalid byte sequence for encoding UTF8: 0x00") and lone surrogates
(U+D800..U+DFFF without a partner), which have no UTF-8 form at all; SQLite's driver refuses
the surrogates too. WhatsApp forwards whatever a customer's phone sent, so either can arrive
in a message, a contact name or a JSON value, and refusing the write would lose the message.

Both implementations pass every parameter through :func:`storable` at their driver seam (a
connection subclass) and encode JSON with :func:`encode_json`, so they store the same text:
each NUL and each lone surrogate becomes U+FFFD (the replacement character), a surrogate
pair becomes the character it encodes, and everything else is kept as is. Bytes (the raw
webhook bodies in the inbox) are never touched.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import orjson

REPLACEMENT: Final = "\ufffd"

T = TypeVar("T")


def storable_text(text: str) -> str:
    """Return ``text`` with each NUL and lone surrogate replaced by U+FFFD (see module)."""
    if text.isascii():
        return text.replace("\x00", REPLACEMENT) if "\x00" in text else text
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Through UTF-16: a valid pair is joined into its character, a lone half replaced.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def storable(value: T) -> T:
    """Return ``value`` with every string in it made storable by :func:`storable_text`.

    Walks lists, tuples and dicts (keys and values), the shapes of query parameters and
    JSON documents; any other value (bytes, numbers, datetimes, None) is returned as is.
    """
    result: Any
    if isinstance(value, str):
        result = storable_text(value)
    elif isinstance(value, dict):
        result = {storable(k): storable(v) for k, v in value.items()}
    elif isinstance(value, list):
        result = [storable(v) for v in value]
    elif isinstance(value, tuple):
        result = tuple(storable(v) for v in value)
    else:
        result = value
    return result  # type: ignore[no-any-return]


def encode_json(value: Any) -> str:
    """Return the JSON text of ``value`` (orjson) after :func:`storable`; both dialects use it.

    Raises TypeError (orjson.JSONEncodeError) for a value JSON cannot hold.
    """
    # Most values hold neither: orjson itself refuses surrogates, and writes a NUL as the
    # escape \u0000, so its text needs the walk only when it refused or shows that escape
    # (or the six characters themselves, escaped as \\u0000: the walk is then merely
    # unneeded). timeit, a message:new payload: 0.6 us instead of 8 us.
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        return orjson.dumps(storable(value)).decode()
    if "\\u0000" in text:
        return orjson.dumps(storable(value)).decode()
    return text
