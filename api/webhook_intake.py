"""What ``POST /webhooks/whatsapp`` decides, whichever listener it came in on.

The post is served on two listeners: Hypercorn's API port (``api.webhook_post``, ASGI) and
the engine's own Socket.IO port (``api.webhook_engine``). Both hand the request's headers
and a way to read its body to ``WebhookIntake.answer``, and write what it returns; nothing of
the decision is theirs.

The flow is the contract of the README's "Webhooks" section: draining -> 503; a body over
``ZAPLINE_WEBHOOK_MAX_BYTES`` -> 413 (the transport tells, by ``Content-Length`` or while
reading, and reads and drops what is still coming within bounds); malformed JSON or not a
webhook -> 400; a bad signature of a number with an app secret -> 401; the inbox commit
failed -> 503; else the raw body is durable and the answer is 200
``{"status": "ok", "inboxId": N}``. Every answer is JSON (``{"error": ...}`` on refusals)
and carries ``X-Request-Id`` (an incoming one is kept, else one is made up), which is also
on every log line of the request; each outcome counts in ``zapline_webhook_posts``.

The intake's own CPU (this thread's clock, less the span of the inbox commit and processing
it awaits) is the cost ledger's ``http`` stage (api/metrics.py); the listener's HTTP parsing
and writing are outside it.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

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

__all__ = [
    "DISCARD_BYTES",
    "DISCARD_SECONDS",
    "PATH",
    "BodyReader",
    "Disconnected",
    "WebhookIntake",
    "request_id",
]

log = logging.getLogger("zapline.webhooks")

PATH = "/webhooks/whatsapp"
# What an oversized post may still send after its 413 is decided, read and dropped.
DISCARD_BYTES = 4 * 1024 * 1024
DISCARD_SECONDS = 5.0

# ``await read()``: the whole body, or None when it is over the limit (the rest, if any, was
# read and dropped within bounds). Raises ``Disconnected`` if the poster went away mid-body.
BodyReader = Callable[[], Awaitable[bytes | None]]

# This thread's CPU clock: on a shared core, wall time would count other processes' turns.
_cpu_clock = time.thread_time

# Request ids this process makes up: 32 hex digits like a uuid4's, a random half per process
# and a serial half. uuid4 per webhook was 6 % of the event loop's samples in a profile at
# 250 webhooks/s (os.urandom is a syscall per call); this is a tenth of its cost.
_RID_PREFIX = secrets.token_hex(8)
_rid_serial = itertools.count()

# Last time (monotonic) each number's unsigned webhooks were warned about: a warning per
# webhook would flood the log (and cost ~2 % CPU at 400 webhooks/s), one per interval says it.
_UNSIGNED_WARN_INTERVAL = 600.0
_unsigned_warned: dict[str, float] = {}


class Disconnected(Exception):
    """The poster went away before its body was whole: nothing to answer, nothing stored."""


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


def request_id(given: str | None) -> str:
    """Return ``given`` if it is a usable request id (1-64 printable characters), else a new one."""
    if given is not None and 0 < len(given) <= 64 and given.isprintable():
        return given
    return f"{_RID_PREFIX}{next(_rid_serial):016x}"


class WebhookIntake:
    """The transport-neutral webhook post: headers and a body reader in, an answer out."""

    __slots__ = ("_runtime",)

    def __init__(self, runtime: ApiServices) -> None:
        self._runtime = runtime

    async def answer(self, headers: Mapping[str, str], read: BodyReader) -> tuple[int, bytes, str]:
        """Decide one post; return ``(status, JSON body, request id)`` to write.

        ``headers`` have lower-case names. Raises ``Disconnected`` (from ``read``) only;
        any other failure is logged and answered 500.
        """
        started = _cpu_clock()
        rid = request_id(headers.get("x-request-id"))
        token = logs.request_id.set(rid)
        accept_span = [0.0]
        try:
            try:
                status, body = await self._decide(headers, read, accept_span)
            except Disconnected:
                raise
            except Exception:
                log.exception("unhandled error in webhook intake")
                status, body = 500, {"error": "internal server error"}
            payload = orjson.dumps(body)
            self._runtime.metrics.observe_stage("http", _cpu_clock() - started - accept_span[0])
            return status, payload, rid
        finally:
            logs.request_id.reset(token)

    async def _decide(
        self, headers: Mapping[str, str], read: BodyReader, accept_span: list[float]
    ) -> tuple[int, dict[str, Any]]:
        runtime = self._runtime
        count = runtime.metrics.webhooks.labels
        if runtime.draining:
            count("draining").inc()
            return 503, {"error": "shutting down; retry later"}
        raw = await read()
        if raw is None:
            limit = runtime.settings.webhook_max_bytes
            count("too_large").inc()
            log.warning("webhook over %d bytes refused", limit)
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
