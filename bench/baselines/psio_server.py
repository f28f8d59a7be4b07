"""Baseline: the Zapline bench contract served by python-socketio's AsyncServer on Hypercorn.

What it does, on one port (ASGI, uvloop when installed):
- Socket.IO at /socket.io/: CONNECT needs auth {"token": JWT} (HS256, env JWT_SECRET, claims
  sub/tenantId); a good token joins rooms tenant:{tenantId} and user:{sub}, a bad one gets a
  CONNECT_ERROR.
- POST /webhooks/whatsapp: parses the WhatsApp Cloud API body, maps metadata.phone_number_id
  to a tenant with the JSON map {phone_number_id: tenant_id} in the file named by env
  BENCH_TENANT_MAP, and emits to tenant:{id}, for every inbound message, ``conversation:new``
  (first message of a contact), ``message:new`` and ``conversation:updated`` with the same
  payload shapes as Zapline, then answers 200.
- GET /healthz: 200.

What it does not do, so it is a floor for Zapline's cost, not a like-for-like product: no
durable storage (nothing is written anywhere, a crash loses everything), no inbox or queue
(the emit happens inside the webhook request), no signature check, no idempotency on
WhatsApp message ids, no statuses or outbound sends, no REST API. It adds no artificial
delay either: every figure it gives is python-socketio's and Hypercorn's own.

Run: ``python -m bench.baselines.psio_server --host 127.0.0.1 --port 3340``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import jwt
import orjson
import socketio
from hypercorn.asyncio import serve
from hypercorn.config import Config

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_NS = uuid.UUID("5f0c2a4e-6d1b-4f7e-9b1a-0a2b3c4d5e6f")


class Baseline:
    """The baseline app: ``asgi`` is the ASGI callable serving Socket.IO and the HTTP routes."""

    def __init__(self, secret: str, tenant_of: dict[str, str]) -> None:
        self.secret = secret
        self.tenant_of = tenant_of
        self.sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")
        self.sio.on("connect", self._on_connect)
        self.asgi = socketio.ASGIApp(self.sio, other_asgi_app=self._http)
        self._conversations: set[str] = set()

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str):
            raise socketio.exceptions.ConnectionRefusedError("missing auth token")
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"])
        except jwt.PyJWTError as exc:
            raise socketio.exceptions.ConnectionRefusedError(f"invalid token: {exc}") from exc
        await self.sio.enter_room(sid, f"tenant:{claims['tenantId']}")
        await self.sio.enter_room(sid, f"user:{claims['sub']}")

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                await send({"type": event["type"] + ".complete"})
                if event["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/healthz" and method == "GET":
            await _respond(send, 200, b'{"status":"ok"}')
        elif path == "/webhooks/whatsapp" and method == "POST":
            body = bytearray()
            while True:
                event = await receive()
                body += event.get("body", b"")
                if not event.get("more_body"):
                    break
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError:
                await _respond(send, 400, b'{"error":"body is not JSON"}')
                return
            await self._webhook(payload)
            await _respond(send, 200, b'{"status":"ok"}')
        else:
            await _respond(send, 404, b'{"error":"not found"}')

    async def _webhook(self, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        for entry in payload.get("entry") or []:
            for change in entry.get("changes") or []:
                value = change.get("value") or {}
                pnid = (value.get("metadata") or {}).get("phone_number_id")
                tenant = self.tenant_of.get(str(pnid))
                if tenant is None:
                    continue
                names = {
                    c.get("wa_id"): (c.get("profile") or {}).get("name")
                    for c in value.get("contacts") or []
                }
                for msg in value.get("messages") or []:
                    await self._inbound(tenant, msg, names.get(msg.get("from")))

    async def _inbound(self, tenant: str, msg: dict[str, Any], name: str | None) -> None:
        wa_id = str(msg.get("from"))
        conversation_id = str(uuid.uuid5(_NS, f"{tenant}:{wa_id}"))
        contact = {
            "id": str(uuid.uuid5(_NS, f"contact:{tenant}:{wa_id}")),
            "phoneNumber": wa_id,
            "name": name,
        }
        ts = datetime.fromtimestamp(int(msg.get("timestamp") or 0), UTC).isoformat()
        kind = str(msg.get("type", "text"))
        content = (msg.get("text") or {}).get("body", "") if kind == "text" else ""
        room = f"tenant:{tenant}"
        if conversation_id not in self._conversations:
            self._conversations.add(conversation_id)
            conversation = {"id": conversation_id, "contact": contact, "status": "OPEN"}
            await self.sio.emit("conversation:new", {"conversation": conversation}, to=room)
        message = {
            "id": str(uuid.uuid4()),
            "whatsappMessageId": msg.get("id"),
            "direction": "INBOUND",
            "type": kind.upper(),
            "content": content,
            "metadata": {},
            "status": "DELIVERED",
            "timestamp": ts,
            "contact": contact,
        }
        await self.sio.emit(
            "message:new", {"conversationId": conversation_id, "message": message}, to=room
        )
        update = {"conversationId": conversation_id, "lastMessage": content, "lastMessageAt": ts}
        await self.sio.emit("conversation:updated", update, to=room)


async def _respond(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _tenant_map() -> dict[str, str]:
    map_file = os.environ.get("BENCH_TENANT_MAP")
    if not map_file:
        return {}
    with open(map_file, encoding="utf-8") as f:
        return {str(k): str(v) for k, v in json.load(f).items()}


async def _main(host: str, port: int, tenant_of: dict[str, str]) -> None:
    app = Baseline(os.environ.get("JWT_SECRET", "dev-secret"), tenant_of)
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.backlog = 1024
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(app.asgi, config, shutdown_trigger=stop.wait)


def main(argv: list[str] | None = None) -> None:
    """Serve the baseline until SIGTERM/SIGINT; returns None. Raises OSError if the port is taken."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3340)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_main(args.host, args.port, _tenant_map()))
    else:
        uvloop.run(_main(args.host, args.port, _tenant_map()))


if __name__ == "__main__":
    main()
