"""Cross-node fan-out over Redis PUBLISH/SUBSCRIBE on one channel.

Keeps the contract of ``engine/broker.py``. ASYNCIO ONLY: redis-py's client (``redis.asyncio``)
runs on asyncio and not under trio, so ``RedisBroker.run`` must run on anyio's asyncio
backend (the production backend; see DESIGN.md "Runtime").

Theory of operation
-------------------
Two connections per node. The publisher task waits on the ``OutgoingBuffer``, takes everything
pending (up to ``batch_size``) and sends it as one pipeline: one round trip however many emits
piled up meanwhile, in the order they were published. The subscriber task reads the channel,
decodes each message, skips its own node's, and calls ``deliver``.

Both connections are made with redis-py's own retries turned off: a broken connection surfaces
here, is logged and counted, and we reconnect with capped exponential backoff. A pipeline that
failed is put back at the head of the buffer and sent again after reconnecting, so a message
whose round trip broke after Redis took it can reach a peer twice; every desk event is a
snapshot or keyed by id, which a duplicate harms less than a loss. Messages published while a
subscriber is reconnecting are lost to it (Pub/Sub keeps nothing).
"""

from __future__ import annotations

import logging
import secrets
import socket
import time
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.abc
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from engine.broker import (
    BroadcastMessage,
    BrokerStatistics,
    BrokerUnavailable,
    Deliver,
    MalformedMessage,
    OutgoingBuffer,
)

__all__ = ["RedisBroker"]

log = logging.getLogger("zapline.broker.redis")

_ERRORS = (RedisError, OSError)


class _Backoff:
    """Capped exponential delays: first, 2x first, ... up to cap; ``reset`` after a success."""

    def __init__(self, first: float, cap: float) -> None:
        self._first, self._cap, self._next = first, cap, first

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self._cap)
        return delay

    def reset(self) -> None:
        self._next = self._first


class RedisBroker:
    """Fan-out between nodes through one Redis Pub/Sub channel (asyncio only)."""

    def __init__(
        self,
        url: str,
        *,
        channel: str = "zapline:fanout",
        node_id: str | None = None,
        max_pending: int = 10_000,
        batch_size: int = 1_000,
        connect_timeout: float = 10.0,
        first_backoff: float = 0.05,
        max_backoff: float = 5.0,
    ) -> None:
        """Configure (nothing connects before ``run``). Raises ``ValueError`` for bad sizes."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.url = url
        self._shown_url = _redact(url)
        self.channel = channel
        self.node_id = node_id or f"{socket.gethostname()}-{secrets.token_hex(4)}"
        self._buffer = OutgoingBuffer(max_pending)
        self._batch_size = batch_size
        self._connect_timeout = connect_timeout
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._published = 0
        self._received = 0
        self._malformed = 0
        self._reconnects = 0
        self._in_flight = 0

    # -- the contract ------------------------------------------------------------------------

    def publish_nowait(self, message: BroadcastMessage) -> None:
        """Encode ``message`` and queue it for the publisher task; never blocks.

        Drops the oldest pending message when ``max_pending`` are waiting. Raises ``TypeError``
        if its arguments are not JSON-serialisable.
        """
        self._buffer.put_nowait(message.encode())

    async def run(
        self,
        deliver: Deliver,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Subscribe, signal started, then publish and deliver until cancelled.

        Raises ``BrokerUnavailable`` if no subscription succeeds within ``connect_timeout``.
        """
        client = aioredis.Redis.from_url(
            self.url,
            # CLIENT SETNAME refuses spaces; the name lets an operator (and the tests) find
            # this node's connections in CLIENT LIST.
            client_name="zapline:" + "".join("_" if c.isspace() else c for c in self.node_id),
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=min(5.0, self._connect_timeout),
            socket_timeout=10.0,
            health_check_interval=15,
        )
        try:
            pubsub = await self._first_subscription(client)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._publish_loop, client)
                log.info("broker: node %s on redis channel %r", self.node_id, self.channel)
                task_status.started()
                await self._subscribe_loop(client, pubsub, deliver)
        finally:
            with anyio.CancelScope(shield=True):
                await client.aclose()

    def statistics(self) -> BrokerStatistics:
        """Return a snapshot of the counters; never raises."""
        return BrokerStatistics(
            node_id=self.node_id,
            published=self._published,
            received=self._received,
            dropped=self._buffer.dropped,
            malformed=self._malformed,
            reconnects=self._reconnects,
            pending=len(self._buffer) + self._in_flight,
            max_pending=self._buffer.max_pending,
        )

    # -- publisher ---------------------------------------------------------------------------

    async def _publish_loop(self, client: aioredis.Redis) -> None:
        backoff = _Backoff(self._first_backoff, self._max_backoff)
        while True:
            await self._buffer.wait()
            batch = self._buffer.take(self._batch_size)
            self._in_flight = len(batch)
            try:
                async with client.pipeline(transaction=False) as pipe:
                    for payload in batch:
                        pipe.publish(self.channel, payload)
                    await pipe.execute()
            except _ERRORS as exc:
                self._in_flight = 0
                self._buffer.put_back(batch)
                self._reconnects += 1
                delay = backoff.next()
                log.warning(
                    "broker: publishing %d messages to %s failed (%s); retrying in %.2f s",
                    len(batch),
                    self._shown_url,
                    _describe(exc),
                    delay,
                )
                await anyio.sleep(delay)
                continue
            self._in_flight = 0
            self._published += len(batch)
            backoff.reset()

    # -- subscriber --------------------------------------------------------------------------

    async def _subscribe(self, client: aioredis.Redis) -> PubSub:
        """A pubsub whose SUBSCRIBE the server has confirmed; raises RedisError/OSError."""
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            with anyio.fail_after(5):
                while True:
                    reply = await pubsub.get_message(timeout=1.0)
                    if reply is not None and reply["type"] == "subscribe":
                        return pubsub
        except BaseException:
            await _close_quietly(pubsub)
            raise

    async def _first_subscription(self, client: aioredis.Redis) -> PubSub:
        deadline = time.monotonic() + self._connect_timeout
        backoff = _Backoff(self._first_backoff, self._max_backoff)
        while True:
            try:
                return await self._subscribe(client)
            except (*_ERRORS, TimeoutError) as exc:
                delay = backoff.next()
                if time.monotonic() + delay > deadline:
                    raise BrokerUnavailable(
                        f"cannot subscribe to Redis at {self._shown_url} ({_describe(exc)}); start Redis"
                        " there, fix REDIS_URL, or unset it to run a single node"
                    ) from exc
                await anyio.sleep(delay)

    async def _subscribe_loop(
        self, client: aioredis.Redis, pubsub: PubSub, deliver: Deliver
    ) -> None:
        backoff = _Backoff(self._first_backoff, self._max_backoff)
        try:
            while True:
                try:
                    # A bounded wait lets redis-py's health check ping an idle connection.
                    reply = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                except _ERRORS as exc:
                    await _close_quietly(pubsub)
                    pubsub = await self._resubscribe(client, backoff, exc)
                    continue
                if reply is not None and reply["type"] == "message":
                    self._handle(reply["data"], deliver)
        finally:
            with anyio.CancelScope(shield=True):
                await _close_quietly(pubsub)

    async def _resubscribe(
        self, client: aioredis.Redis, backoff: _Backoff, error: BaseException
    ) -> PubSub:
        while True:
            self._reconnects += 1
            delay = backoff.next()
            log.warning(
                "broker: subscription to %s lost (%s); reconnecting in %.2f s",
                self._shown_url,
                _describe(error),
                delay,
            )
            await anyio.sleep(delay)
            try:
                pubsub = await self._subscribe(client)
            except (*_ERRORS, TimeoutError) as exc:
                error = exc
                continue
            log.info(
                "broker: resubscribed to %r after %d reconnects", self.channel, self._reconnects
            )
            backoff.reset()
            return pubsub

    def _handle(self, data: bytes, deliver: Deliver) -> None:
        try:
            message = BroadcastMessage.decode(data)
        except MalformedMessage as exc:
            self._malformed += 1
            log.warning("broker: ignoring a malformed message on %r: %s", self.channel, exc)
            return
        if message.node_id == self.node_id:
            return
        self._received += 1
        try:
            deliver(message)
        except Exception:
            log.exception(
                "broker: delivering %r from node %s failed", message.event, message.node_id
            )


async def _close_quietly(pubsub: PubSub) -> None:
    try:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    except _ERRORS:
        pass


def _redact(url: str) -> str:
    """``url`` without its password, fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
