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

from zapline import logs

if TYPE_CHECKING:
    from zapline.runtime import Runtime

log = logging.getLogger("zapline.api")


def create_asgi(runtime: Runtime) -> Any:
    """Return the ASGI app Hypercorn serves: webhook posts first, then the Quart app."""
    from api.webhook_post import WebhookPost

    return WebhookPost(create_app(runtime), runtime)


def create_app(runtime: Runtime) -> Quart:
    """Return the API app bound to ``runtime`` (storage, engine, queues, settings)."""
    app = Quart("zapline", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.webhook_max_bytes
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["zapline"] = runtime

    from api.routes_health import blueprint as health

    app.register_blueprint(health)
    for name in (
        "api.routes_webhooks",
        "api.routes_auth",
        "api.routes_conversations",
        "api.routes_ops",
        "api.routes_console",
    ):
        try:
            module = __import__(name, fromlist=["blueprint"])
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        app.register_blueprint(module.blueprint)

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
        response = jsonify({"error": exc.description or exc.name, "status": exc.code})
        response.status_code = exc.code or 500
        return response

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Any:
        log.exception("unhandled error in request")
        response = jsonify({"error": "internal server error"})
        response.status_code = 500
        return response

    return app
