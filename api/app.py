"""The API application: REST, webhooks, health, config. ``create_asgi(runtime)`` is what
Hypercorn serves: the webhook posts (``api.webhook_post``) in front of the Quart app
(``create_app(runtime)``) that serves everything else.

Every error leaves as JSON ``{"error": "..."}`` with a proper status; nothing leaks a traceback.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from quart import Quart, g, jsonify, request
from werkzeug.exceptions import HTTPException

from api.routes_audit import blueprint as audit
from api.routes_auth import blueprint as auth
from api.routes_console import blueprint as console
from api.routes_conversations import blueprint as conversations
from api.routes_events import blueprint as events
from api.routes_health import blueprint as health
from api.routes_media import MediaAwareRequest
from api.routes_media import blueprint as media
from api.routes_ops import blueprint as ops
from api.routes_presence import blueprint as presence
from api.routes_webhooks import blueprint as webhooks
from api.webhook_post import WebhookPost
from desk import logcontext as logs

if TYPE_CHECKING:
    from api.context import ApiServices

log = logging.getLogger("zapline.api")


def create_asgi(runtime: ApiServices) -> Any:
    """Return the ASGI app Hypercorn serves: webhook posts first, then the Quart app."""
    return WebhookPost(create_app(runtime), runtime)


def create_app(runtime: ApiServices) -> Quart:
    """Return the API app bound to ``runtime`` (storage, engine, queues, settings)."""
    app = Quart("zapline", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.webhook_max_bytes
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["zapline"] = runtime

    for blueprint in (health, webhooks, auth, conversations, ops, presence, console, events):
        app.register_blueprint(blueprint)
    app.register_blueprint(media)
    # Uploads take up to WhatsApp's largest file; every other body keeps the limit above.
    app.request_class = MediaAwareRequest
    app.register_blueprint(audit)

    @app.before_request
    async def assign_request_id() -> None:
        given = request.headers.get("X-Request-Id", "")
        rid = given if 0 < len(given) <= 64 and given.isprintable() else uuid.uuid4().hex
        g.request_id = rid
        logs.request_id.set(rid)

    @app.after_request
    async def echo_request_id(response: Any) -> Any:
        rid = getattr(g, "request_id", None)
        if rid:
            response.headers["X-Request-Id"] = rid
        return response

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Any:
        # An ApiError like the API's own (README): the status is the response's, not a field.
        response = jsonify({"error": exc.description or exc.name})
        response.status_code = exc.code or 500
        return response

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Any:
        log.exception("unhandled error in request")
        response = jsonify({"error": "internal server error"})
        response.status_code = 500
        return response

    return app
