"""CloudApiClient against the real fake Cloud API served on 127.0.0.1 (asyncio: Quart)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import orjson
import pytest
import quart

from api.fake_cloud import serve_fake
from api.serve import serve_app
from desk.whatsapp import (
    CloudApiClient,
    CloudApiError,
    parse_webhook,
    verify_signature,
)

asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])
pytestmark = pytest.mark.anyio

PID = "106540352242922"


@asynccontextmanager
async def running_fake(**options: Any) -> AsyncIterator[str]:
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        port = await tg.start(
            lambda task_status: serve_fake(
                "127.0.0.1", 0, shutdown_trigger=stop.wait, task_status=task_status, **options
            )
        )
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            stop.set()


@asynccontextmanager
async def client_and_fake(**options: Any) -> AsyncIterator[tuple[CloudApiClient, str]]:
    async with running_fake(**options) as url:
        client = CloudApiClient(url, rate_per_second=1000)
        try:
            yield client, url
        finally:
            await client.aclose()


async def _fail_next(url: str, count: int, status: int, code: int | None = None) -> None:
    async with httpx.AsyncClient() as http:
        spec = {"count": count, "status": status} | ({"code": code} if code else {})
        assert (await http.post(f"{url}/_fake/fail", json=spec)).status_code == 200


async def _sent(url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        return list((await http.get(f"{url}/_fake/sent")).json()["messages"])


@asyncio_only
async def test_send_text_returns_the_wamid_the_fake_recorded() -> None:
    async with client_and_fake() as (client, url):
        result = await client.send_message(PID, "token", "5511988887777", "TEXT", "Olá!")
        assert result.whatsapp_message_id.startswith("wamid.")
        assert result.raw["contacts"] == [{"input": "5511988887777", "wa_id": "5511988887777"}]
        (sent,) = await _sent(url)
        assert sent == {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "5511988887777",
            "type": "text",
            "text": {"body": "Olá!"},
            "wamid": result.whatsapp_message_id,
            "phone_number_id": PID,
        }


@asyncio_only
async def test_media_location_and_reply_bodies() -> None:
    async with client_and_fake() as (client, url):
        await client.send_message(
            PID, "t", "55", "IMAGE", "look", {"link": "https://x.invalid/a.jpg"}
        )
        await client.send_message(
            PID, "t", "55", "DOCUMENT", None, {"document": {"id": "m1", "filename": "a.pdf"}}
        )
        await client.send_message(
            PID, "t", "55", "LOCATION", None, {"latitude": -23.5, "longitude": -46.6, "name": "Sé"}
        )
        await client.send_message(PID, "t", "55", "TEXT", "re", {"reply_to": "wamid.Q"})
        sent = await _sent(url)
        assert sent[0]["image"] == {"link": "https://x.invalid/a.jpg", "caption": "look"}
        assert sent[1]["document"] == {"id": "m1", "filename": "a.pdf"}
        assert sent[2]["location"] == {"latitude": -23.5, "longitude": -46.6, "name": "Sé"}
        assert sent[3]["context"] == {"message_id": "wamid.Q"}


@asyncio_only
@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (429, 130429, True),
        (400, 130429, True),
        (400, 131056, True),
        (500, None, True),
        (503, None, True),
        (400, 131047, False),
        (400, 100, False),
    ],
)
async def test_failures_are_classified(status: int, code: int | None, retryable: bool) -> None:
    async with client_and_fake() as (client, url):
        await _fail_next(url, 1, status, code)
        with pytest.raises(CloudApiError) as info:
            await client.send_message(PID, "token", "55", "TEXT", "x")
        error = info.value
        assert (error.status, error.retryable) == (status, retryable)
        assert error.code == (code or 131000)
        assert error.details["code"] == error.code and error.message.startswith(f"(#{error.code})")
        # The failure was for one send only; the next goes through and nothing failed was kept.
        await client.send_message(PID, "token", "55", "TEXT", "y")
        assert [m["text"]["body"] for m in await _sent(url)] == ["y"]


@asyncio_only
async def test_no_token_is_401_not_retryable() -> None:
    async with client_and_fake() as (client, url):
        with pytest.raises(CloudApiError) as info:
            await client.send_message(PID, None, "55", "TEXT", "x")
        assert (info.value.status, info.value.code, info.value.retryable) == (401, 190, False)
        assert await _sent(url) == []


@asyncio_only
async def test_fake_refuses_bad_bodies_with_the_error_shape() -> None:
    async with running_fake() as url, httpx.AsyncClient() as http:
        auth = {"Authorization": "Bearer t"}
        for bad in (
            {"to": "55"},
            {"messaging_product": "whatsapp", "to": "55", "type": "text", "text": {}},
            [1],
        ):
            response = await http.post(f"{url}/v21.0/{PID}/messages", json=bad, headers=auth)
            assert response.status_code == 400
            assert response.json()["error"]["code"] == 100
        await http.post(
            f"{url}/v21.0/{PID}/messages",
            headers=auth,
            json={"messaging_product": "whatsapp", "to": "55", "text": {"body": "ok"}},
        )
        assert len(await _sent(url)) == 1
        assert (await http.post(f"{url}/_fake/reset")).status_code == 200
        assert await _sent(url) == []


@asyncio_only
async def test_unsendable_messages_fail_locally() -> None:
    async with client_and_fake() as (client, url):
        for kind, content, meta in [
            ("TEXT", "", None),
            ("IMAGE", "c", {}),
            ("LOCATION", None, {"latitude": 1}),
            ("POLL", "x", None),
        ]:
            with pytest.raises(CloudApiError) as info:
                await client.send_message(PID, "t", "55", kind, content, meta)
            assert (info.value.status, info.value.retryable) == (0, False)
        assert await _sent(url) == []


async def test_network_error_is_retryable() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = CloudApiClient(f"http://127.0.0.1:{port}", timeout=2.0)
    try:
        with pytest.raises(CloudApiError) as info:
            await client.send_message(PID, "t", "55", "TEXT", "x")
        assert (info.value.status, info.value.retryable) == (0, True)
    finally:
        await client.aclose()


@asyncio_only
async def test_throttle_paces_concurrent_sends_per_number() -> None:
    n, rate = 6, 20.0
    async with running_fake() as url:
        client = CloudApiClient(url, rate_per_second=rate)
        try:
            start = anyio.current_time()
            async with anyio.create_task_group() as tg:
                for i in range(n):
                    tg.start_soon(client.send_message, PID, "t", "55", "TEXT", f"m{i}")
            elapsed = anyio.current_time() - start
        finally:
            await client.aclose()
        assert len(await _sent(url)) == n
    assert elapsed >= (n - 1) / rate * 0.95


async def test_throttle_on_every_backend() -> None:
    """The client is anyio code: the same pacing holds on trio, here over httpx's MockTransport."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        return httpx.Response(
            200,
            json={
                "messaging_product": "whatsapp",
                "messages": [{"id": "wamid." + body["text"]["body"]}],
            },
        )

    n, rate = 4, 25.0
    client = CloudApiClient(
        "http://fake.invalid", rate_per_second=rate, transport=httpx.MockTransport(handler)
    )
    ids: list[str] = []

    async def send(i: int) -> None:
        ids.append((await client.send_message(PID, "t", "55", "TEXT", str(i))).whatsapp_message_id)

    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(send, i)
    elapsed = anyio.current_time() - start
    await client.aclose()
    assert sorted(ids) == [f"wamid.{i}" for i in range(n)]
    assert elapsed >= (n - 1) / rate * 0.95


@asyncio_only
async def test_status_webhooks_arrive_signed_and_in_order() -> None:
    secret = "s3cret"
    received: list[tuple[bytes, str | None]] = []
    got_three = anyio.Event()
    receiver = quart.Quart("receiver")

    @receiver.post("/webhooks/whatsapp")
    async def hook() -> str:
        received.append(
            (await quart.request.get_data(), quart.request.headers.get("X-Hub-Signature-256"))
        )
        if len(received) == 3:
            got_three.set()
        return "ok"

    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        port = await tg.start(
            lambda task_status: serve_app(
                receiver, "127.0.0.1", 0, shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        hook_url = f"http://127.0.0.1:{port}/webhooks/whatsapp"
        async with client_and_fake(webhook_url=hook_url, app_secret=secret, status_delay=0.01) as (
            client,
            _,
        ):
            result = await client.send_message(PID, "t", "5511977776666", "TEXT", "hi")
            with anyio.fail_after(10):
                await got_three.wait()
        stop.set()

    statuses = []
    for raw, header in received:
        assert verify_signature(raw, header, secret)
        batch = parse_webhook(orjson.loads(raw))
        assert batch.skipped == [] and batch.phone_number_ids == frozenset({PID})
        statuses.extend(batch.statuses)
    assert [s.status for s in statuses] == ["SENT", "DELIVERED", "READ"]
    assert {s.whatsapp_message_id for s in statuses} == {result.whatsapp_message_id}
    assert {s.recipient_id for s in statuses} == {"5511977776666"}


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_serve_fake_refuses_trio() -> None:
    with pytest.raises(RuntimeError, match="asyncio"):
        await serve_fake("127.0.0.1", 0)
