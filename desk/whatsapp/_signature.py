"""Meta's webhook signature: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``.

The HMAC covers the bytes exactly as they arrived, so verify before any JSON parsing (a parse
and re-serialise changes spacing and escapes, and the signature with them).
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["SIGNATURE_HEADER", "sign", "verify_signature"]

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


def _digest(body: bytes, app_secret: str) -> str:
    return hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def sign(body: bytes, app_secret: str) -> str:
    """Return the ``X-Hub-Signature-256`` header value Meta would send with ``body``.

    Raises ValueError for an empty ``app_secret``: a signature anyone can forge proves nothing.
    """
    if not app_secret:
        raise ValueError("app_secret must not be empty")
    return _PREFIX + _digest(body, app_secret)


def verify_signature(body: bytes, header: str | None, app_secret: str) -> bool:
    """Return True when ``header`` is the valid signature of the raw ``body`` under ``app_secret``.

    A missing, garbled or differently prefixed header, or an empty secret, gives False; the
    comparison takes constant time. Never raises.
    """
    if not header or not app_secret:
        return False
    header = header.strip()
    if not header.lower().startswith(_PREFIX):
        return False
    try:
        given = header[len(_PREFIX) :].lower().encode("ascii")
    except UnicodeEncodeError:
        return False
    expected = _digest(body, app_secret).encode("ascii")
    return hmac.compare_digest(given, expected)
