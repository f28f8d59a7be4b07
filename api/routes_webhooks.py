"""``GET /webhooks/whatsapp``: Meta's verification handshake.

The posts themselves are served in front of Quart, by ``api.webhook_post``.
"""

from __future__ import annotations

import logging
from typing import Any

from quart import Blueprint, Response, current_app, request

from api.context import runtime_of
from api.guard import error

log = logging.getLogger("zapline.webhooks")
blueprint = Blueprint("webhooks", __name__)


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
