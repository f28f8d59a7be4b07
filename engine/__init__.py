"""Zapline's realtime engine: a Socket.IO v5 / Engine.IO v4 server on anyio.

Public surface::

    SocketServer, EngineOptions, Socket, ConnectionRefused, AckTimeout, RoomHub
"""

from engine._server import ConnectionRefused, Namespace, ServerStats, SocketServer
from engine._socket import AckTimeout, Socket
from engine.options import EngineOptions
from engine.rooms import RoomHub

__all__ = [
    "AckTimeout",
    "ConnectionRefused",
    "EngineOptions",
    "Namespace",
    "RoomHub",
    "ServerStats",
    "Socket",
    "SocketServer",
]
