"""Bearer-token authentication for REST routes."""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from quart import current_app, g, jsonify, request

from api.context import runtime_of
from desk import logcontext as logs
from desk.auth import AuthError, Claims, verify_token

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def error(status: int, message: str, **extra: Any) -> Any:
    """A JSON error response ``{"error": message}`` with ``status``."""
    response = jsonify({"error": message, **extra})
    response.status_code = status
    return response


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def require_auth(fn: F) -> F:
    """Decorator: 401 unless a valid JWT is presented; the claims go to ``g.claims``.

    Then the tenant's REST rate limit: 429 with ``Retry-After`` when it is spent.
    """

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        runtime = runtime_of(current_app)
        token = bearer_token()
        if token is None:
            return error(401, "missing Authorization: Bearer <JWT> header")
        try:
            g.claims = verify_token(runtime.settings.jwt_secret, token)
        except AuthError as exc:
            return error(401, str(exc))
        logs.tenant_id.set(g.claims.tenant_id)
        wait = runtime.limits.api_request(g.claims.tenant_id)
        if wait:
            seconds = max(1, math.ceil(wait))
            runtime.audit.record(
                g.claims.tenant_id,
                g.claims.user_id,
                "rate_limited",
                request.path,
                {"method": request.method, "retryAfter": seconds},
            )
            response = error(429, f"too many requests for this tenant; retry in {seconds} s")
            response.headers["Retry-After"] = str(seconds)
            return response
        return await fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def denied(status: int, message: str, target: str | None = None, **extra: Any) -> Any:
    """``error(status, message)`` for a call refused on scoping (403/404), audited as
    ``request_denied`` with the caller, ``target`` (default: the path) and the reason."""
    who = claims()
    runtime_of(current_app).audit.record(
        who.tenant_id,
        who.user_id,
        "request_denied",
        target or request.path,
        {"status": status, "method": request.method, "path": request.path, "reason": message},
    )
    return error(status, message, **extra)


def claims() -> Claims:
    """The authenticated caller's claims (inside a ``require_auth`` route)."""
    return g.claims  # type: ignore[no-any-return]
