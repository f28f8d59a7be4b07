"""What fuzzing the protocol core found, kept as tests now that the core is fixed."""

from __future__ import annotations

import pytest

from engine.protocol import SioDecoder, encode_sio


# encode_sio's binary walk recursed once per nesting level: a packet the decoder accepted,
# nested ~900 deep, raised RecursionError instead of the documented TypeError (and a
# RecursionError leaves CPython 3.11.7's ast module failing later in the same process).
def test_a_deeply_nested_packet_the_decoder_accepts_encodes_or_raises_type_error() -> None:
    depth = 900
    packet = SioDecoder().feed('2["e",' + "[" * depth + "]" * depth + "]")
    assert packet is not None
    with pytest.raises(TypeError):
        encode_sio(packet)
