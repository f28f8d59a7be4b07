"""``POST /webhooks/whatsapp`` as a bare ASGI handler in front of the Quart app.

Every inbound message and status crosses this one route, so it is on the latency path of
every delivery and its CPU is paid per webhook. Measured on the bench machine (Hypercorn, one
pinned core, keep-alive requests): a Quart route cost 0.16 ms of CPU
more than a bare ASGI answer per request when requests come back to back, and 0.67 ms more
when they come ten a second (the interpreter runs cold between them). So this route skips
Quart's request and app contexts, before/after hooks and response objects; it keeps what
they gave it: ``X-Request-Id`` (an incoming one is kept), JSON ``{"error": ...}`` bodies with
the right status, the request id on every log line, and the ``zapline_webhook_posts``
counter. Everything else (including ``GET /webhooks/whatsapp``, Meta's verification
handshake) goes on to Quart unchanged.

The flow is the contract of the README's "Webhooks" section: draining -> 503; a body over
``ZAPLINE_WEBHOOK_MAX_BYTES`` -> 413 (told by ``Content-Length`` or found while reading);
malformed JSON or not a webhook -> 400; a bad signature of a number with an app secret ->
401; the inbox commit failed -> 503; else the raw body is durable and the answer is 200
``{"status": "ok", "inboxId": N}``.

The handler's own CPU (this thread's clock, less the span of the inbox commit and processing
it awaits) is the cost ledger's ``http`` stage (api/metrics.py); Hypercorn's parsing and
writing are outside it.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import anyio
import orjson

from desk import logcontext as logs
from desk.inbox import IntakeUnavailable
from desk.whatsapp import (
    WebhookFormatError,
    WrongWebhookObject,
    load_json,
    phone_number_ids,
    verify_signature,
)

if TYPE_CHECKING:
    from api.context import ApiServices

log = logging.getLogger("zapline.webhooks")

# This thread's CPU clock: on a shared core, wall time would count other processes' turns.
_cpu_clock = time.thread_time

# Request ids this process makes up: 32 hex digits like a uuid4's, a random half per process
# and a serial half. uuid4 per webhook was 6 % of the event loop's samples in a profile at
# 250 webhooks/s (os.urandom is a syscall per call); this is a tenth of its cost.
_RID_PREFIX = secrets.token_hex(8)
_rid_serial = itertools.count()

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PATH = "/webhooks/whatsapp"
# What an oversized post may still send after its 413 is decided, read and dropped.
DISCARD_BYTES = 4 * 1024 * 1024
DISCARD_SECONDS = 5.0

# Last time (monotonic) each number's unsigned webhooks were warned about: a warning per
# webhook would flood the log (and cost ~2 % CPU at 400 webhooks/s), one per interval says it.
_UNSIGNED_WARN_INTERVAL = 600.0
_unsigned_warned: dict[str, float] = {}


def _warn_unsigned(number: str) -> None:
    now = time.monotonic()
    last = _unsigned_warned.get(number)
    if last is not None and now - last < _UNSIGNED_WARN_INTERVAL:
        return
    if len(_unsigned_warned) > 10_000:
        _unsigned_warned.clear()
    _unsigned_warned[number] = now
    log.warning(
        "unsigned webhooks accepted for %s: the account has no app secret"
        " (said once per %.0f minutes)",
        number,
        _UNSIGNED_WARN_INTERVAL / 60,
    )


class _TooLarge(Exception):
    def __init__(self, *, body_ended: bool) -> None:
        super().__init__()
        self.body_ended = body_ended


class _Disconnected(Exception):
    pass


class WebhookPost:
    """ASGI app: serves ``POST /webhooks/whatsapp`` itself, hands everything else to ``app``."""

    __slots__ = ("_app", "_runtime")

    def __init__(self, app: ASGIApp, runtime: ApiServices) -> None:
        self._app = app
        self._runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope; returns when the response is sent."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self._app(scope, receive, send)
            return
        started = _cpu_clock()
        headers = _headers(scope)
        rid = headers.get("x-request-id", "")
        if not (0 < len(rid) <= 64 and rid.isprintable()):
            rid = f"{_RID_PREFIX}{next(_rid_serial):016x}"
        logs.request_id.set(rid)
        accept_span = [0.0]  # per request: this handler object serves them all at once
        try:
            status, body = await self._post(headers, receive, accept_span)
        except _Disconnected:
            return  # the poster went away mid-body: nothing to answer, nothing stored
        except Exception:
            log.exception("unhandled error in webhook intake")
            status, body = 500, {"error": "internal server error"}
        payload = orjson.dumps(body)
        self._runtime.metrics.observe_stage("http", _cpu_clock() - started - accept_span[0])
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"x-request-id", rid.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _post(
        self, headers: dict[str, str], receive: Receive, accept_span: list[float]
    ) -> tuple[int, dict[str, Any]]:
        runtime = self._runtime
        count = runtime.metrics.webhooks.labels
        if runtime.draining:
            count("draining").inc()
            return 503, {"error": "shutting down; retry later"}
        limit = runtime.settings.webhook_max_bytes
        try:
            raw = await _read_body(receive, headers.get("content-length"), limit)
        except _TooLarge as refused:
            count("too_large").inc()
            log.warning("webhook over %d bytes refused", limit)
            # Read (and drop) what the poster is still sending, within bounds: a client that
            # is mid-upload when the 413 leaves and the connection closes gets a reset
            # instead of the answer.
            if not refused.body_ended:
                await _discard(receive, DISCARD_BYTES, DISCARD_SECONDS)
            return 413, {"error": f"body larger than {limit} bytes"}
        try:
            body = load_json(raw)
        except ValueError as exc:
            count("bad_json").inc()
            log.info("webhook with malformed JSON: %s", exc)
            return 400, {"error": f"malformed JSON: {exc}"}
        try:
            numbers = phone_number_ids(body)
        except WrongWebhookObject as exc:
            count("wrong_object").inc()
            log.warning("webhook refused: %s", exc)
            return 400, {"error": f"not a WhatsApp webhook: {exc}"}
        except WebhookFormatError as exc:
            count("bad_shape").inc()
            log.info("webhook with unexpected shape: %s", exc)
            return 400, {"error": f"not a WhatsApp webhook: {exc}"}
        desk = runtime.desk
        signature = headers.get("x-hub-signature-256")
        for number in numbers:
            account = await desk.accounts.get(number)
            if account is None:
                continue  # stored and logged as unroutable: Meta would retry a refusal forever
            if account.app_secret:
                if not verify_signature(raw, signature, account.app_secret):
                    count("bad_signature").inc()
                    log.warning("webhook for %s with a bad or missing signature", number)
                    return 401, {"error": "invalid X-Hub-Signature-256"}
            elif signature is None:
                _warn_unsigned(number)
        accepting = _cpu_clock()
        try:
            inbox_id = await desk.accept_webhook(raw, body)
        except IntakeUnavailable as exc:
            count("unavailable").inc()
            log.error("webhook refused, storage unavailable: %s", exc)
            return 503, {"error": "storage unavailable; retry later"}
        finally:
            # what this thread ran while the commit was awaited is other tasks' work too
            accept_span[0] = _cpu_clock() - accepting
        count("ok").inc()
        return 200, {"status": "ok", "inboxId": inbox_id}


async def _discard(receive: Receive, budget: int, seconds: float) -> None:
    """Receive and drop body chunks until the body ends, ``budget`` bytes or ``seconds``."""
    with anyio.move_on_after(seconds):
        while budget > 0:
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                return
            budget -= len(message.get("body", b""))


def _headers(scope: Scope) -> dict[str, str]:
    # ASGI header names are lower-case bytes; latin-1 keeps every byte (RFC 9110 field values).
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


async def _read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """Return the whole request body; raises _TooLarge past ``limit``, _Disconnected."""
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _TooLarge(body_ended=False)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge(body_ended=not message.get("more_body", False))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
