"""The Cloud API's errors: one exception for every refusal, read from Meta's error object."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from engine.jobs import ExpectedError

__all__ = ["CloudApiError", "error_from_response"]

# Throughput limits: the same send succeeds once the pace drops. 130429 is the per-number cloud
# rate limit, 131056 the business/consumer pair limit. Everything else in 4xx is about the
# request or the recipient (131047: outside the 24 h window) and fails the same way again.
_RETRYABLE_CODES = frozenset({130429, 131056})


class CloudApiError(ExpectedError):
    """A send that the Cloud API refused, or that never reached it.

    ``status`` is the HTTP status (0 when no response came back or the request was refused
    locally), ``code`` Meta's error code when the body had one, ``retryable`` whether the same
    send may succeed later (429, 5xx, network errors, rate-limit codes), ``details`` Meta's
    ``error`` object (or what we know instead).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: int | None = None,
        retryable: bool,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, status, code)
        self.message = message
        self.status = status
        self.code = code
        self.retryable = retryable
        self.details = details if details is not None else {}

    def __str__(self) -> str:
        code = f" code {self.code}" if self.code is not None else ""
        again = "retryable" if self.retryable else "not retryable"
        return f"Cloud API HTTP {self.status}{code}: {self.message} ({again})"


def error_from_response(response: httpx.Response, data: Any = None) -> CloudApiError:
    """The CloudApiError of a non-2xx Cloud API response (Meta's ``error`` object, its code)."""
    if data is None:
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            data = None
    status = response.status_code
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        error = {"body": response.text[:1000]}
    raw_code = error.get("code")
    try:
        code = int(raw_code) if raw_code is not None and not isinstance(raw_code, bool) else None
    except (TypeError, ValueError):
        code = None
    message = (
        error.get("message") if isinstance(error.get("message"), str) else response.reason_phrase
    )
    retryable = status == 429 or status >= 500 or code in _RETRYABLE_CODES
    return CloudApiError(str(message), status=status, code=code, retryable=retryable, details=error)
