"""The Cloud API's media endpoints: resolve a media id, download it, upload a file.

Meta's Media reference: ``GET /<version>/<media-id>`` with the number's access token answers
``{url, mime_type, sha256, file_size, id, messaging_product}``; the ``url`` is valid for five
minutes and answers the bytes only with the same bearer token. ``POST
/<version>/<phone-number-id>/media`` (multipart: ``messaging_product=whatsapp``, ``type``,
``file``) answers ``{id}``, the id a send then names. Errors have the send path's shape
(``CloudApiError``); a timeout is ``details["reason"] == "timeout"``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from desk.whatsapp._errors import CloudApiError, error_from_response

__all__ = ["MediaInfo", "download_media", "media_info", "upload_media"]


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What ``GET /<media-id>`` says about one media object."""

    id: str
    url: str
    mime_type: str
    sha256: str | None
    file_size: int | None


def _headers(access_token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"} if access_token else {}


def _no_response(exc: httpx.TransportError, what: str) -> CloudApiError:
    timeout = isinstance(exc, httpx.TimeoutException)
    return CloudApiError(
        f"{what}: {'timed out' if timeout else 'no response'} ({type(exc).__name__})",
        status=0,
        retryable=True,
        details={"reason": "timeout" if timeout else "network", "exception": type(exc).__name__},
    )


def _size(raw: Any) -> int | None:
    # Meta's examples give file_size as a string ("303833").
    try:
        return int(raw) if raw is not None and not isinstance(raw, bool) else None
    except (TypeError, ValueError):
        return None


async def media_info(
    http: httpx.AsyncClient,
    base: str,
    media_id: str,
    access_token: str | None,
    *,
    seconds: float,
) -> MediaInfo:
    """Resolve ``media_id`` (``base`` ends with the API version) to its short-lived URL.

    Raises CloudApiError: Meta's error (with its code), a body without a URL, or a timeout.
    """
    url = f"{base}/{quote(media_id, safe='')}"
    try:
        response = await http.get(url, headers=_headers(access_token), timeout=seconds)
    except httpx.TransportError as exc:
        raise _no_response(exc, "looking up the media") from exc
    if not 200 <= response.status_code < 300:
        raise error_from_response(response)
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        data = None
    link = data.get("url") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(link, str) or not link:
        raise CloudApiError(
            "the Cloud API answered the media lookup without a url",
            status=response.status_code,
            retryable=False,
            details={"body": response.text[:1000]},
        )
    mime = data.get("mime_type")
    sha = data.get("sha256")
    return MediaInfo(
        id=str(data.get("id") or media_id),
        url=link,
        mime_type=mime if isinstance(mime, str) and mime else "application/octet-stream",
        sha256=sha if isinstance(sha, str) else None,
        file_size=_size(data.get("file_size")),
    )


async def download_media(
    http: httpx.AsyncClient,
    url: str,
    access_token: str | None,
    write: Callable[[bytes], Awaitable[Any]],
    *,
    seconds: float,
    max_bytes: int,
) -> tuple[int, str | None]:
    """Stream the bytes at ``url`` (from ``media_info``) into ``write``.

    Returns (bytes written, the response's Content-Type). Raises CloudApiError on an error
    status, a timeout, or a body larger than ``max_bytes`` (not retryable).
    """
    written = 0
    try:
        async with http.stream(
            "GET", url, headers=_headers(access_token), timeout=seconds
        ) as response:
            if not 200 <= response.status_code < 300:
                await response.aread()
                raise error_from_response(response)
            async for chunk in response.aiter_bytes():
                written += len(chunk)
                if written > max_bytes:
                    raise CloudApiError(
                        f"the media is larger than {max_bytes} bytes",
                        status=response.status_code,
                        retryable=False,
                        details={"reason": "too_large"},
                    )
                await write(chunk)
            return written, response.headers.get("content-type")
    except httpx.TransportError as exc:
        raise _no_response(exc, "downloading the media") from exc


async def upload_media(
    http: httpx.AsyncClient,
    base: str,
    phone_number_id: str,
    access_token: str | None,
    path: Path,
    *,
    mime_type: str,
    filename: str,
    seconds: float,
) -> str:
    """Upload the file at ``path`` for ``phone_number_id``; return the media id Meta gave it.

    Raises CloudApiError (retryable on 429/5xx and network errors, as sends are) and OSError
    when the file cannot be read.
    """
    url = f"{base}/{quote(phone_number_id, safe='')}/media"
    data = {"messaging_product": "whatsapp", "type": mime_type}
    with path.open("rb") as handle:
        files = {"file": (filename, handle, mime_type)}
        try:
            response = await http.post(
                url, data=data, files=files, headers=_headers(access_token), timeout=seconds
            )
        except httpx.TransportError as exc:
            raise _no_response(exc, "uploading the media") from exc
    if not 200 <= response.status_code < 300:
        raise error_from_response(response)
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    media_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(media_id, str) or not media_id:
        raise CloudApiError(
            "the Cloud API accepted the upload but returned no media id",
            status=response.status_code,
            retryable=True,
            details={"body": response.text[:1000]},
        )
    return media_id
