"""The server the interop matrix talks to: the product's auth contract plus scenario handlers.

Configured as the product is (``desk.sockets``): ``auth: {token}`` is verified with
``verify_token``, a bad one is refused with the ``AuthError`` message, and the socket joins
``tenant:{tenantId}``. The handlers below give each scenario something to observe:

    welcome          server -> tenant room, right after the connect is accepted
    echo             ack with the same arguments
    binary           bytes in an event: answered by a ``binary-back`` event and an ack, both with bytes
    ask-client       the server emits ``client-binary`` (bytes) with an ack and acks back what
                     the client acknowledged (bytes)
    kick-me          Socket.disconnect() from the server side
    /custom shout    a ``shouted`` event and an ack, upper-cased
"""

from __future__ import annotations

from typing import Any

import anyio
from _node import JS_DIR, require_node  # noqa: F401 (re-exported for the interop tests)

from desk.auth import AuthError, issue_token, verify_token
from engine import ConnectionRefused, EngineOptions, Socket, SocketServer

SECRET = "interop-secret-not-for-production"
SERVER_BYTES = b"\x00\xffserver"


def token_for(tenant: str, user: str = "u-interop") -> str:
    """Return a valid token for ``user`` in ``tenant``."""
    return issue_token(SECRET, user_id=user, tenant_id=tenant)


def auth_error_message(token: Any) -> str:
    """Return the exact message the server refuses ``token`` with."""
    try:
        verify_token(SECRET, token)
    except AuthError as exc:
        return str(exc)
    raise AssertionError(f"{token!r} is a valid token")


async def _welcome_when_connected(server: SocketServer, socket: Socket, tenant: str) -> None:
    # on_connect runs before the CONNECT reply; an emit from there would be dropped (see
    # test_engine_findings). The server accepts as soon as the handler returns, so this task
    # finds the socket connected at its first checkpoint or close to it.
    with anyio.move_on_after(5):
        while not socket.connected:
            if socket.session.closed:
                return
            await anyio.sleep(0.001)
        server.emit("welcome", {"tenantId": tenant, "socketId": socket.id}, to=f"tenant:{tenant}")


def build_server(options: EngineOptions | None = None) -> SocketServer:
    """Return a ``SocketServer`` with the product's auth and the scenario handlers."""
    server = SocketServer(
        options or EngineOptions(ping_interval=5.0, ping_timeout=5.0, connect_timeout=5.0)
    )

    async def authenticate(socket: Socket, auth: dict[str, Any] | None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            claims = verify_token(SECRET, token)
        except AuthError as exc:
            raise ConnectionRefused(str(exc)) from None
        socket.data["tenantId"] = claims.tenant_id
        socket.data["connectTransport"] = socket.transport
        socket.join(f"tenant:{claims.tenant_id}")
        if socket.namespace == "/":
            server.spawn(_welcome_when_connected, server, socket, claims.tenant_id)

    server.on_connect("/")(authenticate)
    server.on_connect("/custom")(authenticate)

    @server.on("echo")
    def echo(socket: Socket, *args: Any) -> tuple[Any, ...]:
        return args

    @server.on("binary")
    def binary(socket: Socket, blob: bytes, nested: dict[str, Any]) -> tuple[Any, ...]:
        socket.emit("binary-back", blob[::-1], {"inner": nested["inner"] + b"!"})
        return blob[::-1], {"length": len(blob)}

    @server.on("ask-client")
    async def ask_client(socket: Socket) -> dict[str, Any]:
        reply = await socket.call("client-binary", SERVER_BYTES, timeout=5)
        return {"clientReplied": reply[0]}

    @server.on("kick-me")
    def kick_me(socket: Socket) -> None:
        socket.disconnect()

    @server.on("shout", "/custom")
    def shout(socket: Socket, text: str) -> str:
        socket.emit("shouted", text.upper())
        return text.upper()

    return server
