"""What the browser tests do to the console and to the server, in the console's own terms."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import orjson
from _desk_harness import Tenant, ZaplineServer

from desk.whatsapp import sign, text_message_webhook


def new_phone() -> str:
    """A Brazilian mobile number no other test uses."""
    return f"55119{uuid.uuid4().int % 10**8:08d}"


def customer_writes(
    http: httpx.Client,
    server: ZaplineServer,
    tenant: Tenant,
    text: str,
    *,
    phone: str | None = None,
    name: str = "Maria Silva",
    timestamp: float | None = None,
) -> str:
    """POST a signed inbound text webhook as WhatsApp would; return the customer's number."""
    phone = phone or new_phone()
    body = text_message_webhook(
        phone_number_id=tenant.phone_number_id,
        wa_id=phone,
        name=name,
        body=text,
        timestamp=timestamp,
    )
    raw = orjson.dumps(body)
    headers = {"Content-Type": "application/json"}
    if tenant.app_secret:
        headers["X-Hub-Signature-256"] = sign(raw, tenant.app_secret)
    response = http.post(server.webhook_url, content=raw, headers=headers)
    assert response.status_code == 200, response.text
    return phone


def add_agent(server: ZaplineServer, tenant: Tenant, name: str) -> tuple[str, str, str]:
    """A second agent of ``tenant`` through the admin CLI; returns (user id, email, password)."""
    tag = uuid.uuid4().hex[:8]
    email, password = f"second-{tag}@it.example", f"pw-{tag}"
    user = server.cli(
        "user",
        "create",
        "--tenant",
        tenant.id,
        "--email",
        email,
        "--password",
        password,
        "--role",
        "agent",
        "--name",
        name,
    )
    return user["id"], email, password


def login(page: Any, server: ZaplineServer, email: str, password: str) -> None:
    """Open the console, sign in through its form, and wait for a live board."""
    page.goto(f"{server.api_url}/")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#login-submit")
    wait_live(page)


def wait_live(page: Any) -> None:
    """Wait until the board is loaded and the socket is connected."""
    page.wait_for_selector("body[data-ready='true'][data-connection='connected']")


def card(page: Any, phone: str) -> Any:
    """The card of the conversation with the customer ``phone``."""
    return page.locator(f".card[data-phone='{phone}']")


def column(page: Any, stage: str) -> Any:
    """The column of one stage."""
    return page.locator(f".column[data-stage='{stage}']")


def conversation_of(
    http: httpx.Client, server: ZaplineServer, tenant: Tenant, phone: str, token: str | None = None
) -> Any:
    """The conversation card (REST) with the customer ``phone``, waiting up to 5 s for it.

    Read as ``token`` (default: the tenant's first agent).
    """
    deadline = time.monotonic() + 5
    while True:
        response = http.get(
            f"{server.api_url}/api/conversations",
            headers={"Authorization": f"Bearer {token or tenant.token}"},
            params={"limit": 200},
        )
        assert response.status_code == 200, response.text
        for conversation in response.json()["conversations"]:
            if conversation["contact"]["phoneNumber"] == phone:
                return conversation
        assert time.monotonic() < deadline, f"no conversation with {phone}"
        time.sleep(0.05)
