"""``POST /webhooks/whatsapp`` on the engine's own listener (the Socket.IO port).

Why here as well as on the API port (issue 16): the webhook's HTTP layer is cheaper on the
engine's listener than through Hypercorn. h11 parses the request in the connection's own task
and the answer leaves in one socket write; Hypercorn adds its ASGI and stream layers, a task
hop per request and three writes per response (headers, body, end). Measured on the bench
machine (2 cores, server pinned), same server, ports alternated, medians of 3:

* ``python -m bench.micro_webhook_http`` (600 POSTs/s, a body refused 400 after its JSON is
  parsed: no commit, no log line): 0.287 ms of server CPU per POST on this port, 0.367 ms on
  the API port: 0.08 ms (22 %) less.
* ``python -m bench fanout --tenants 100 --clients 1000 --rate 600 --duration 15 --webhook-port
  socket|api``, 6 runs a port over two sittings: regressing ``cost_cpu_ms`` on inbox commits
  per webhook, the API port costs 0.10 ms more per webhook (residual sd 0.02 ms), all of it
  on the event loop outside the handler (``cost_rest_ms``, where Hypercorn's parsing is).
  Delivery p50 is lower here (7.0 vs 10.6 ms). The raw medians do not show the saving
  (``cost_cpu_ms`` 1.43 vs 1.35 ms, ``cost_http_ms`` 0.054 vs 0.058 ms, server CPU 84 vs 79 %,
  one sitting): answered sooner, the posts wait less for each other in the group commit, so
  this port made more, smaller inbox commits (0.70 vs 0.48 a webhook, medians) and one commit
  costs about 0.9 ms of CPU. Which way that goes depends on load; the HTTP saving does not.
* Since inbox commits are paced under load (``ZAPLINE_COMMIT_INTERVAL``, 5 ms), the port no
  longer decides how many there are, and the saving shows in the raw figures: same bench,
  two runs a port alternated, 1.10 and 1.07 ms of CPU per webhook here against 1.15 and 1.17
  on the API port (server CPU 64 % against 68 %, p50 5.7 against 7.4 ms).

The handler is mounted on the engine with ``EngineIO.add_http_route`` at wiring time
(``zapline.runtime``); the engine knows nothing of webhooks. The engine reads the body within
``ZAPLINE_WEBHOOK_MAX_BYTES`` (by ``Content-Length`` or while reading, chunked too; past it,
what is still coming is read and dropped within bounds), and writes the answer in one socket
write on a kept-alive connection. What the post decides is ``api.webhook_intake``'s, the same
code as the API port's. ``GET /webhooks/whatsapp`` (Meta's verification handshake, Quart's)
stays on the API port: here it answers 405 with a JSON body saying so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from api.webhook_intake import DISCARD_BYTES, DISCARD_SECONDS, PATH, WebhookIntake
from engine import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from api.context import ApiServices
    from engine import EngineIO

__all__ = ["EngineWebhook", "mount_webhook"]

_JSON = b"application/json"
_GET_REFUSED = (
    b'{"error":"GET /webhooks/whatsapp (the verification handshake) is served on the API'
    b' port; this port takes the webhook POSTs only"}'
)


class EngineWebhook:
    """The engine route's handlers: the post (``WebhookIntake``) and a GET that says where."""

    __slots__ = ("_intake",)

    def __init__(self, runtime: ApiServices) -> None:
        self._intake = WebhookIntake(runtime)

    async def post(self, request: HttpRequest) -> HttpResponse:
        """Answer one webhook post whose body the engine read (None: over the limit)."""
        body = request.body

        async def read() -> bytes | None:
            return body

        status, payload, rid = await self._intake.answer(request.headers, read)
        return HttpResponse(
            status, payload, ((b"content-type", _JSON), (b"x-request-id", rid.encode("latin-1")))
        )

    async def get(self, request: HttpRequest) -> HttpResponse:
        """Answer 405: the verification handshake is the API port's."""
        return HttpResponse(405, _GET_REFUSED, ((b"content-type", _JSON), (b"allow", b"POST")))


def mount_webhook(engine: EngineIO, runtime: ApiServices) -> EngineWebhook:
    """Serve ``POST /webhooks/whatsapp`` (and the GET refusal) on ``engine``'s listener.

    Returns the handler object. Raises ``ValueError`` if the path is already mounted.
    """
    webhook = EngineWebhook(runtime)
    engine.add_http_route(
        "POST",
        PATH,
        webhook.post,
        max_body=runtime.settings.webhook_max_bytes,
        discard_bytes=DISCARD_BYTES,
        discard_seconds=DISCARD_SECONDS,
    )
    engine.add_http_route("GET", PATH, webhook.get, max_body=0)
    return webhook
