"""Webhook load: WhatsApp Cloud API bodies, a raw keep-alive HTTP/1.1 poster, and pacing.

Posting goes over a few persistent connections with a hand-written HTTP/1.1 client rather
than httpx: at 1000 webhooks/s the load generator's own CPU would otherwise be part of what
is measured. Pacing follows an absolute schedule (t0 + i/rate), so a late wake-up is caught
up rather than accumulated as drift.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from bench._stats import DeliveryLedger, format_body

WEBHOOK_PATH = "/webhooks/whatsapp"


def webhook_body(
    *, phone_number_id: str, wa_id: str, name: str, wamid: str, text: str, unix_s: int
) -> bytes:
    """Return the JSON body of a WhatsApp Cloud API webhook carrying one inbound text message."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
        "messages": [
            {
                "from": wa_id,
                "id": wamid,
                "timestamp": str(unix_s),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    entry = {"id": f"waba-{phone_number_id}", "changes": [{"value": value, "field": "messages"}]}
    return orjson.dumps({"object": "whatsapp_business_account", "entry": [entry]})


@dataclass(frozen=True)
class WebhookPlan:
    """Who the webhooks of a run come from: per tenant its phone_number_id; contacts per tenant.

    Webhook ``i`` of a phase goes to tenant ``i % T`` (round-robin) and, within it, to contact
    ``(i // T) % contacts`` so that several conversations of a tenant are processed in parallel.
    """

    phone_number_ids: Sequence[str]
    contacts: int = 10
    run_id: str = "run"

    def body(self, index: int, seq: int, sent_ns: int) -> tuple[int, bytes]:
        """Return (tenant index, body) of the ``index``-th webhook of a phase, numbered ``seq``."""
        tenants = len(self.phone_number_ids)
        tenant = index % tenants
        contact = (index // tenants) % self.contacts
        wa_id = f"55119{tenant:04d}{contact:04d}"
        body = webhook_body(
            phone_number_id=self.phone_number_ids[tenant],
            wa_id=wa_id,
            name=f"Bench {tenant}-{contact}",
            wamid=f"wamid.bench.{self.run_id}.{seq}",
            text=format_body(seq, sent_ns),
            unix_s=sent_ns // 1_000_000_000,
        )
        return tenant, body


class HttpPoster:
    """POSTs queued bodies over ``connections`` keep-alive connections; counts the answers.

    ``on_answer(body, status)``, when given, is told the outcome of each POST: its HTTP
    status, or None when the connection failed and the POST was given up.
    """

    def __init__(
        self,
        api_url: str,
        *,
        connections: int = 8,
        path: str = WEBHOOK_PATH,
        on_answer: Callable[[bytes, int | None], None] | None = None,
    ) -> None:
        parts = urlsplit(api_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only plain http API URLs are supported, got {api_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self._head = (
            f"POST {parts.path.rstrip('/')}{path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode("ascii")
        self._connections = connections
        self._on_answer = on_answer
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.submitted = 0
        self.answered = 0  # got a response, or gave up on after a connection error

    async def __aenter__(self) -> HttpPoster:
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self._connections)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def submit(self, body: bytes) -> None:
        """Queue one POST; returns at once."""
        self.submitted += 1
        self._queue.put_nowait(body)

    async def drain(self, limit_s: float = 30.0) -> bool:
        """Wait until every queued POST has been answered, at most ``limit_s`` seconds.

        Returns True when all were answered, False when some were still waiting at the limit
        (a server that cannot keep up: they count in ``unanswered`` and ``failed``).
        """
        try:
            async with asyncio.timeout(limit_s):
                await self._queue.join()
        except TimeoutError:
            return False
        return True

    @property
    def unanswered(self) -> int:
        """Return how many POSTs are queued or in flight without an answer yet."""
        return self.submitted - self.answered

    @property
    def failed(self) -> int:
        """Return how many POSTs got no 2xx answer (unanswered ones included)."""
        bad = sum(n for s, n in self.statuses.items() if not 200 <= s < 300)
        return bad + sum(self.errors.values()) + self.unanswered

    async def _worker(self) -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while True:
            body = await self._queue.get()
            try:
                for attempt in (0, 1):
                    reused = writer is not None
                    try:
                        if writer is None or reader is None:
                            reader, writer = await asyncio.open_connection(self.host, self.port)
                        writer.write(self._head + str(len(body)).encode() + b"\r\n\r\n" + body)
                        status, keep = await _read_response(reader)
                        self.statuses[status] += 1
                        self.answered += 1
                        if self._on_answer is not None:
                            self._on_answer(body, status)
                        if not keep:
                            writer.close()
                            writer = None
                        break
                    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                        if writer is not None:
                            writer.close()
                        writer = None
                        # a kept-alive connection the server closed while idle: retry once
                        if attempt or not reused:
                            self.errors[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
                            self.answered += 1
                            if self._on_answer is not None:
                                self._on_answer(body, None)
                            break
            finally:
                self._queue.task_done()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    keep = headers.get("connection") != "close" and lines[0].startswith("HTTP/1.1")
    return status, keep


async def send_paced(
    poster: HttpPoster,
    ledger: DeliveryLedger,
    plan: WebhookPlan,
    *,
    rate: float,
    count: int,
    first_seq: int,
) -> int:
    """Send ``count`` webhooks at ``rate``/s on an absolute schedule; returns the next free seq.

    Each seq is registered in ``ledger`` before its POST is queued; the send time in its body
    is read just before that, so time spent waiting for a free connection counts as latency.
    """
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.05
    for i in range(count):
        delay = t0 + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        seq = first_seq + i
        tenant, body = plan.body(i, seq, time.time_ns())
        ledger.sent(seq, tenant)
        poster.submit(body)
    return first_seq + count
