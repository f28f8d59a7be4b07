"""Extra HTTP routes on the engine's listener: the contract between the listener and a handler.

The listener serves Engine.IO on ``options.path``; an application may mount a few plain HTTP
routes beside it (an exact ``(method, path)`` each) so that a hot request need not cross a
second HTTP server. The contract, kept by ``_http.serve_route``:

* the request's body is read whole before the handler runs, up to the route's ``max_body``
  (told by ``Content-Length`` or found while reading, chunked bodies included); past it the
  handler gets ``body=None``, and what the client is still sending is read and dropped (at
  most ``discard_bytes``, ``discard_seconds``) so it sees the answer rather than a reset;
* the handler returns an ``HttpResponse``; the listener adds ``content-length`` and writes
  status line, headers and body in one socket write;
* a handler that raises gets a 500 with a JSON body and a log line; the connection (and the
  listener) go on; a handler that never returns is the handler's bug, not bounded here;
* keep-alive is preserved whenever the request's body was read to its end;
* a path that is mounted for other methods only answers 405 with an ``allow`` header.

Nothing here knows which application mounts what: the import arrows point into the engine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["HttpHandler", "HttpRequest", "HttpResponse", "HttpRoute", "HttpRoutes"]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request to a mounted route, its body already read."""

    method: str
    path: str
    # header names lower-case; values decoded as latin-1 (every byte kept, RFC 9110)
    headers: Mapping[str, str]
    # the whole body; None when it was larger than the route's max_body
    body: bytes | None
    remote: str  # "ip:port" of the peer


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """What a handler answers; ``content-length`` is added by the listener."""

    status: int
    body: bytes = b""
    headers: Sequence[tuple[bytes, bytes]] = ()


HttpHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]


@dataclass(frozen=True, slots=True)
class HttpRoute:
    """A mounted handler and the bounds the listener reads its requests' bodies within."""

    handler: HttpHandler
    max_body: int = 1_000_000
    discard_bytes: int = 4 * 1024 * 1024
    discard_seconds: float = 5.0


class HttpRoutes:
    """The mounted routes of one listener: ``path -> {method -> HttpRoute}``, exact matches."""

    __slots__ = ("by_path", "_reserved")

    def __init__(self, *reserved: str) -> None:
        """No routes yet; ``reserved`` paths (the Engine.IO path) can never be mounted."""
        self.by_path: dict[str, dict[str, HttpRoute]] = {}
        self._reserved = frozenset(reserved)

    def add(self, method: str, path: str, route: HttpRoute) -> None:
        """Mount ``route`` for ``method path``; returns None.

        Raises ``ValueError`` for a reserved path, a path not starting with ``/`` or a
        ``method path`` already mounted.
        """
        method = method.upper()
        if not path.startswith("/") or path in self._reserved:
            raise ValueError(f"cannot mount a route on {path!r}")
        methods = self.by_path.setdefault(path, {})
        if method in methods:
            raise ValueError(f"{method} {path} is already mounted")
        methods[method] = route
