"""The fake Cloud API's media endpoints, the way Graph serves them (see ``api.fake_cloud``).

``GET /<version>/<media-id>`` (bearer token) answers ``{url, mime_type, sha256, file_size,
id, messaging_product}`` with a URL on the fake itself; ``GET`` that URL with a token answers
the bytes (401 without). ``POST /<version>/<phone-number-id>/media`` (multipart
``messaging_product``, ``type``, ``file``) keeps an upload and answers ``{id}``; uploads can
be downloaded again like any media. For tests: ``POST /_fake/media?filename=`` (raw body and
its Content-Type) adds media and answers ``{id}``; ``GET /_fake/media-stats`` counts lookups
and downloads per id and lists uploads; ``POST /_fake/media-fail`` ``{"count", "status",
"code", "delay", "target"}`` makes the next lookups (or, with ``"target": "upload"``,
uploads) fail or answer late.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
import quart

__all__ = ["add_media_routes"]


@dataclass
class _Media:
    data: bytes
    mime_type: str
    filename: str | None


@dataclass
class _MediaState:
    media: dict[str, _Media] = field(default_factory=dict)
    lookups: dict[str, int] = field(default_factory=dict)
    downloads: dict[str, int] = field(default_factory=dict)
    uploads: list[dict[str, Any]] = field(default_factory=list)
    fail_count: int = 0
    fail_status: int = 500
    fail_code: int | None = None
    fail_delay: float = 0.0
    fail_uploads: bool = False  # the armed failures hit uploads instead of lookups

    def take_failure(self, upload: bool) -> bool:
        """True when this request is to fail (and one armed failure is spent)."""
        if self.fail_count <= 0 or self.fail_uploads != upload:
            return False
        self.fail_count -= 1
        return True

    def add(self, data: bytes, mime_type: str, filename: str | None) -> str:
        media_id = str(uuid.uuid4().int)[:16]
        self.media[media_id] = _Media(data, mime_type, filename)
        return media_id


def _graph_error(status: int, code: int, message: str) -> quart.Response:
    body = {
        "error": {
            "message": f"(#{code}) {message}",
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": uuid.uuid4().hex[:16],
        }
    }
    return quart.Response(orjson.dumps(body), status=status, content_type="application/json")


def _authorized() -> bool:
    auth = quart.request.headers.get("Authorization", "")
    return auth.startswith("Bearer ") and bool(auth[len("Bearer ") :].strip())


def _unauthorized() -> quart.Response:
    return _graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")


def add_media_routes(app: quart.Quart) -> None:
    """Add the media endpoints (module docstring) to the fake's ``app``."""
    state = _MediaState()
    # Uploads may be as large as WhatsApp's largest document.
    app.config["MAX_CONTENT_LENGTH"] = 128 * 1024 * 1024

    @app.get("/<version>/<media_id>")
    async def media_lookup(version: str, media_id: str) -> quart.Response:
        if not _authorized():
            return _unauthorized()
        state.lookups[media_id] = state.lookups.get(media_id, 0) + 1
        if state.take_failure(upload=False):
            if state.fail_delay > 0:
                await anyio.sleep(state.fail_delay)
            else:
                code = state.fail_code or (131000 if state.fail_status >= 500 else 100)
                return _graph_error(state.fail_status, code, "failure injected by media-fail")
        media = state.media.get(media_id)
        if media is None:
            return _graph_error(400, 100, f"Unsupported get request: media {media_id} not found")
        body = {
            "messaging_product": "whatsapp",
            "url": f"{quart.request.host_url}_fake/media-file/{media_id}",
            "mime_type": media.mime_type,
            "sha256": hashlib.sha256(media.data).hexdigest(),
            "file_size": str(len(media.data)),
            "id": media_id,
        }
        return quart.Response(orjson.dumps(body), content_type="application/json")

    @app.get("/_fake/media-file/<media_id>")
    async def media_file(media_id: str) -> quart.Response:
        if not _authorized():
            return _unauthorized()
        media = state.media.get(media_id)
        if media is None:
            return _graph_error(404, 100, "media not found")
        state.downloads[media_id] = state.downloads.get(media_id, 0) + 1
        return quart.Response(media.data, content_type=media.mime_type)

    @app.post("/<version>/<phone_number_id>/media")
    async def media_upload(version: str, phone_number_id: str) -> quart.Response:
        if not _authorized():
            return _unauthorized()
        form = await quart.request.form
        files = await quart.request.files
        if state.take_failure(upload=True):
            code = state.fail_code or (131000 if state.fail_status >= 500 else 100)
            return _graph_error(state.fail_status, code, "failure injected by media-fail")
        part = files.get("file")
        if form.get("messaging_product") != "whatsapp":
            return _graph_error(400, 100, "messaging_product must be 'whatsapp'")
        if part is None:
            return _graph_error(400, 100, "a multipart 'file' is required")
        data = part.read()
        mime = form.get("type") or part.mimetype or "application/octet-stream"
        media_id = state.add(data, mime, part.filename)
        state.uploads.append(
            {
                "id": media_id,
                "phone_number_id": phone_number_id,
                "type": mime,
                "filename": part.filename,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
        return quart.Response(orjson.dumps({"id": media_id}), content_type="application/json")

    @app.post("/_fake/media")
    async def add_media() -> tuple[dict[str, Any], int]:
        raw = await quart.request.get_data()
        data = raw if isinstance(raw, bytes) else raw.encode()
        mime = quart.request.headers.get("Content-Type", "application/octet-stream")
        media_id = state.add(data, mime, quart.request.args.get("filename"))
        return {"id": media_id}, 200

    @app.get("/_fake/media-stats")
    async def media_stats() -> dict[str, Any]:
        return {
            "lookups": dict(state.lookups),
            "downloads": dict(state.downloads),
            "uploads": list(state.uploads),
        }

    @app.post("/_fake/media-fail")
    async def media_fail() -> tuple[dict[str, Any], int]:
        spec = await quart.request.get_json(silent=True)
        if not isinstance(spec, dict) or not isinstance(spec.get("count"), int):
            return {"error": 'expected {"count": n, "status": s, "code": c, "delay": d}'}, 400
        state.fail_count = max(0, spec["count"])
        state.fail_status = int(spec.get("status", 500))
        code = spec.get("code")
        state.fail_code = code if isinstance(code, int) else None
        state.fail_delay = float(spec.get("delay", 0.0))
        state.fail_uploads = spec.get("target") == "upload"
        return {"ok": True, "pending": state.fail_count}, 200
