"""``/webhooks/whatsapp``: Meta's verification handshake and durable intake of posts."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from quart import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from api.context import runtime_of
from api.guard import error
from api.intake import IntakeUnavailable
from api.whatsapp import WebhookFormatError, phone_number_ids, verify_signature

log = logging.getLogger("zapline.webhooks")
blueprint = Blueprint("webhooks", __name__)


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


@blueprint.get("/webhooks/whatsapp")
async def verify() -> Any:
    """Echo ``hub.challenge`` when ``hub.verify_token`` matches an account's verify token."""
    args = request.args
    token = args.get("hub.verify_token", "")
    if args.get("hub.mode") != "subscribe" or not token:
        return error(403, "verification failed: expected hub.mode=subscribe and hub.verify_token")
    account = await runtime_of(current_app).storage.find_account_by_verify_token(token)
    if account is None:
        log.warning("webhook verification with an unknown verify token")
        return error(403, "verification failed: unknown verify token")
    return Response(args.get("hub.challenge", ""), status=200, content_type="text/plain")


@blueprint.post("/webhooks/whatsapp")
async def receive() -> Any:
    """Verify, store durably, then 200; processing continues in the workers."""
    runtime = runtime_of(current_app)
    count = runtime.metrics.webhooks.labels
    if runtime.draining:
        count("draining").inc()
        return error(503, "shutting down; retry later")
    desk = runtime.services["desk"]
    try:
        raw = await request.get_data(cache=False)
    except RequestEntityTooLarge:
        count("too_large").inc()
        log.warning("webhook over %d bytes refused", runtime.settings.webhook_max_bytes)
        return error(413, f"body larger than {runtime.settings.webhook_max_bytes} bytes")
    assert isinstance(raw, bytes)
    try:
        body = orjson.loads(raw)
        numbers = phone_number_ids(body)
    except orjson.JSONDecodeError as exc:
        count("bad_json").inc()
        log.info("webhook with malformed JSON: %s", exc)
        return error(400, f"malformed JSON: {exc}")
    except WebhookFormatError as exc:
        count("bad_shape").inc()
        log.info("webhook with unexpected shape: %s", exc)
        return error(400, f"not a WhatsApp webhook: {exc}")
    signature = request.headers.get("X-Hub-Signature-256")
    for number in numbers:
        account = await desk.accounts.get(number)
        if account is None:
            continue  # stored and logged as unroutable: Meta would retry a refusal forever
        if account.app_secret:
            if not verify_signature(raw, signature, account.app_secret):
                count("bad_signature").inc()
                log.warning("webhook for %s with a bad or missing signature", number)
                return error(401, "invalid X-Hub-Signature-256")
        elif signature is None:
            _warn_unsigned(number)
    try:
        inbox_id = await desk.accept_webhook(raw, body)
    except IntakeUnavailable as exc:
        count("unavailable").inc()
        log.error("webhook refused, storage unavailable: %s", exc)
        return error(503, "storage unavailable; retry later")
    count("ok").inc()
    return {"status": "ok", "inboxId": inbox_id}
