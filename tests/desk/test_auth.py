from __future__ import annotations

import time

import jwt
import pytest

from desk.auth import AuthError, issue_token, verify_token

SECRET = "test-secret-0123456789-0123456789-abc"


def test_round_trip() -> None:
    claims = verify_token(SECRET, issue_token(SECRET, user_id="u1", tenant_id="t1", role="admin"))
    assert (claims.user_id, claims.tenant_id, claims.role) == ("u1", "t1", "admin")
    assert claims.expires_at > time.time()


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "no token"),
        ("", "no token"),
        (12, "no token"),
        ("not-a-jwt", "invalid token"),
        (
            jwt.encode(
                {"sub": "u", "tenantId": "t", "exp": int(time.time()) - 5},
                SECRET,
                algorithm="HS256",
            ),
            "token expired",
        ),
        (
            jwt.encode(
                {"sub": "u", "tenantId": "t", "exp": int(time.time()) + 86400},
                "other-secret-0123456789-0123456789",
                algorithm="HS256",
            ),
            "invalid token signature",
        ),
        (
            jwt.encode({"sub": "u", "exp": int(time.time()) + 86400}, SECRET, algorithm="HS256"),
            "no tenantId",
        ),
        (
            jwt.encode(
                {"sub": "u", "tenantId": "t", "role": "root", "exp": int(time.time()) + 86400},
                SECRET,
                algorithm="HS256",
            ),
            "unknown role",
        ),
        (jwt.encode({"sub": "u", "tenantId": "t"}, SECRET, algorithm="HS256"), "invalid token"),
    ],
)
def test_rejections_say_why(token: object, message: str) -> None:
    with pytest.raises(AuthError, match=message) as info:
        verify_token(SECRET, token)
    assert str(info.value).startswith("Authentication error:")


def test_none_algorithm_is_refused() -> None:
    unsigned = jwt.encode(
        {"sub": "u", "tenantId": "t", "exp": int(time.time()) + 86400}, None, algorithm="none"
    )
    with pytest.raises(AuthError):
        verify_token(SECRET, unsigned)


def test_issue_rejects_unknown_role() -> None:
    with pytest.raises(ValueError, match="role"):
        issue_token(SECRET, user_id="u", tenant_id="t", role="root")
