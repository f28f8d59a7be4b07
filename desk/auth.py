"""JWTs of the wire contract: HS256, claims ``sub``, ``tenantId``, ``role``, ``exp``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt

ROLES = ("admin", "agent", "ops")


class AuthError(Exception):
    """A token is missing, malformed, expired or badly signed; ``str()`` is the client message."""


@dataclass(frozen=True, slots=True)
class Claims:
    """The verified identity behind a token."""

    user_id: str
    tenant_id: str
    role: str
    expires_at: int


def issue_token(
    secret: str, *, user_id: str, tenant_id: str, role: str = "agent", ttl: int = 3600
) -> str:
    """Return a signed token for ``user_id`` in ``tenant_id`` valid for ``ttl`` seconds."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    now = int(time.time())
    payload = {"sub": user_id, "tenantId": tenant_id, "role": role, "iat": now, "exp": now + ttl}
    return jwt.encode(payload, secret, algorithm="HS256")


def verify_token(secret: str, token: Any) -> Claims:
    """Return the claims of ``token``; raise ``AuthError`` with a clear message otherwise."""
    if not token or not isinstance(token, str):
        raise AuthError("Authentication error: no token (pass auth: {token: '<JWT>'})")
    try:
        payload = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]}
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("Authentication error: token expired") from None
    except jwt.InvalidSignatureError:
        raise AuthError("Authentication error: invalid token signature") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"Authentication error: invalid token ({exc})") from None
    tenant = payload.get("tenantId")
    role = payload.get("role", "agent")
    if not isinstance(tenant, str) or not tenant:
        raise AuthError("Authentication error: token has no tenantId claim")
    if role not in ROLES:
        raise AuthError(f"Authentication error: unknown role {role!r}")
    return Claims(
        user_id=str(payload["sub"]), tenant_id=tenant, role=role, expires_at=int(payload["exp"])
    )
