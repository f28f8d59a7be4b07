"""CloudApiClient.mark_read against the real fake Cloud API on 127.0.0.1 (asyncio: Quart)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from test_whatsapp_cloud import PID, asyncio_only, client_and_fake

from desk.whatsapp import CloudApiError

pytestmark = pytest.mark.anyio


async def _reads(url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        return list((await http.get(f"{url}/_fake/reads")).json()["reads"])


@asyncio_only
async def test_mark_read_reaches_the_fake_and_sends_nothing() -> None:
    async with client_and_fake() as (client, url):
        await client.mark_read(PID, "token", "wamid.IN1")
        assert await _reads(url) == [{"message_id": "wamid.IN1", "phone_number_id": PID}]
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{url}/_fake/sent")).json()["messages"] == []
            await http.post(f"{url}/_fake/reset")
        assert await _reads(url) == []


@asyncio_only
async def test_mark_read_errors_are_classified() -> None:
    async with client_and_fake() as (client, url):
        with pytest.raises(CloudApiError) as refused:
            await client.mark_read(PID, None, "wamid.IN2")  # no token: 401
        assert (refused.value.status, refused.value.retryable) == (401, False)
        with pytest.raises(CloudApiError) as invalid:
            await client.mark_read(PID, "token", "")
        assert (invalid.value.code, invalid.value.retryable) == (131009, False)
        assert await _reads(url) == []
