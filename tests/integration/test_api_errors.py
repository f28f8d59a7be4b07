"""Errors the framework raises (an unknown route, a method a route does not take, a body over
Quart's limit) are ApiError bodies like the API's own: the README's contract, nothing else."""

from __future__ import annotations

import httpx
import pytest
from _contract import violations
from _desk_harness import Tenant, ZaplineServer, auth

pytestmark = [pytest.mark.anyio]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/no-such-route", 404),
        ("GET", "/api/conversations/..%2F..%2Fetc%2Fpasswd", 404),
        ("DELETE", "/api/conversations/x", 405),
    ],
)
async def test_framework_errors_are_api_errors(
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.AsyncClient,
    method: str,
    path: str,
    status: int,
) -> None:
    response = await http.request(method, f"{zapline.api_url}{path}", headers=auth(tenant.token))
    assert response.status_code == status
    body = response.json()
    assert violations(body, "ApiError") == [], body
