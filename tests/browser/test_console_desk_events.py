"""The console's side of desk events. Viewers and typing come from the server between two real
browsers; those the server does not send yet (server unread counts, edited and deleted
messages) are applied to the page's own state module, and must show."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from _console import add_agent, card, conversation_of, customer_writes, login
from _desk_harness import Tenant, ZaplineServer

pytestmark = pytest.mark.browser

APPLY = """
async ([conversationId, messageId, otherId]) => {
  const store = await import('/console/store.js');
  store.applyTyping({conversationId, userId: 'u-bruno', name: 'Bruno Lima', isTyping: true});
  store.applyViewers({conversationId, viewers: [{userId: 'u-bruno', name: 'Bruno Lima'}]});
  store.applyMessageChange({conversationId, messageId, updates: {content: 'Pedido 42, corrigido', edited: true}});
  store.applyUnread({conversationId: otherId, count: 5});
}
"""


def test_typing_viewers_unread_and_edits_show_when_they_arrive(
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.Client,
    new_context: Callable[..., Any],
) -> None:
    page = new_context().new_page()
    login(page, zapline, tenant.email, tenant.password)
    phone = customer_writes(http, zapline, tenant, "Pedido 42")
    other = customer_writes(http, zapline, tenant, "Outra conversa", name="Outro Cliente")
    card(page, other).wait_for()
    conversation = conversation_of(http, zapline, tenant, phone)
    other_id = conversation_of(http, zapline, tenant, other)["id"]
    messages = http.get(
        f"{zapline.api_url}/api/conversations/{conversation['id']}/messages",
        headers={"Authorization": f"Bearer {tenant.token}"},
    ).json()["messages"]
    card(page, phone).click()
    page.locator(".msg.in", has_text="Pedido 42").wait_for()

    page.evaluate(APPLY, [conversation["id"], messages[0]["id"], other_id])
    page.locator("#typing", has_text="Bruno Lima is typing…").wait_for()
    page.locator("#thread-viewers", has_text="Also viewing: Bruno Lima").wait_for()
    edited = page.locator(".msg.in", has_text="Pedido 42, corrigido")
    edited.locator(".edited").wait_for()
    assert card(page, other).locator(".badge").inner_text() == "5"
    page.wait_for_function("document.title === '(5) Zapline'")

    page.evaluate(
        """async ([conversationId, messageId]) => {
          const store = await import('/console/store.js');
          store.applyMessageChange({conversationId, messageId, updates: {deleted: true}});
          store.applyTyping({conversationId, userId: 'u-bruno', isTyping: false});
        }""",
        [conversation["id"], messages[0]["id"]],
    )
    page.locator(".msg.in .bubble.deleted", has_text="This message was deleted").wait_for()
    page.locator("#typing:empty").wait_for(state="attached")


def test_two_agents_see_each_other_viewing_and_typing_live(
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.Client,
    new_context: Callable[..., Any],
) -> None:
    _, second_email, second_password = add_agent(zapline, tenant, "Bruno Lima")
    alice = new_context().new_page()
    bruno = new_context().new_page()
    login(alice, zapline, tenant.email, tenant.password)
    login(bruno, zapline, second_email, second_password)
    phone = customer_writes(http, zapline, tenant, "Alguém aí?")
    for page in (alice, bruno):
        card(page, phone).click()
        page.locator(".msg.in", has_text="Alguém aí?").wait_for()
    # Both opened it: each sees the other as a viewer (the server's conversation:viewers).
    alice.locator("#thread-viewers", has_text="Bruno Lima").wait_for(timeout=5000)
    bruno.locator("#thread-viewers", has_text="Agent ").wait_for(timeout=5000)  # Alice

    # Bruno types: Alice sees it (typing:start -> typing), and it ends by itself after silence.
    bruno.locator("#reply").type("Já vou")
    alice.locator("#typing", has_text="Bruno Lima is typing").wait_for(timeout=5000)
    alice.locator("#typing:empty").wait_for(state="attached", timeout=12_000)
    assert bruno.locator("#typing").inner_text() == ""
