"""Liveness, readiness, and where browsers find the socket listener."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, current_app, jsonify

from api.context import runtime_of

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
async def healthz() -> Any:
    """200 while the process is alive."""
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
async def readyz() -> Any:
    """200 when storage answers, queues are below their high-water mark and we are not draining."""
    runtime = runtime_of(current_app)
    checks = await runtime.readiness()
    ready = all(checks.values())
    response = jsonify({"ready": ready, "checks": checks})
    response.status_code = 200 if ready else 503
    return response


@blueprint.get("/api/config")
async def config() -> Any:
    """Tell a browser where the Socket.IO listener is (``ZAPLINE_PUBLIC_SOCKET_URL`` overrides)."""
    runtime = runtime_of(current_app)
    return jsonify({"socketUrl": runtime.settings.socket_url(), "socketPath": "/socket.io/"})
