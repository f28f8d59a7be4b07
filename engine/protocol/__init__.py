"""Sans-IO Engine.IO v4 and Socket.IO v5: text and bytes in, packets and events out.

Nothing in this package does I/O, reads a clock or imports an async library; the transport
feeds it what it reads and writes what it returns.
"""

from __future__ import annotations

from ._connection import (
    NEED_DATA,
    AckReceived,
    ConnectRequest,
    DisconnectReceived,
    EventReceived,
    NeedData,
    SioConnection,
    SioEvent,
)
from ._engineio import (
    NOOP,
    PING_PROBE,
    PING_WS,
    PONG_PROBE,
    EioPacket,
    EioPacketType,
    decode_payload,
    decode_ws,
    encode_payload,
    encode_ws,
    open_packet,
)
from ._errors import ProtocolError
from ._socketio import SioDecoder, SioPacket, SioPacketType, encode_sio, encode_sio_str

__all__ = [
    "NEED_DATA",
    "NOOP",
    "PING_PROBE",
    "PING_WS",
    "PONG_PROBE",
    "AckReceived",
    "ConnectRequest",
    "DisconnectReceived",
    "EioPacket",
    "EioPacketType",
    "EventReceived",
    "NeedData",
    "ProtocolError",
    "SioConnection",
    "SioDecoder",
    "SioEvent",
    "SioPacket",
    "SioPacketType",
    "decode_payload",
    "decode_ws",
    "encode_payload",
    "encode_sio",
    "encode_sio_str",
    "encode_ws",
    "open_packet",
]
