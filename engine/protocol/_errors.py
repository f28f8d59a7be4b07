"""The one exception the protocol core raises.

Decoders turn every kind of malformed input into :class:`ProtocolError`, so a listener can
wrap a read in a single ``except ProtocolError`` and close the session. Encoders raise it
for packets that cannot be put on the wire faithfully (a namespace containing a comma, a
negative ack id, binary data on a packet type that cannot carry it).
"""

from __future__ import annotations

__all__ = ["ProtocolError"]


class ProtocolError(ValueError):
    """Input or output that breaks the Engine.IO v4 / Socket.IO v5 wire format.

    The message says what was wrong and, where it helps, where. The session that produced
    it should be closed: the protocols have no way to resynchronise after a bad packet.
    """
