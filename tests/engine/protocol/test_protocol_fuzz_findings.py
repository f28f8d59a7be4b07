"""What fuzzing the protocol core found, as tests that fail until the core is fixed.

The protocol package is not this test's to change; each finding is a strict xfail with its
reason, so the fix flips it to a pass (and ``xfail_strict`` then asks for the marker to go).
"""

from __future__ import annotations

import pytest

from engine.protocol import SioDecoder, encode_sio


@pytest.mark.xfail(
    strict=True,
    raises=RecursionError,
    reason="encode_sio's binary walk (_deconstruct) recurses once per nesting level: a packet"
    " the decoder accepted, nested ~900 deep, raises RecursionError, not the documented"
    " TypeError (orjson's own limit is 254 levels)",
)
def test_a_deeply_nested_packet_the_decoder_accepts_encodes_or_raises_type_error() -> None:
    depth = 900
    packet = SioDecoder().feed('2["e",' + "[" * depth + "]" * depth + "]")
    assert packet is not None
    with pytest.raises(TypeError):
        encode_sio(packet)
