"""``storage._text.encode_json``: the fast path writes what the walk-then-encode rule writes.

``encode_json`` encodes first and walks the value (``storable``) only when orjson refused it
(surrogates) or its text shows a NUL's escape; the result must always equal encoding the
walked value, for any text: NULs, lone surrogates, pairs, backslashes and the six characters
``\\u0000`` themselves.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from storage._text import REPLACEMENT, encode_json, storable

texts = st.text(
    alphabet=st.sampled_from(["a", "\x00", "\\", "u", "0", "\ud800", "\udfff", "\ud83d", "é"])
    | st.characters(),
    max_size=12,
)
values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=10,
)


@given(values)
def test_encode_json_is_the_walked_value_encoded(value: Any) -> None:
    assert encode_json(value) == orjson.dumps(storable(value)).decode()


def test_nul_and_surrogates_are_replaced_and_the_escape_text_kept() -> None:
    assert encode_json({"a": "x\x00y"}) == f'{{"a":"x{REPLACEMENT}y"}}'
    assert encode_json(["\ud800", "\ud83d\ude00"]) == f'["{REPLACEMENT}","\U0001f600"]'
    assert encode_json({"k": "\\u0000"}) == '{"k":"\\\\u0000"}'
