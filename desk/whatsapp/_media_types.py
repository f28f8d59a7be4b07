"""What WhatsApp accepts as outbound media: the MIME types of each kind and their size limits.

Source: Meta's Cloud API reference, "Supported media types" (Business Messaging > WhatsApp >
Cloud API > Reference > Media), which lists per kind the MIME types and the largest size:
audio (aac, amr, mpeg, mp4, ogg/opus) 16 MB, documents (text/plain, PDF, Word, Excel,
PowerPoint) 100 MB, images (jpeg, png) 5 MB, stickers (webp) 500 KB animated / 100 KB static,
video (mp4, 3gpp) 16 MB. A static and an animated WebP cannot be told apart without decoding,
so a sticker is held to the animated limit; Meta refuses a too-large static one later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["MEDIA_KINDS", "MediaRule", "UPLOAD_MAX_BYTES", "media_rule", "sniff_mismatch"]

MB: Final = 1024 * 1024
KB: Final = 1024


@dataclass(frozen=True, slots=True)
class MediaRule:
    """One accepted MIME type: the message type it is sent as and its largest size."""

    mime_type: str
    kind: str  # IMAGE, VIDEO, AUDIO, DOCUMENT or STICKER
    max_bytes: int


_RULES: Final = (
    MediaRule("image/jpeg", "IMAGE", 5 * MB),
    MediaRule("image/png", "IMAGE", 5 * MB),
    MediaRule("image/webp", "STICKER", 500 * KB),
    MediaRule("video/mp4", "VIDEO", 16 * MB),
    MediaRule("video/3gpp", "VIDEO", 16 * MB),
    MediaRule("audio/aac", "AUDIO", 16 * MB),
    MediaRule("audio/amr", "AUDIO", 16 * MB),
    MediaRule("audio/mpeg", "AUDIO", 16 * MB),
    MediaRule("audio/mp4", "AUDIO", 16 * MB),
    MediaRule("audio/ogg", "AUDIO", 16 * MB),
    MediaRule("text/plain", "DOCUMENT", 100 * MB),
    MediaRule("application/pdf", "DOCUMENT", 100 * MB),
    MediaRule("application/msword", "DOCUMENT", 100 * MB),
    MediaRule("application/vnd.ms-excel", "DOCUMENT", 100 * MB),
    MediaRule("application/vnd.ms-powerpoint", "DOCUMENT", 100 * MB),
    MediaRule(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "DOCUMENT",
        100 * MB,
    ),
    MediaRule(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "DOCUMENT", 100 * MB
    ),
    MediaRule(
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "DOCUMENT",
        100 * MB,
    ),
)
MEDIA_KINDS: Final = {rule.mime_type: rule for rule in _RULES}
# The largest upload of any kind (a document).
UPLOAD_MAX_BYTES: Final = max(rule.max_bytes for rule in _RULES)
# Meta also names 3GPP video "video/3gp"; browsers say "audio/x-m4a" for m4a files.
_ALIASES: Final = {"video/3gp": "video/3gpp", "audio/x-m4a": "audio/mp4", "audio/mp3": "audio/mpeg"}

# The first bytes of the image formats: a file whose declared type says image but whose bytes
# are something else would be refused by Meta after the upload; it is refused here instead.
_MAGIC: Final = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
}


def media_rule(content_type: str) -> MediaRule | None:
    """The rule for a ``Content-Type`` value (parameters such as ``; codecs=opus`` ignored),
    or None when WhatsApp does not accept that type."""
    mime = content_type.split(";", 1)[0].strip().lower()
    return MEDIA_KINDS.get(_ALIASES.get(mime, mime))


def sniff_mismatch(rule: MediaRule, head: bytes) -> bool:
    """True when ``head`` (the file's first bytes) is plainly not the rule's image format."""
    if rule.mime_type == "image/webp":
        return not (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    signatures = _MAGIC.get(rule.mime_type)
    return signatures is not None and not any(head.startswith(s) for s in signatures)
