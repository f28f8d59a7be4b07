"""The desk's Socket.IO contract on top of the engine: JWT auth, tenant/user rooms, joins.

Wire contract (DESIGN.md): handshake ``auth: {token}``; a bad token gets CONNECT_ERROR with a
clear message; on connect the socket joins ``tenant:{tenantId}`` and ``user:{userId}``;
``conversation:join`` / ``conversation:leave`` are checked against the user's tenant.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from desk import logcontext as logs
from desk.auth import AuthError, verify_token
from desk.contract import conversation_room, tenant_room, user_room
from engine import ConnectionRefused, Socket, SocketServer

log = logging.getLogger("desk.sockets")

# (tenant_id, conversation_id) -> does it exist in that tenant?
ConversationCheck = Callable[[str, str], Awaitable[bool]]


def attach_realtime(
    server: SocketServer, jwt_secret: str, conversation_exists: ConversationCheck | None
) -> None:
    """Register the contract's handlers on ``server``."""

    @server.on_connect("/")
    async def authenticate(socket: Socket, auth: dict[str, Any] | None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            claims = verify_token(jwt_secret, token)
        except AuthError as exc:
            raise ConnectionRefused(str(exc)) from None
        logs.socket_id.set(socket.id)
        logs.tenant_id.set(claims.tenant_id)
        socket.data["userId"] = claims.user_id
        socket.data["tenantId"] = claims.tenant_id
        socket.data["role"] = claims.role
        socket.join(tenant_room(claims.tenant_id))
        socket.join(user_room(claims.user_id))

    async def _checked_conversation(socket: Socket, conversation_id: Any) -> str | dict[str, Any]:
        logs.socket_id.set(socket.id)
        logs.tenant_id.set(socket.data.get("tenantId"))
        if isinstance(conversation_id, dict):
            conversation_id = conversation_id.get("conversationId") or conversation_id.get("id")
        if not isinstance(conversation_id, str) or not conversation_id:
            return {"ok": False, "error": "conversation id required"}
        if conversation_exists is not None and not await conversation_exists(
            socket.data["tenantId"], conversation_id
        ):
            log.info("socket %s denied conversation %s", socket.id, conversation_id)
            return {"ok": False, "error": "conversation not found"}
        return conversation_id

    @server.on("conversation:join")
    async def join(socket: Socket, conversation_id: Any = None) -> dict[str, Any]:
        checked = await _checked_conversation(socket, conversation_id)
        if isinstance(checked, dict):
            return checked
        socket.join(conversation_room(checked))
        return {"ok": True, "room": conversation_room(checked)}

    @server.on("conversation:leave")
    async def leave(socket: Socket, conversation_id: Any = None) -> dict[str, Any]:
        if isinstance(conversation_id, dict):
            conversation_id = conversation_id.get("conversationId") or conversation_id.get("id")
        if not isinstance(conversation_id, str):
            return {"ok": False, "error": "conversation id required"}
        socket.leave(conversation_room(conversation_id))
        return {"ok": True}
