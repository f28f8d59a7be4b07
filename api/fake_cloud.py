"""A local stand-in for the WhatsApp Cloud API, speaking real HTTP on loopback.

It accepts sends and mark-as-read calls the way Graph does (same paths, bearer token, error
shape), remembers them for tests, can be told to fail the next N sends, serves and accepts media
(``api.fake_cloud_media``), and, given a webhook URL, plays WhatsApp's part
afterwards: it posts ``sent``, ``delivered`` and ``read`` status webhooks for each accepted
message, in that order, signed like Meta signs them. Asyncio only (Quart on Hypercorn).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import orjson
import quart
from anyio.abc import TaskStatus

from api.fake_cloud_media import add_media_routes
from api.serve import serve_app
from desk.whatsapp import SIGNATURE_HEADER, new_wamid, sign, status_webhook

__all__ = ["create_fake_app", "serve_fake"]

# Seconds a "statuses first" send waits after posting its statuses before it answers.
STATUSES_FIRST_LEAD = 0.3

log = logging.getLogger("zapline.fake_whatsapp")

_TITLES = {
    100: "Invalid parameter",
    190: "Invalid OAuth access token",
    130429: "Rate limit hit",
    131000: "Something went wrong",
    131026: "Message undeliverable",
    131047: "Re-engagement message",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
}
_SENDABLE = {
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "reaction",
    "contacts",
    "interactive",
    "template",
}


def _error(status: int, code: int, details: str, *, kind: str = "OAuthException") -> quart.Response:
    title = _TITLES.get(code, "Fake failure")
    body = {
        "error": {
            "message": f"(#{code}) {title}",
            "type": kind,
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": uuid.uuid4().hex[:16],
        }
    }
    return quart.Response(orjson.dumps(body), status=status, content_type="application/json")


def _invalid_send(body: Any) -> str | None:
    """Return why a send request body would be refused, or None when it is acceptable."""
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    if body.get("messaging_product") != "whatsapp":
        return "messaging_product must be 'whatsapp'"
    if not isinstance(body.get("to"), str) or not body["to"]:
        return "'to' must be a non-empty string"
    kind = body.get("type", "text")
    if kind not in _SENDABLE:
        return f"type {kind!r} is not supported"
    part = body.get(kind)
    if not part:
        return f"a {kind} message needs a '{kind}' object"
    if kind == "text" and not (
        isinstance(part, dict) and isinstance(part.get("body"), str) and part["body"]
    ):
        return "text.body must be a non-empty string"
    if kind in ("image", "video", "audio", "document", "sticker") and not (
        isinstance(part, dict) and (part.get("link") or part.get("id"))
    ):
        return f"{kind} needs 'link' or 'id'"
    if kind == "location" and not (
        isinstance(part, dict) and "latitude" in part and "longitude" in part
    ):
        return "location needs 'latitude' and 'longitude'"
    return None


def _mark_read(state: _FakeState, phone_number_id: str, body: dict[str, Any]) -> quart.Response:
    """A mark-as-read call: ``{"messaging_product", "status": "read", "message_id"}``."""
    if body.get("messaging_product") != "whatsapp" or body.get("status") != "read":
        return _error(400, 100, "a status update needs messaging_product 'whatsapp', status 'read'")
    wamid = body.get("message_id")
    if not isinstance(wamid, str) or not wamid:
        return _error(400, 131009, "message_id must be the wamid of a received message")
    state.reads.append({"message_id": wamid, "phone_number_id": phone_number_id})
    return quart.Response(orjson.dumps({"success": True}), content_type="application/json")


@dataclass
class _FakeState:
    webhook_url: str | None
    app_secret: str | None
    status_delay: float
    sent: list[dict[str, Any]] = field(default_factory=list)
    reads: list[dict[str, Any]] = field(default_factory=list)  # mark-as-read calls
    fail_count: int = 0
    fail_status: int = 500
    fail_code: int | None = None
    # Sends whose status webhooks are posted before the send is answered (the race Meta
    # produces when its status is quicker than the sender's commit).
    statuses_first: int = 0
    http: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self.http is None:
            self.http = httpx.AsyncClient(timeout=10.0)
        return self.http

    async def post_webhook(self, body: dict[str, Any]) -> None:
        """Deliver one webhook, retrying briefly as Meta does; give up with a log line."""
        assert self.webhook_url is not None
        raw = orjson.dumps(body)
        headers = {"Content-Type": "application/json"}
        if self.app_secret:
            headers[SIGNATURE_HEADER] = sign(raw, self.app_secret)
        problem = ""
        for attempt in range(4):
            try:
                response = await self.client().post(self.webhook_url, content=raw, headers=headers)
                if response.status_code < 300:
                    return
                problem = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                problem = repr(exc)
            if attempt < 3:
                await anyio.sleep(0.1 * 2**attempt)
        log.warning("fake WhatsApp gave up posting a webhook to %s: %s", self.webhook_url, problem)

    async def deliver_statuses(self, phone_number_id: str, wamid: str, to: str) -> None:
        for status in ("sent", "delivered", "read"):
            await anyio.sleep(self.status_delay)
            body = status_webhook(
                phone_number_id=phone_number_id, wamid=wamid, status=status, recipient_id=to
            )
            await self.post_webhook(body)


def create_fake_app(
    *, webhook_url: str | None = None, app_secret: str | None = None, status_delay: float = 0.05
) -> quart.Quart:
    """Return a Quart app that behaves like the Cloud API's send endpoint (see module doc).

    Routes: ``POST /<version>/<phone_number_id>/messages`` (a send, or a mark-as-read call
    ``{"status": "read", "message_id"}``, answered ``{"success": true}``), ``GET /_fake/sent``,
    ``GET /_fake/reads`` (the mark-as-read calls),
    ``POST /_fake/fail`` ``{"count", "status", "code"}``, ``POST /_fake/statuses-first``
    ``{"count"}`` (the next sends' status webhooks are posted before the send is answered)
    and ``POST /_fake/reset``.
    Never raises; status webhooks only go out when ``webhook_url`` is set.
    """
    app = quart.Quart("zapline_fake_whatsapp")
    app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = 2
    state = _FakeState(webhook_url, app_secret, status_delay)

    @app.after_serving
    async def _close_client() -> None:
        if state.http is not None:
            await state.http.aclose()
            state.http = None

    @app.post("/<version>/<phone_number_id>/messages")
    async def send(version: str, phone_number_id: str) -> quart.Response:
        auth = quart.request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[len("Bearer ") :].strip():
            return _error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        try:
            body = orjson.loads(await quart.request.get_data())
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict) and "status" in body:
            return _mark_read(state, phone_number_id, body)
        problem = _invalid_send(body)
        if problem is not None:
            return _error(400, 100, problem)
        if state.fail_count > 0:
            state.fail_count -= 1
            status = state.fail_status
            default = 130429 if status == 429 else 131000 if status >= 500 else 100
            return _error(status, state.fail_code or default, "failure injected by /_fake/fail")
        wamid = new_wamid()
        state.sent.append({**body, "wamid": wamid, "phone_number_id": phone_number_id})
        if state.webhook_url and state.statuses_first > 0:
            state.statuses_first -= 1
            await state.deliver_statuses(phone_number_id, wamid, body["to"])
            await anyio.sleep(STATUSES_FIRST_LEAD)  # time for the sender to process them
        elif state.webhook_url:
            app.add_background_task(state.deliver_statuses, phone_number_id, wamid, body["to"])
        reply = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": body["to"]}],
            "messages": [{"id": wamid}],
        }
        return quart.Response(orjson.dumps(reply), content_type="application/json")

    add_media_routes(app)  # GET /<media-id>, its download URL, POST /<number>/media

    @app.get("/_fake/sent")
    async def sent() -> dict[str, Any]:
        return {"messages": list(state.sent)}

    @app.get("/_fake/reads")
    async def reads() -> dict[str, Any]:
        return {"reads": list(state.reads)}

    @app.post("/_fake/fail")
    async def fail() -> tuple[dict[str, Any], int]:
        spec = await quart.request.get_json(silent=True)
        if not isinstance(spec, dict) or not isinstance(spec.get("count"), int):
            return {"error": 'expected {"count": n, "status": s, "code": c}'}, 400
        code = spec.get("code")
        state.fail_count = max(0, spec["count"])
        state.fail_status = int(spec.get("status", 500))
        state.fail_code = code if isinstance(code, int) else None
        return {"ok": True, "pending": state.fail_count}, 200

    @app.post("/_fake/statuses-first")
    async def statuses_first() -> tuple[dict[str, Any], int]:
        spec = await quart.request.get_json(silent=True)
        if not isinstance(spec, dict) or not isinstance(spec.get("count"), int):
            return {"error": 'expected {"count": n}'}, 400
        state.statuses_first = max(0, spec["count"])
        return {"ok": True, "pending": state.statuses_first}, 200

    @app.post("/_fake/reset")
    async def reset() -> dict[str, Any]:
        state.sent.clear()
        state.reads.clear()
        state.fail_count = 0
        state.statuses_first = 0
        return {"ok": True}

    return app


async def serve_fake(
    host: str,
    port: int,
    *,
    webhook_url: str | None = None,
    app_secret: str | None = None,
    status_delay: float = 0.05,
    shutdown_trigger: Any = None,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the fake Cloud API on ``host:port`` until stopped; return after a clean shutdown.

    Signals readiness with ``task_status.started(bound_port)`` (so port 0 picks a free one).
    Stops when ``shutdown_trigger()`` returns, on SIGINT/SIGTERM without a trigger, or on
    cancellation. Raises OSError if the port is taken, RuntimeError outside asyncio.
    """
    app = create_fake_app(webhook_url=webhook_url, app_secret=app_secret, status_delay=status_delay)
    await serve_app(app, host, port, shutdown_trigger=shutdown_trigger, task_status=task_status)
