"""Media routes: open a message's media, send a file by upload.

``GET /api/messages/{id}/media`` resolves the message's media id with the Cloud API, downloads
it with the number's token through the bounded on-disk cache (``desk.media_cache``) and
streams it. ``POST /api/conversations/{id}/media`` checks an upload against WhatsApp's types
and sizes (``desk.whatsapp.media_rule``), keeps it on disk and stores the reply PENDING; the
send job uploads it to the Cloud API and sends it (``desk.outbound_media``).

Both are scoped like the rest of the API: the caller's tenant, and a conversation the caller
may see; anything else is 404.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import IO, Any
from urllib.parse import quote

import anyio.to_thread
import quart
from quart import Blueprint, current_app, request

from api.context import runtime_of
from api.guard import claims, error, require_auth
from api.routes_conversations import _outside_window, visible_conversation
from desk.contract import message_payload
from desk.media_cache import CachedMedia, MediaMeta, UploadTooLarge
from desk.outbound_media import media_key, upload_of, uploaded_media_id
from desk.whatsapp import UPLOAD_MAX_BYTES, CloudApiError, media_rule, sniff_mismatch
from storage import Message

log = logging.getLogger("zapline.api")
blueprint = Blueprint("media", __name__)

MEDIA_TYPES = ("IMAGE", "VIDEO", "AUDIO", "DOCUMENT", "STICKER")
# Meta's limit on a media caption.
MAX_CAPTION = 1024
# What a browser may show inline; anything else is offered as a download.
_INLINE = ("image/", "video/", "audio/")
# Room for the multipart envelope around the largest file WhatsApp takes.
_UPLOAD_BODY_LIMIT = UPLOAD_MAX_BYTES + 1024 * 1024
_UPLOAD_PATH = re.compile(r"^/api/conversations/[^/]+/media$")


class MediaAwareRequest(quart.Request):
    """Quart's request, with the upload route's own body limit (the app's is the webhook's)."""

    def __init__(self, method: str, scheme: str, path: str, *args: Any, **kwargs: Any) -> None:
        upload = method == "POST" and bool(_UPLOAD_PATH.match(path))
        if upload:
            kwargs["max_content_length"] = _UPLOAD_BODY_LIMIT
        super().__init__(method, scheme, path, *args, **kwargs)
        if upload:
            self.max_content_length = _UPLOAD_BODY_LIMIT


def _media_id(message: Message) -> str | None:
    """The Cloud API media id a message names (Meta nests it under the type's key)."""
    if message.type not in MEDIA_TYPES:
        return None
    meta = message.metadata
    part = meta.get(message.type.lower())
    source = part if isinstance(part, dict) else meta
    media_id = source.get("id")
    return media_id if isinstance(media_id, str) and media_id else None


def _filename(message: Message) -> str | None:
    part = message.metadata.get(message.type.lower())
    upload = upload_of(message.metadata)
    for source in (part, upload):
        name = source.get("filename") if isinstance(source, dict) else None
        if isinstance(name, str) and name:
            return name
    return None


def _disposition(meta: MediaMeta, message_type: str) -> str:
    inline = message_type != "DOCUMENT" and meta.mime_type.startswith(_INLINE)
    if meta.filename is None:
        return "inline" if inline else "attachment"
    ascii_name = (
        unicodedata.normalize("NFKD", meta.filename).encode("ascii", "ignore").decode()
        or "download"
    )
    ascii_name = re.sub(r'[\\"\x00-\x1f\x7f]', "_", ascii_name)
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(meta.filename, safe='')}"


def _stream(media: CachedMedia, message_type: str) -> quart.Response:
    meta = media.meta
    headers = {
        "Content-Type": meta.mime_type,
        "Content-Length": str(meta.size),
        "Content-Disposition": _disposition(meta, message_type),
        # The bytes are the customer's: only this agent's browser may keep them.
        "Cache-Control": "private, max-age=3600",
        "X-Content-Type-Options": "nosniff",
        # A document opened directly must not run as a page of our origin.
        "Content-Security-Policy": "sandbox",
    }
    return quart.Response(media.chunks(), status=200, headers=headers)


def _cloud_failure(exc: CloudApiError) -> Any:
    if exc.details.get("reason") == "timeout":
        return error(504, f"the WhatsApp Cloud API did not answer in time: {exc.message}")
    return error(502, f"the WhatsApp Cloud API failed: {exc.message}", code=exc.code)


@blueprint.get("/api/messages/<message_id>/media")
@require_auth
async def get_media(message_id: str) -> Any:
    """The message's media bytes with their Content-Type (and Content-Length), from the
    cache or the Cloud API. 404: no such message (for this caller) or no media; 502: the
    Cloud API failed (``code``: Meta's); 504: it did not answer in time."""
    runtime = runtime_of(current_app)
    storage = runtime.storage
    message = await storage.get_message(claims().tenant_id, message_id)
    conversation = None if message is None else await visible_conversation(message.conversation_id)
    if message is None or conversation is None:
        return error(404, "message not found")
    upload = upload_of(message.metadata)
    pending = (
        None if upload is None else runtime.media.upload_path(upload["file"], message.tenant_id)
    )
    if pending is not None and upload is not None:  # not sent yet: our own copy
        handle = await anyio.to_thread.run_sync(pending.open, "rb")
        meta = MediaMeta(
            mime_type=str(upload.get("mimeType") or "application/octet-stream"),
            size=int(upload.get("size") or 0),
            filename=_filename(message),
        )
        return _stream(CachedMedia(meta, handle), message.type)
    media_id = _media_id(message)
    if media_id is None and upload is not None:
        media_id = await uploaded_media_id(storage, message.id)
    if media_id is None:
        return error(404, "this message has no media")
    account = await storage.get_account_by_id(conversation.tenant_id, conversation.account_id)
    if account is None:
        return error(404, "this message's WhatsApp number is no longer registered")
    cloud = runtime.desk.cloud
    filename = _filename(message)

    async def fetch(write: Callable[[bytes], Awaitable[Any]]) -> MediaMeta:
        info = await cloud.media_info(media_id, account.access_token)
        size, content_type = await cloud.download_media(
            info.url, account.access_token, write, max_bytes=UPLOAD_MAX_BYTES
        )
        mime = info.mime_type
        if mime == "application/octet-stream" and content_type:
            mime = content_type
        return MediaMeta(mime_type=mime, size=size, filename=filename)

    try:
        media = await runtime.media.open(media_key(account.phone_number_id, media_id), fetch)
    except CloudApiError as exc:
        log.warning("media %s of message %s: %s", media_id, message.id, exc)
        return _cloud_failure(exc)
    except OSError as exc:
        log.error("media cache unavailable: %s", exc)
        return error(503, "the media store is unavailable; retry later")
    return _stream(media, message.type)


def _clean_filename(raw: str | None) -> str | None:
    if not raw:
        return None
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:240] or None


async def _file_chunks(stream: IO[bytes]) -> AsyncIterator[bytes]:
    while True:
        chunk = await anyio.to_thread.run_sync(stream.read, 64 * 1024)
        if not chunk:
            return
        yield chunk


async def _request_chunks() -> AsyncIterator[bytes]:
    async for chunk in request.body:
        yield chunk


@blueprint.post("/api/conversations/<conversation_id>/media")
@require_auth
async def upload_media(conversation_id: str) -> Any:
    """Send a file: multipart (``file``, optional ``caption``) or the raw body with its
    Content-Type (``?filename=&caption=``). 202 with the PENDING message; 413 too large and
    415 a type WhatsApp does not take (both before anything reaches Meta); 409 outside the
    24-hour window; 400 no file or a bad caption."""
    runtime = runtime_of(current_app)
    if runtime.draining:
        return await _unread(error(503, "shutting down; retry later"))
    conversation = await visible_conversation(conversation_id)
    if conversation is None:
        return await _unread(error(404, "conversation not found"))
    closed = _outside_window("DOCUMENT", conversation)
    if closed is not None:
        return await _unread(error(409, closed))
    content_type = request.headers.get("Content-Type", "")
    if content_type.lower().startswith("multipart/form-data"):
        try:
            files = await request.files
            form = await request.form
        except ValueError as exc:  # a multipart body that does not parse
            return error(400, f"malformed multipart body: {exc}", field="file")
        part = files.get("file")
        if part is None:
            return error(400, "expected a multipart field 'file'", field="file")
        mime = part.mimetype or ""
        filename = _clean_filename(part.filename)
        caption = form.get("caption") or ""
        chunks = _file_chunks(part.stream)
    else:
        mime = content_type
        filename = _clean_filename(request.args.get("filename"))
        caption = request.args.get("caption") or ""
        chunks = _request_chunks()
    rule = media_rule(mime)
    if rule is None:
        return await _unread(
            error(
                415,
                f"WhatsApp does not accept {mime.split(';')[0] or 'this type'!s}: images jpeg/png,"
                " video mp4/3gpp, audio aac/amr/mpeg/mp4/ogg, documents pdf/txt/Office, stickers"
                " webp",
                field="file",
            )
        )
    if caption and rule.kind in ("AUDIO", "STICKER"):
        bad = error(400, f"WhatsApp sends no caption with {rule.kind.lower()}", field="caption")
        return await _unread(bad)
    if len(caption) > MAX_CAPTION:
        bad = error(400, f"caption is longer than {MAX_CAPTION} characters", field="caption")
        return await _unread(bad)
    declared = request.content_length
    if not content_type.lower().startswith("multipart/") and declared and declared > rule.max_bytes:
        return await _unread(_too_large(rule.kind, rule.max_bytes))
    try:
        stored = await runtime.media.save_upload(chunks, rule.max_bytes, conversation.tenant_id)
    except UploadTooLarge:
        return _too_large(rule.kind, rule.max_bytes)
    except OSError as exc:
        log.error("could not keep an upload: %s", exc)
        return error(503, "the media store is unavailable; retry later")
    path = runtime.media.upload_path(stored.id, conversation.tenant_id)
    head = b"" if path is None else await anyio.to_thread.run_sync(_head, path)
    if stored.size == 0 or sniff_mismatch(rule, head):
        await runtime.media.discard_upload(stored.id, conversation.tenant_id)
        if stored.size == 0:
            return error(400, "the file is empty", field="file")
        return error(415, f"the file is not a {rule.mime_type} file", field="file")
    metadata = {
        "upload": {
            "file": stored.id,
            "mimeType": rule.mime_type,
            "filename": filename,
            "size": stored.size,
            "sha256": stored.sha256,
            "caption": caption or None,
        }
    }
    message = await runtime.desk.send_reply(
        conversation,
        kind=rule.kind,
        content=caption or (filename if rule.kind == "DOCUMENT" else None) or "",
        metadata=metadata,
        user_id=claims().user_id,
    )
    return {"message": message_payload(message, conversation.contact)}, 202


async def _unread(response: Any) -> Any:
    """Read and drop what is left of the body, then answer ``response``.

    Answering while the client still sends makes most clients see a reset instead of the
    answer; nothing read here is kept (and the route's body limit still bounds it).
    """
    async for _ in request.body:  # after a parsed form: nothing (or what is in memory)
        pass
    return response


def _head(path: Any) -> bytes:
    with path.open("rb") as handle:
        return bytes(handle.read(16))


def _too_large(kind: str, limit: int) -> Any:
    size = f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
    return error(413, f"WhatsApp takes {kind.lower()} files of at most {size}", field="file")
