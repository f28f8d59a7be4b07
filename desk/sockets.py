"""The desk's Socket.IO contract on top of the engine: JWT auth, tenant/user rooms, joins.

Wire contract (DESIGN.md): handshake ``auth: {token}``; a bad token gets CONNECT_ERROR with a
clear message; on connect the socket joins ``tenant:{tenantId}`` and ``user:{userId}``;
``conversation:join`` / ``conversation:leave`` are checked against the user's tenant. With a
``desk.resume.Resumer``, connects get a recovery pid and reconnects their missed events.
"""

from __future__ import annotations

import inspect
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from desk import logcontext as logs
from desk.audit import AuditSink
from desk.auth import AuthError, verify_token
from desk.contract import conversation_room, tenant_room, user_room
from desk.live import LiveDesk
from desk.permissions import may_see, sees_everything, supervisors_room
from desk.ratelimit import RateLimiter
from desk.reads import Reads
from desk.resume import Resumer
from engine import ConnectionRefused, Socket, SocketServer
from storage import Conversation

log = logging.getLogger("desk.sockets")

# (tenant_id, user_id, role, conversation_id) -> may that user see that conversation?
ConversationCheck = Callable[[str, str, str, str], Awaitable[bool]]
# user id -> the name other agents see (None when unknown)
UserName = Callable[[str], Awaitable[str | None]]
Handler = Callable[..., Any]
# (tenant_id, user_id, role, conversation_id, assignee_id[, expected_version=]) -> the ack
# of conversation:assign
Assign = Callable[..., Awaitable[dict[str, Any]]]


def attach_realtime(
    server: SocketServer,
    jwt_secret: str,
    conversation_visible: ConversationCheck | None,
    *,
    live: LiveDesk | None = None,
    user_name: UserName | None = None,
    limits: RateLimiter | None = None,
    agent_sees: str = "assigned_and_unassigned",
    assign: Assign | None = None,
    resume: Resumer | None = None,
    audit: AuditSink | None = None,
    reads: Reads | None = None,
) -> None:
    """Register the contract's handlers on ``server``.

    With ``resume``, every connect goes through ``Resumer.connect`` (connection state
    recovery from the event log, ``desk.resume``).

    ``conversation_visible`` decides every ``conversation:join`` (``desk.permissions``);
    sockets that see every conversation of their tenant also join ``tenant:{id}:all``.

    With ``live``, sockets also drive presence, viewers and typing (``desk.live``);
    ``user_name(user_id)`` gives the name shown to the other agents. With ``limits``, every
    client event is rate-limited (``desk.ratelimit``): over the limit it is dropped with
    ``error {code: 'rate_limited', retryAfterMs}`` to that socket, and a socket that keeps
    flooding is disconnected.

    Every client event is served under a request id of its own (``desk.logcontext``), which
    its log lines and audit rows carry. With ``audit``, a denied join and a disconnect for
    flooding are recorded there.

    With ``reads``, ``conversation:read {conversationId, messageId?}`` moves the agent's read
    position (ack ``{ok, unreadCount}``) and every socket counts its agent's unread messages
    (``desk.unread``: ``unread:update`` to ``user:{id}``).
    """

    def on(event: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            server.on(event)(_traced(_limited(fn) if limits is not None else fn))
            return fn

        return register

    def _traced(fn: Handler) -> Handler:
        async def handler(socket: Socket, *args: Any) -> Any:
            logs.request_id.set(uuid.uuid4().hex)
            logs.socket_id.set(socket.id)
            logs.tenant_id.set(socket.data.get("tenantId"))
            result = fn(socket, *args)
            return await result if inspect.isawaitable(result) else result

        return handler

    def _limited(fn: Handler) -> Handler:
        assert limits is not None

        async def handler(socket: Socket, *args: Any) -> Any:
            wait, flood = limits.client_event(socket.id, str(socket.data.get("userId")))
            if not wait:
                result = fn(socket, *args)
                return await result if inspect.isawaitable(result) else result
            retry_ms = max(1, math.ceil(wait * 1000))
            if flood:
                log.warning("socket %s disconnected for flooding", socket.id)
                if audit is not None:
                    audit.record(
                        socket.data.get("tenantId"),
                        socket.data.get("userId"),
                        "rate_limit_disconnect",
                        f"socket:{socket.id}",
                        {"retryAfterMs": retry_ms},
                    )
                socket.emit("error", {"code": "flooding", "message": "too many events"})
                socket.disconnect()
                return None
            socket.emit("error", {"code": "rate_limited", "retryAfterMs": retry_ms})
            return {"ok": False, "error": "rate_limited", "retryAfterMs": retry_ms}

        return handler

    if limits is not None:

        @server.on_any("/")
        async def unknown(socket: Socket, event: str, *args: Any) -> None:
            # Events nobody handles still cost a flooder tokens (and its connection).
            await _traced(_limited(lambda _socket, *_: None))(socket, *args)

        @server.on_disconnect("/")
        def forget(socket: Socket, reason: str) -> None:
            limits.forget_socket(socket.id)

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
        rooms = [tenant_room(claims.tenant_id), user_room(claims.user_id)]
        if sees_everything(claims.role, agent_sees):
            rooms.append(supervisors_room(claims.tenant_id))
        if resume is None:
            for room in rooms:
                socket.join(room)
        else:
            auth_data = auth if isinstance(auth, dict) else None
            await resume.connect(
                socket, claims.tenant_id, claims.user_id, claims.role, rooms, auth_data
            )
        if live is not None:
            live.connected(socket.id, claims.tenant_id, claims.user_id)
        if reads is not None:
            reads.unread.register(claims.tenant_id, claims.user_id, claims.role)

    async def _checked_conversation(socket: Socket, conversation_id: Any) -> str | dict[str, Any]:
        logs.socket_id.set(socket.id)
        logs.tenant_id.set(socket.data.get("tenantId"))
        if isinstance(conversation_id, dict):
            conversation_id = conversation_id.get("conversationId") or conversation_id.get("id")
        if not isinstance(conversation_id, str) or not conversation_id:
            return {"ok": False, "error": "conversation id required"}
        if conversation_visible is not None and not await conversation_visible(
            socket.data["tenantId"], socket.data["userId"], socket.data["role"], conversation_id
        ):
            log.info(
                "socket %s (user %s) denied conversation %s",
                socket.id,
                socket.data["userId"],
                conversation_id,
            )
            if audit is not None:
                audit.record(
                    socket.data["tenantId"],
                    socket.data["userId"],
                    "join_denied",
                    f"conversation:{conversation_id}",
                    {"reason": "conversation not found", "socketId": socket.id},
                )
            return {"ok": False, "error": "conversation not found"}
        return conversation_id

    @on("conversation:join")
    async def join(socket: Socket, conversation_id: Any = None) -> dict[str, Any]:
        checked = await _checked_conversation(socket, conversation_id)
        if isinstance(checked, dict):
            return checked
        socket.join(conversation_room(checked))
        if resume is not None:
            resume.joined(socket, conversation_room(checked))
        if live is not None:
            # Names are looked up when first shown (to the other viewers), not at connect:
            # a connect stays free of storage reads.
            user_id = live.needs_name(socket.id)
            if user_id is not None and user_name is not None:
                live.set_name(socket.id, await user_name(user_id))
            live.joined(socket.id, checked)
        return {"ok": True, "room": conversation_room(checked)}

    @on("conversation:leave")
    async def leave(socket: Socket, conversation_id: Any = None) -> dict[str, Any]:
        if isinstance(conversation_id, dict):
            conversation_id = conversation_id.get("conversationId") or conversation_id.get("id")
        if not isinstance(conversation_id, str):
            return {"ok": False, "error": "conversation id required"}
        socket.leave(conversation_room(conversation_id))
        if resume is not None:
            resume.left(socket, conversation_room(conversation_id))
        if live is not None:
            live.left(socket.id, conversation_id)
        return {"ok": True}

    if assign is not None:

        @on("conversation:assign")
        async def assign_conversation(socket: Socket, body: Any = None) -> dict[str, Any]:
            if not isinstance(body, dict) or "assigneeId" not in body:
                return {"ok": False, "error": "expected {conversationId, assigneeId}"}
            data = socket.data
            return await assign(
                data["tenantId"],
                data["userId"],
                data["role"],
                body.get("conversationId"),
                body["assigneeId"],
                # Checked by desk.conversations.check_version, as PATCH checks it.
                expected_version=body.get("expectedVersion"),
            )

    if resume is not None:

        @server.on_disconnect("/")
        def ended(socket: Socket, reason: str) -> None:
            resume.disconnected(socket)

    if reads is not None:

        @on("conversation:read")
        async def read_conversation(socket: Socket, body: Any = None) -> dict[str, Any]:
            if isinstance(body, str):
                body = {"conversationId": body}
            if not isinstance(body, dict):
                return {"ok": False, "error": "expected {conversationId, messageId?}"}
            data = socket.data
            return await reads.read(
                data["tenantId"],
                data["userId"],
                data["role"],
                body.get("conversationId"),
                body.get("messageId"),
            )

    if live is None:
        return

    @server.on_disconnect("/")
    def gone(socket: Socket, reason: str) -> None:
        live.disconnected(socket.id)

    def typing(is_typing: bool) -> Callable[[Socket, Any], dict[str, Any]]:
        def handler(socket: Socket, body: Any = None) -> dict[str, Any]:
            conversation_id = _conversation_id(body)
            if conversation_id is None:
                return {"ok": False, "error": "conversationId required"}
            if not live.typing(socket.id, conversation_id, is_typing):
                return {"ok": False, "error": "join the conversation first"}
            return {"ok": True}

        return handler

    on("typing:start")(typing(True))
    on("typing:stop")(typing(False))

    @on("presence:set")
    def set_presence(socket: Socket, body: Any = None) -> dict[str, Any]:
        status = body.get("status") if isinstance(body, dict) else body
        if not isinstance(status, str) or not live.set_status(socket.id, status):
            return {"ok": False, "error": "status must be 'online' or 'away'"}
        return {"ok": True}


def evict_unpermitted(
    server: SocketServer,
    conversation: Conversation,
    agent_sees: str,
    live: LiveDesk | None = None,
) -> int:
    """Take ``conversation:{id}`` from this node's sockets that may no longer see it.

    Called after an assignment changed (they stop viewing it too); returns how many left.
    """
    return evict_from_room(server, conversation.id, conversation.assignee_id, agent_sees, live)


def evict_from_room(
    server: SocketServer,
    conversation_id: str,
    assignee_id: str | None,
    agent_sees: str,
    live: LiveDesk | None = None,
) -> int:
    """``evict_unpermitted`` by ids (another node's assignment reaches this one so)."""
    room = conversation_room(conversation_id)
    evicted = 0
    for socket in list(server.rooms.members("/", room)):
        data = socket.data
        if not may_see(data["role"], data["userId"], assignee_id, agent_sees):
            socket.leave(room)
            if live is not None:
                live.left(socket.id, conversation_id)
            evicted += 1
    return evicted


def _conversation_id(body: Any) -> str | None:
    if isinstance(body, dict):
        body = body.get("conversationId")
    return body if isinstance(body, str) and body else None
