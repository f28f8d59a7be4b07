"""Finished inbox rows are deleted after ZAPLINE_INBOX_RETENTION; their messages stay.

The inbox keeps the raw body of every webhook; without a retention it grows by the webhook
rate for as long as the server runs (the file, and every scan of the table with it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from _desk_harness import ZaplineServer, create_tenant, post_webhook, stored_wamids

from desk.whatsapp import text_message_webhook

pytestmark = pytest.mark.anyio


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ZaplineServer]:
    server = ZaplineServer(
        database_url=database_url,
        workdir=tmp_path,
        extra_env={"ZAPLINE_INBOX_RETENTION": "1", "ZAPLINE_INBOX_SWEEP_INTERVAL": "0.5"},
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def inbox_rows(http: httpx.AsyncClient, server: ZaplineServer) -> dict[str, float]:
    text = (await http.get(f"{server.api_url}/metrics")).text
    return {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("zapline_inbox{")
    }


async def test_finished_rows_are_pruned_and_messages_kept(server: ZaplineServer) -> None:
    tenant = await anyio.to_thread.run_sync(lambda: create_tenant(server))
    wamids = [f"wamid.retention.{i}" for i in range(3)]
    async with httpx.AsyncClient(timeout=10) as http:
        for i, wamid in enumerate(wamids):
            body = text_message_webhook(
                phone_number_id=tenant.phone_number_id,
                wa_id="5511700000999",
                wamid=wamid,
                body=f"kept {i}",
            )
            answer = await post_webhook(http, server, body, secret=tenant.app_secret)
            assert answer.status_code == 200, answer.text
        with anyio.fail_after(15):
            while sorted(await stored_wamids(http, server, tenant)) != wamids:  # noqa: ASYNC110
                await anyio.sleep(0.2)
            # marked done first, then deleted once older than the retention
            while sum((rows := await inbox_rows(http, server)).values()) > 0:  # noqa: ASYNC110
                await anyio.sleep(0.2)
        assert rows == {"pending": 0, "done": 0, "failed": 0, "unroutable": 0}
        assert sorted(await stored_wamids(http, server, tenant)) == wamids
