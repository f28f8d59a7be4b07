"""Sans-IO Engine.IO v4 and Socket.IO v5: text and bytes in, packets and events out.

What it offers:

* codecs: ``EioPacket`` (websocket frames ``encode_ws``/``decode_ws``, long-polling bodies
  ``encode_payload``/``decode_payload``), ``SioPacket`` (``encode_sio``, ``SioDecoder``);
* ``EioSession``: one client's Engine.IO session as a state machine (transport, heartbeat
  ``tick(now)``, probe and upgrade, poll payloads);
* ``SioConnection``: one client's Socket.IO namespaces as a state machine.

Nothing in this package does I/O, reads a clock or imports an async library; the transport
feeds it what it reads (and the time), and writes what it returns.
"""

from __future__ import annotations

from ._clients import takes_offsets
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
from ._eio_session import (
    ClientPing,
    EioSession,
    EioState,
    MessageReceived,
    PollRefused,
    SessionClosed,
    Tick,
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
    "ClientPing",
    "ConnectRequest",
    "DisconnectReceived",
    "EioPacket",
    "EioPacketType",
    "EioSession",
    "EioState",
    "EventReceived",
    "MessageReceived",
    "NeedData",
    "PollRefused",
    "ProtocolError",
    "SessionClosed",
    "SioConnection",
    "SioDecoder",
    "SioEvent",
    "SioPacket",
    "SioPacketType",
    "Tick",
    "decode_payload",
    "decode_ws",
    "encode_payload",
    "encode_sio",
    "encode_sio_str",
    "encode_ws",
    "open_packet",
    "takes_offsets",
]
