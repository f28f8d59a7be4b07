"""Operator endpoints: ``/api/socket/stats`` and ``/metrics``."""

from __future__ import annotations

import hmac
import ipaddress
from collections import Counter
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from quart import Blueprint, Response, current_app, request

from api.context import runtime_of
from api.guard import bearer_token, claims, denied, error, require_auth

blueprint = Blueprint("ops", __name__)


@blueprint.get("/api/socket/stats")
@require_auth
async def socket_stats() -> Any:
    """``{totalConnections, connectionsByTenant}``: an admin sees their tenant, ``ops`` sees all."""
    who = claims()
    if who.role not in ("admin", "ops"):
        return denied(403, "admin or ops role required")
    engine = runtime_of(current_app).engine
    by_tenant: Counter[str] = Counter()
    for socket in engine.sockets.values():
        tenant = socket.data.get("tenantId")
        if tenant is not None:
            by_tenant[tenant] += 1
    if who.role == "admin":
        mine = by_tenant.get(who.tenant_id, 0)
        return {"totalConnections": mine, "connectionsByTenant": {who.tenant_id: mine}}
    return {"totalConnections": sum(by_tenant.values()), "connectionsByTenant": dict(by_tenant)}


def _is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


@blueprint.get("/metrics")
async def metrics() -> Any:
    """Prometheus text format; open to loopback, or to anyone with ``ZAPLINE_METRICS_TOKEN``."""
    runtime = runtime_of(current_app)
    token = runtime.settings.metrics_token
    if token:
        given = bearer_token() or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            return error(401, "metrics require Authorization: Bearer <ZAPLINE_METRICS_TOKEN>")
    elif not _is_loopback(request.remote_addr):
        return error(
            403, "metrics are served to loopback only; set ZAPLINE_METRICS_TOKEN to scrape remotely"
        )
    body = await runtime.metrics.render()
    return Response(body, status=200, content_type=CONTENT_TYPE_LATEST)
