"""The engine's listener: bytes on sockets in, bytes on sockets out.

What it offers: ``_listener`` (a TCP listener with a connection cap and ``ListenerStats``),
``_http`` (HTTP/1.1 long-polling and the websocket upgrade, parsed by h11), ``_websocket``
(an upgraded connection, frames parsed by wsproto), ``_frames`` (prebuilt server frames
shared by every recipient), ``_outbox`` (the bounded per-connection write path), ``_reactor``
(one task reading every websocket), ``_routes`` (plain HTTP routes mounted beside Engine.IO:
the handler contract) and ``_host`` (the ``EngineHost`` contract: what the
listener asks of the Engine.IO server above it). Nothing here imports the server.
"""
