"""Private session ids (``pid``) of connection state recovery: compact, signed, stateless.

A pid names the tenant, the user, when it was issued and the seq the journal had emitted for
the tenant when its socket joined its rooms; it is signed with an HMAC-SHA256 key derived
from the JWT secret (a pid is no token, and a token no pid). Any process sharing the secret
can check it, so a session is recovered on a fresh process or another node.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

__all__ = ["PidClaims", "issue_pid", "read_pid"]

_VERSION = "p1"
_MAC_BYTES = 16


@dataclass(frozen=True, slots=True)
class PidClaims:
    """What a valid pid says."""

    tenant_id: str
    user_id: str
    issued_at: int
    seq: int
    socket_id: str  # the socket's id when the pid was issued: a recovered socket takes it back


def _key(secret: str) -> bytes:
    return hashlib.sha256(b"zapline recovery pid\0" + secret.encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_pid(
    secret: str, tenant_id: str, user_id: str, seq: int, socket_id: str | None = None
) -> str:
    """A new pid for ``user_id`` of ``tenant_id`` whose socket ``socket_id`` joined after
    ``seq`` (the id also makes two pids of one second differ; random when not given)."""
    sid = socket_id if socket_id and "|" not in socket_id else secrets.token_urlsafe(15)
    body = f"{tenant_id}|{user_id}|{int(time.time())}|{seq}|{sid}".encode()
    mac = hmac.new(_key(secret), body, hashlib.sha256).digest()[:_MAC_BYTES]
    return f"{_VERSION}.{_b64(body)}.{_b64(mac)}"


def read_pid(secret: str, pid: str) -> PidClaims | None:
    """The claims of ``pid``, or None when it is malformed or its signature does not hold."""
    try:
        version, body_text, mac_text = pid.split(".")
        if version != _VERSION or len(pid) > 512:
            return None
        body, mac = _unb64(body_text), _unb64(mac_text)
    except ValueError:
        return None
    expected = hmac.new(_key(secret), body, hashlib.sha256).digest()[:_MAC_BYTES]
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        tenant_id, user_id, issued, seq, socket_id = body.decode().split("|")
        return PidClaims(tenant_id, user_id, int(issued), int(seq), socket_id)
    except ValueError:
        return None
