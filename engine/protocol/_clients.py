"""Which clients can take a recovery offset appended to their events (decided at handshake).

Socket.IO's connection state recovery appends each recoverable event's offset as its LAST
argument. The official JavaScript client (``socket.io-client`` 4.x, in browsers and in Node)
records it and passes it on as one more listener argument, harmless to a ``(payload) => ...``
listener. python-socketio's clients call handlers with every argument, so the extra one
makes a ``def handler(data)`` raise ``TypeError``: they must never get it.

The only clients we can tell apart are python-engineio's (under every python-socketio
client), by what its handshake request looks like:

* its query string is ``...transport=X&EIO=4`` (``transport`` before ``EIO``), where every
  engine.io-client puts ``EIO`` first;
* its timestamp ``t`` is ``str(time.time())``, a decimal float, where engine.io-client's is
  a short base-64-ish string that never holds a dot;
* its asyncio client's User-Agent is aiohttp's (``Python/3.11 aiohttp/3.x``), its sync
  client's polling is ``python-requests/2.x``; its sync websocket (websocket-client) sends no
  User-Agent at all, but the query rules above still hold for it.

Everything else (browsers, Node, unknown) takes offsets, as a socket.io server assumes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["takes_offsets"]

_PYTHON_AGENTS = ("aiohttp", "python-requests")
_DECIMAL = re.compile(r"[0-9]+\.[0-9]+")


def takes_offsets(headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
    """Whether the client of this Engine.IO handshake request can take recovery offsets.

    ``headers`` are the request's headers with lower-case names; ``query`` its query
    parameters in the order they appear (a plain dict built while parsing keeps it).
    Returns False for python-engineio clients, True for anything else. Raises nothing.
    """
    agent = headers.get("user-agent", "").lower()
    if any(name in agent for name in _PYTHON_AGENTS):
        return False
    if _DECIMAL.fullmatch(query.get("t", "")):
        return False
    keys = list(query)
    if "transport" in keys and "EIO" in keys and keys.index("transport") < keys.index("EIO"):
        return False
    return True
