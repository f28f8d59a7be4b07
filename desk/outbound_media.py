"""Outbound media that an agent uploaded: what the send job does before the send itself.

An uploaded file is stored PENDING like any reply, with ``metadata.upload`` saying where its
bytes wait (``desk.media_cache``) and what they are (``{file, mimeType, filename, size,
sha256, caption}``). The send job uploads the file to the Cloud API (``POST
/<phone-number-id>/media``), remembers the media id durably (a meta record per message: a
retried or replayed send does not upload twice), and sends the message naming that id. Once
sent, the file moves into the media cache under the id, so the agent's own copy is served
without a download; if it fails for good, the file is deleted.
"""

from __future__ import annotations

from typing import Any

from desk.media_cache import MediaCache, MediaMeta
from desk.whatsapp import CloudApiClient, CloudApiError
from storage import Account, Message, Storage

__all__ = [
    "discard_upload",
    "keep_sent_upload",
    "media_key",
    "prepare_send",
    "upload_of",
    "uploaded_media_id",
]


def upload_of(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The ``metadata.upload`` record of a message sent by upload, or None."""
    upload = metadata.get("upload")
    return upload if isinstance(upload, dict) and isinstance(upload.get("file"), str) else None


def media_key(phone_number_id: str, media_id: str) -> str:
    """The media cache key of a media id: ids are only meaningful for their number's token."""
    return f"{phone_number_id}/{media_id}"


def _meta_key(message_id: str) -> str:
    return f"media-upload:{message_id}"


async def uploaded_media_id(storage: Storage, message_id: str) -> str | None:
    """The media id the Cloud API gave an uploaded message's file, once it was uploaded."""
    return await storage.get_meta(_meta_key(message_id))


async def prepare_send(
    storage: Storage,
    cloud: CloudApiClient,
    media: MediaCache | None,
    message: Message,
    account: Account,
) -> tuple[str, dict[str, Any]]:
    """Return the (content, metadata) to send ``message`` with.

    For an upload: upload the file first (unless an earlier attempt did) and name the media id.
    Raises CloudApiError: the Cloud API's (retryable or not), or not retryable when the file
    is gone.
    """
    upload = upload_of(message.metadata)
    if upload is None:
        return message.content, message.metadata
    media_id = await uploaded_media_id(storage, message.id)
    if media_id is None:
        path = None if media is None else media.upload_path(upload["file"], message.tenant_id)
        if path is None:
            raise CloudApiError(
                "the uploaded file is no longer on this server",
                status=0,
                retryable=False,
                details={"reason": "upload_missing"},
            )
        filename = upload.get("filename") if isinstance(upload.get("filename"), str) else None
        try:
            media_id = await cloud.upload_media(
                account.phone_number_id,
                account.access_token,
                path,
                mime_type=str(upload.get("mimeType") or "application/octet-stream"),
                filename=filename or "file",
            )
        except OSError as exc:
            raise CloudApiError(
                f"the uploaded file cannot be read: {exc}", status=0, retryable=True
            ) from exc
        await storage.set_meta(_meta_key(message.id), media_id)
    part: dict[str, Any] = {"id": media_id}
    if message.type == "DOCUMENT" and isinstance(upload.get("filename"), str):
        part["filename"] = upload["filename"]
    caption = upload.get("caption")
    return (caption if isinstance(caption, str) else ""), {
        **message.metadata,
        message.type.lower(): part,
    }


async def keep_sent_upload(
    storage: Storage, media: MediaCache | None, message: Message, phone_number_id: str
) -> None:
    """After the send: move the file into the media cache under its media id. Never raises."""
    upload = upload_of(message.metadata)
    if upload is None or media is None:
        return
    try:
        media_id = await uploaded_media_id(storage, message.id)
    except Exception:  # the cache is an optimisation: the file can be fetched again
        media_id = None
    if media_id is None:
        await media.discard_upload(upload["file"], message.tenant_id)
        return
    meta = MediaMeta(
        mime_type=str(upload.get("mimeType") or "application/octet-stream"),
        size=int(upload.get("size") or 0),
        filename=upload.get("filename") if isinstance(upload.get("filename"), str) else None,
    )
    await media.adopt_upload(
        upload["file"], message.tenant_id, media_key(phone_number_id, media_id), meta
    )


async def discard_upload(media: MediaCache | None, message: Message) -> None:
    """A send that failed for good: delete its uploaded file. Never raises."""
    upload = upload_of(message.metadata)
    if upload is not None and media is not None:
        await media.discard_upload(upload["file"], message.tenant_id)
