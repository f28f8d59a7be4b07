"""Zapline's realtime engine: a Socket.IO v5 / Engine.IO v4 server on anyio.

What it offers:

* ``SocketServer``: the Socket.IO server (namespaces, handlers, ``emit``/``emit_many``, acks,
  rooms) on its own listener; ``Socket`` is one client in one namespace, ``Namespace`` its
  handlers, ``ConnectionRefused`` / ``AckTimeout`` its errors, ``ServerStats`` its counters.
* ``EngineIO``: the bare Engine.IO host under it (sessions over long-polling and websockets,
  heartbeat, upgrade) for any ``EngineApp``; ``EngineSession`` is one client of it.
* ``EngineOptions``: the settings; ``RoomHub``: room membership and the fan-out loop.
* ``EngineIO.add_http_route`` (``SocketServer.engine``): a plain HTTP route served on the
  same listener beside Engine.IO, a handler taking ``HttpRequest`` and answering
  ``HttpResponse`` (contract: ``engine/transport/_routes.py``).
* Alongside: ``engine.protocol`` (sans-IO codecs and state machines), ``engine.transport``
  (the listener), ``engine.broker`` with ``broker_memory`` / ``broker_redis`` (cross-node
  fan-out), ``engine.jobs`` (priority job queues), ``engine.group_commit``.
"""

from engine._engine import EngineApp, EngineIO
from engine._server import ConnectionRefused, Namespace, ServerStats, SocketServer
from engine._session import EngineSession
from engine._socket import AckTimeout, Socket
from engine.options import EngineOptions
from engine.rooms import RoomHub
from engine.transport._routes import HttpRequest, HttpResponse

__all__ = [
    "AckTimeout",
    "ConnectionRefused",
    "EngineApp",
    "EngineIO",
    "EngineOptions",
    "EngineSession",
    "HttpRequest",
    "HttpResponse",
    "Namespace",
    "RoomHub",
    "ServerStats",
    "Socket",
    "SocketServer",
]
