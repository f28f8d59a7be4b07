"""Sending through the WhatsApp Cloud API (``POST /<version>/<phone_number_id>/messages``).

One CloudApiClient is meant to be shared by every worker of a process: it holds the HTTP
connection pool and the per-phone-number throttle, so the throttle only means something when
all sends of a process go through the same instance. Nodes do not coordinate: with N nodes,
give each ``rate_per_second / N``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import orjson

from desk.whatsapp import _media
from desk.whatsapp._errors import CloudApiError, error_from_response
from desk.whatsapp._media import MediaInfo

__all__ = ["CloudApiClient", "CloudApiError", "SendResult", "error_from_response"]

_MEDIA = ("IMAGE", "VIDEO", "AUDIO", "DOCUMENT", "STICKER")
_CAPTIONED = ("IMAGE", "VIDEO", "DOCUMENT")


@dataclass(frozen=True, slots=True)
class SendResult:
    """An accepted send: the id WhatsApp gave the message, and the response body as received."""

    whatsapp_message_id: str
    raw: dict[str, Any]


def _invalid(message: str) -> CloudApiError:
    return CloudApiError(message, status=0, retryable=False, details={"reason": "invalid_request"})


def _section(metadata: dict[str, Any], key: str) -> dict[str, Any]:
    """Fields may sit at the top of metadata or under the type's own key (as Meta nests them)."""
    nested = metadata.get(key)
    return nested if isinstance(nested, dict) else metadata


def build_message(
    to: str, type: str, content: str | None, metadata: dict[str, Any] | None
) -> dict[str, Any]:
    """Return the Cloud API request body for one outbound message.

    Raises CloudApiError (status 0, not retryable) when the message cannot be expressed: an
    empty text, media without ``link`` or ``id``, a location without coordinates, a type the
    Cloud API does not send.
    """
    meta = metadata or {}
    kind = type.upper()
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
    }
    if kind == "TEXT":
        if not content:
            raise _invalid("a TEXT message needs non-empty content")
        part: dict[str, Any] = {"body": content}
    elif kind in _MEDIA:
        src = _section(meta, kind.lower())
        if src.get("link"):
            part = {"link": src["link"]}
        elif src.get("id"):
            part = {"id": src["id"]}
        else:
            raise _invalid(f"an {kind} message needs metadata 'link' or 'id'")
        caption = content or src.get("caption")
        if kind in _CAPTIONED and caption:
            part["caption"] = caption
        if kind == "DOCUMENT" and src.get("filename"):
            part["filename"] = src["filename"]
    elif kind == "LOCATION":
        src = _section(meta, "location")
        if src.get("latitude") is None or src.get("longitude") is None:
            raise _invalid("a LOCATION message needs metadata 'latitude' and 'longitude'")
        part = {
            k: src[k]
            for k in ("latitude", "longitude", "name", "address")
            if src.get(k) is not None
        }
    elif kind == "REACTION":
        src = _section(meta, "reaction")
        if not src.get("message_id"):
            raise _invalid("a REACTION needs metadata 'message_id'")
        part = {"message_id": src["message_id"], "emoji": content or src.get("emoji") or ""}
    elif kind in ("TEMPLATE", "INTERACTIVE", "CONTACTS"):
        # These are structured objects the caller composes in Meta's own shape.
        given = meta.get(kind.lower())
        if not given:
            raise _invalid(f"a {kind} message needs metadata[{kind.lower()!r}] in Cloud API shape")
        body["type"] = kind.lower()
        body[kind.lower()] = given
        return _with_context(body, meta)
    else:
        raise _invalid(f"message type {type!r} cannot be sent through the Cloud API")
    body["type"] = kind.lower()
    body[kind.lower()] = part
    return _with_context(body, meta)


def _with_context(body: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    reply_to = meta.get("reply_to")
    if isinstance(reply_to, str) and reply_to:
        body["context"] = {"message_id": reply_to}
    return body


class _Throttle:
    """Per-key pacing: each send takes the next free slot, slots are 1/rate apart.

    This is a token bucket of depth one. Reserving a slot is synchronous (no await between
    reading and writing the schedule), so concurrent tasks never take the same slot, and waiting
    is one anyio.sleep, never a poll.
    """

    def __init__(self, rate_per_second: float) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self._interval = 1.0 / rate_per_second
        self._next: dict[str, float] = {}

    async def wait(self, key: str) -> None:
        now = anyio.current_time()
        slot = max(now, self._next.get(key, now))
        self._next[key] = slot + self._interval
        if len(self._next) > 4096:
            self._next = {k: t for k, t in self._next.items() if t > now}
        if slot > now:
            await anyio.sleep(slot - now)


class CloudApiClient:
    """Sends messages through the Cloud API at ``base_url`` (``https://graph.facebook.com``)."""

    def __init__(
        self,
        base_url: str,
        *,
        version: str = "v21.0",
        rate_per_second: float = 80.0,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        media_timeout: float = 30.0,
    ) -> None:
        self._base = base_url.rstrip("/")
        # Seconds one media lookup, download or upload may take (ZAPLINE_MEDIA_TIMEOUT).
        self.media_timeout = media_timeout
        self._version = version.strip("/")
        self._throttle = _Throttle(rate_per_second)
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def send_message(
        self,
        phone_number_id: str,
        access_token: str | None,
        to: str,
        type: str,
        content: str | None,
        metadata: dict[str, Any] | None = None,
    ) -> SendResult:
        """Send one message from ``phone_number_id`` to ``to`` and return its wamid.

        ``type`` is one of our message types (TEXT, IMAGE, ...); media take ``metadata['link']``
        or ``metadata['id']``, LOCATION its coordinates from metadata, and
        ``metadata['reply_to']`` makes it a reply. Waits for this number's throttle first.
        Raises CloudApiError; a timeout is retryable although the message may have gone out.
        """
        payload = build_message(to, type, content, metadata)
        response = await self._post_messages(phone_number_id, access_token, payload)
        return _result(response)

    async def _post_messages(
        self, phone_number_id: str, access_token: str | None, payload: dict[str, Any]
    ) -> httpx.Response:
        """POST ``payload`` to the number's ``/messages`` after its throttle (sends and
        read receipts alike). Raises CloudApiError (retryable) when no response came back."""
        url = f"{self._base}/{self._version}/{quote(phone_number_id, safe='')}/messages"
        headers = {"Content-Type": "application/json"}
        if access_token:
            headers["Authorization"] = f"Bearer {access_token}"
        await self._throttle.wait(phone_number_id)
        try:
            return await self._http.post(url, content=orjson.dumps(payload), headers=headers)
        except httpx.TransportError as exc:
            raise CloudApiError(
                f"no response from the Cloud API: {exc!r}",
                status=0,
                retryable=True,
                details={"exception": _type_name(exc)},
            ) from exc

    async def mark_read(
        self, phone_number_id: str, access_token: str | None, whatsapp_message_id: str
    ) -> None:
        """Mark a customer's message (and the earlier ones of the chat) read on WhatsApp.

        ``POST /<version>/<phone_number_id>/messages`` with ``{"messaging_product":
        "whatsapp", "status": "read", "message_id": <wamid>}``, after this number's throttle,
        like a send. Raises CloudApiError (retryable as for sends).
        """
        payload = {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": whatsapp_message_id,
        }
        response = await self._post_messages(phone_number_id, access_token, payload)
        if not 200 <= response.status_code < 300:
            _result(response)  # raises the CloudApiError the error body describes

    async def media_info(self, media_id: str, access_token: str | None) -> MediaInfo:
        """Resolve ``media_id`` to its short-lived URL (``desk.whatsapp._media.media_info``)."""
        return await _media.media_info(
            self._http,
            f"{self._base}/{self._version}",
            media_id,
            access_token,
            seconds=self.media_timeout,
        )

    async def download_media(
        self,
        url: str,
        access_token: str | None,
        write: Callable[[bytes], Awaitable[Any]],
        *,
        max_bytes: int,
    ) -> tuple[int, str | None]:
        """Stream the media at ``url`` into ``write``; return (size, Content-Type).

        Raises CloudApiError (see ``desk.whatsapp._media.download_media``).
        """
        return await _media.download_media(
            self._http, url, access_token, write, seconds=self.media_timeout, max_bytes=max_bytes
        )

    async def upload_media(
        self,
        phone_number_id: str,
        access_token: str | None,
        path: Path,
        *,
        mime_type: str,
        filename: str,
    ) -> str:
        """Upload the file at ``path`` for ``phone_number_id``; return its media id.

        Waits for the number's throttle like a send. Raises CloudApiError, OSError.
        """
        await self._throttle.wait(phone_number_id)
        return await _media.upload_media(
            self._http,
            f"{self._base}/{self._version}",
            phone_number_id,
            access_token,
            path,
            mime_type=mime_type,
            filename=filename,
            seconds=self.media_timeout,
        )

    async def aclose(self) -> None:
        """Close the connection pool; the client cannot send afterwards. Never raises."""
        await self._http.aclose()


def _type_name(exc: BaseException) -> str:
    # send_message has a parameter called ``type``, which hides the builtin there.
    return type(exc).__name__


def _result(response: httpx.Response) -> SendResult:
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        data = None
    status = response.status_code
    if 200 <= status < 300:
        try:
            wamid = data["messages"][0]["id"]
        except (TypeError, KeyError, IndexError):
            wamid = None
        if not isinstance(wamid, str) or not wamid:
            # Accepted but unreadable: a retry could send the message twice.
            raise CloudApiError(
                "the Cloud API accepted the send but returned no message id",
                status=status,
                retryable=False,
                details={"body": response.text[:1000]},
            )
        return SendResult(wamid, data)
    raise error_from_response(response, data)
