"""The browser console: ``/`` and its static files, served from the package itself.

The console is plain HTML, CSS and ES modules in ``api/console/`` (no build step). Its one
dependency, the official ``socket.io-client``, is locked in ``api/console/package-lock.json``
and installed by ``npm ci`` (``make run`` does it) into ``api/console/node_modules``; this
module serves the client's self-contained ESM bundle from there, so the console needs no CDN
and works with no internet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from quart import Blueprint, current_app, send_file

from api.context import runtime_of
from api.guard import error

blueprint = Blueprint("console", __name__)

CONSOLE_DIR = Path(__file__).with_name("console")
CLIENT_DIST = CONSOLE_DIR / "node_modules" / "socket.io-client" / "dist"
# What the console ships: its own files by extension, the client by exact name.
_OWN_TYPES = {".html", ".css", ".js"}
_CLIENT_FILES = {"socket.io.esm.min.js", "socket.io.esm.min.js.map"}


def _socket_origins() -> str:
    """The socket listener's origin in http(s) and ws(s) form, for ``connect-src``."""
    url = urlsplit(runtime_of(current_app).settings.socket_url())
    if not url.scheme or not url.netloc:
        return ""
    ws = "wss" if url.scheme == "https" else "ws"
    return f"{url.scheme}://{url.netloc} {ws}://{url.netloc}"


def _headers(response: Any) -> Any:
    # Revalidate on every load (the files are small and carry ETags), so an upgrade shows at
    # once; the policy keeps every script and connection to this server and its socket.
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"media-src 'self' blob:; connect-src 'self' {_socket_origins()}; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
    return response


@blueprint.get("/")
async def index() -> Any:
    """The console's page."""
    return _headers(await send_file(CONSOLE_DIR / "index.html", conditional=True))


@blueprint.get("/console/<name>")
async def asset(name: str) -> Any:
    """One of the console's own files (flat directory: no sub-paths, no dot files); else 404."""
    path = CONSOLE_DIR / name
    if name.startswith(".") or path.suffix not in _OWN_TYPES or not path.is_file():
        return error(404, "not found")
    return _headers(await send_file(path, conditional=True))


@blueprint.get("/console/vendor/<name>")
async def vendor(name: str) -> Any:
    """The installed ``socket.io-client`` bundle; 503 saying how to install it when missing."""
    if name not in _CLIENT_FILES:
        return error(404, "not found")
    path = CLIENT_DIST / name
    if not path.is_file():
        return error(
            503,
            "the console's socket.io-client is not installed: run `make run`, or "
            "`npm ci` in api/console",
        )
    return _headers(await send_file(path, conditional=True))
