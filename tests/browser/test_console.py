"""The console in real Chromium against a real server: login, live cards, replies and ticks,
two agents, tenant isolation, reloads, a cut network, phone width, sound and language."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from _console import (
    add_agent,
    card,
    column,
    conversation_of,
    customer_writes,
    login,
    new_phone,
    wait_live,
)
from _desk_harness import Tenant, ZaplineServer, create_tenant
from _proxy import CuttableProxy

pytestmark = pytest.mark.browser

Context = Callable[..., Any]

# Records every delivery mark an outbound bubble shows, in order (bubbles are redrawn by key, so
# each new status is a new .tick element).
TICK_RECORDER = """
() => {
  window.__ticks = [];
  const seen = (el) => {
    for (const tick of el.querySelectorAll ? el.querySelectorAll('.msg.out .tick') : []) {
      const last = window.__ticks[window.__ticks.length - 1];
      if (tick.dataset.status !== last) window.__ticks.push(tick.dataset.status);
    }
  };
  new MutationObserver((records) => {
    for (const record of records) for (const node of record.addedNodes) seen(node.parentElement || node);
  }).observe(document.getElementById('messages'), { childList: true, subtree: true });
}
"""


def test_card_appears_live_and_a_reply_ticks_to_read(
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.Client,
    new_context: Context,
    artifacts: Path,
) -> None:
    page = new_context().new_page()
    login(page, zapline, tenant.email, tenant.password)
    for name, text in (("João Pereira", "Qual o horário de vocês?"), ("Ana Costa", "Obrigada!")):
        customer_writes(http, zapline, tenant, text, name=name)
    card(page, customer_writes(http, zapline, tenant, "x", name="Warm-up")).wait_for()

    started = time.monotonic()
    phone = customer_writes(http, zapline, tenant, "Olá, meu pedido não chegou", name="Maria Silva")
    card(page, phone).wait_for(timeout=1000)
    assert time.monotonic() - started < 1.0
    assert page.url.endswith("/"), "the card must arrive without a reload or navigation"
    new_card = card(page, phone)
    assert new_card.locator(".card-preview").inner_text() == "Olá, meu pedido não chegou"
    assert new_card.locator(".badge").inner_text() == "1"
    assert column(page, "new").locator(".card").first.get_attribute("data-phone") == phone
    assert page.title() == "(4) Zapline"
    page.screenshot(path=str(artifacts / "board.png"))

    new_card.click()
    page.locator(".msg.in", has_text="Olá, meu pedido não chegou").wait_for()
    assert new_card.locator(".badge").is_hidden()
    assert page.title() == "(3) Zapline"
    page.evaluate(TICK_RECORDER)
    page.fill("#reply", "Oi Maria! Vou verificar agora mesmo.")
    page.press("#reply", "Enter")
    bubble = page.locator(".msg.out", has_text="Vou verificar agora mesmo")
    bubble.locator(".tick[data-status='READ']").wait_for(timeout=5000)
    ticks = page.evaluate("window.__ticks")
    assert ticks[-1] == "READ" and len(ticks) >= 2, ticks
    order = ["PENDING", "SENT", "DELIVERED", "READ"]
    assert [order.index(s) for s in ticks] == sorted({order.index(s) for s in ticks}), ticks
    read_colour = bubble.locator(".tick").evaluate("el => getComputedStyle(el).color")
    assert read_colour == "rgb(11, 87, 183)"
    assert new_card.locator(".tick[data-status='READ']").count() == 1
    sent = http.get(f"{zapline.whatsapp_api_url}/_fake/sent").json()["messages"]
    assert any(m["to"] == phone and "Vou verificar" in m["text"]["body"] for m in sent)
    page.screenshot(path=str(artifacts / "thread.png"))


def test_a_failed_send_is_red_with_the_reason(
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.Client,
    new_context: Context,
    artifacts: Path,
) -> None:
    page = new_context().new_page()
    login(page, zapline, tenant.email, tenant.password)
    phone = customer_writes(http, zapline, tenant, "Pode me ligar?")
    card(page, phone).click()
    page.locator(".msg.in").wait_for()
    fail = {"count": 1, "status": 400, "code": 131026}
    assert http.post(f"{zapline.whatsapp_api_url}/_fake/fail", json=fail).status_code == 200
    page.fill("#reply", "Claro, em 5 minutos.")
    page.click("#send")
    tick = page.locator(".msg.out .tick[data-status='FAILED']")
    tick.wait_for()
    assert "131026" in (tick.get_attribute("title") or "")
    assert "Failed" in (tick.get_attribute("title") or "")
    colour = tick.evaluate("el => getComputedStyle(el).backgroundColor")
    assert colour == "rgb(179, 38, 30)"
    card(page, phone).locator(".tick[data-status='FAILED']").wait_for()
    tick.hover()
    page.screenshot(path=str(artifacts / "thread-failed.png"))


def test_two_agents_see_each_others_moves_and_assignment(
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.Client,
    new_context: Context,
) -> None:
    second_id, second_email, second_password = add_agent(zapline, tenant, "Bruno Lima")
    alice = new_context().new_page()
    bruno = new_context().new_page()
    login(alice, zapline, tenant.email, tenant.password)
    login(bruno, zapline, second_email, second_password)
    phone = customer_writes(http, zapline, tenant, "Quero trocar um produto")
    conversation = conversation_of(http, zapline, tenant, phone)
    for page in (alice, bruno):
        column(page, "new").locator(f".card[data-phone='{phone}']").wait_for()

    # Alice drags the card to "In progress"; Bruno's board follows.
    card(alice, phone).drag_to(column(alice, "open"))
    column(bruno, "open").locator(f".card[data-phone='{phone}']").wait_for(timeout=3000)
    assert column(bruno, "new").locator(f".card[data-phone='{phone}']").count() == 0

    # Bruno moves it on with the keyboard; Alice's board follows.
    card(bruno, phone).focus()
    bruno.keyboard.press("Shift+ArrowRight")
    column(alice, "pending").locator(f".card[data-phone='{phone}']").wait_for(timeout=3000)
    # The moved card keeps the keyboard focus in its new column.
    bruno.wait_for_function(
        "phone => document.activeElement?.dataset.phone === phone"
        " && document.activeElement.closest('.column').dataset.stage === 'pending'",
        arg=phone,
        timeout=2000,
    )
    stored = conversation_of(http, zapline, tenant, phone)
    assert stored["stage"] == "pending"

    # Bruno takes it: an agent sees their own and the unassigned conversations, so the card
    # leaves Alice's board live (and stays away after a reload).
    card(bruno, phone).click()
    bruno.click("#thread-assign")
    card(alice, phone).wait_for(state="detached", timeout=3000)
    assert card(bruno, phone).locator(".avatar").inner_text() == "BL"
    alice.reload()
    column(alice, "new").wait_for()
    alice.wait_for_timeout(1000)  # the board's list has come back by now
    assert card(alice, phone).count() == 0
    bruno.locator("label", has_text="Mine").click()
    card(bruno, phone).wait_for()
    bruno_token = zapline.token(tenant.id, second_id)
    assert conversation_of(http, zapline, tenant, phone, bruno_token)["assigneeId"] == second_id
    hidden = http.get(
        f"{zapline.api_url}/api/conversations/{conversation['id']}",
        headers={"Authorization": f"Bearer {tenant.token}"},
    )
    assert hidden.status_code == 404, "an agent reads a conversation assigned to another"
    assert conversation["id"] == card(bruno, phone).get_attribute("data-id")


def test_an_agent_of_another_tenant_sees_nothing(
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.Client,
    new_context: Context,
) -> None:
    other = create_tenant(zapline)
    ours = new_context().new_page()
    theirs = new_context().new_page()
    login(ours, zapline, tenant.email, tenant.password)
    login(theirs, zapline, other.email, other.password)
    phone = customer_writes(http, zapline, tenant, "Segredo do cliente")
    card(ours, phone).wait_for()
    conversation_id = card(ours, phone).get_attribute("data-id")
    card(ours, phone).drag_to(column(ours, "closed"))
    column(ours, "closed").locator(f".card[data-phone='{phone}']").wait_for()
    time.sleep(0.5)
    assert theirs.locator(".card").count() == 0
    assert "Segredo" not in theirs.inner_text("body")
    theirs.goto(f"{zapline.api_url}/#c={conversation_id}")
    wait_live(theirs)
    assert theirs.locator("#thread").is_hidden()
    assert theirs.locator(".card").count() == 0


def test_a_reload_keeps_the_session_the_board_and_the_open_thread(
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.Client,
    new_context: Context,
) -> None:
    page = new_context().new_page()
    login(page, zapline, tenant.email, tenant.password)
    opened = customer_writes(http, zapline, tenant, "Primeira conversa", name="Carla Dias")
    unread = customer_writes(http, zapline, tenant, "Segunda conversa", name="Diego Reis")
    card(page, unread).wait_for()
    card(page, opened).drag_to(column(page, "open"))
    column(page, "open").locator(f".card[data-phone='{opened}']").wait_for()
    card(page, opened).click()
    page.locator(".msg.in", has_text="Primeira conversa").wait_for()
    page.locator("label", has_text="Unassigned").click()
    page.wait_for_timeout(300)  # the PATCH has answered once the move was drawn; be sure

    page.reload()
    wait_live(page)
    assert page.locator("#login-view").is_hidden()
    column(page, "open").locator(f".card[data-phone='{opened}']").wait_for()
    page.locator(".msg.in", has_text="Primeira conversa").wait_for()
    assert page.locator("#thread-name").inner_text() == "Carla Dias"
    assert page.locator("input[name='filter'][value='unassigned']").is_checked()
    assert card(page, unread).locator(".badge").inner_text() == "1"
    assert page.title() == "(1) Zapline"


def test_cutting_the_socket_shows_the_banner_and_the_board_recovers(
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.Client,
    new_context: Context,
    proxy: CuttableProxy,
) -> None:
    context = new_context()
    page = context.new_page()
    login(page, zapline, tenant.email, tenant.password)
    first = customer_writes(http, zapline, tenant, "Antes do corte")
    card(page, first).wait_for()
    assert page.locator("#banner").is_hidden()

    proxy.cut()
    page.wait_for_selector("#banner[data-state='reconnecting']", state="visible", timeout=5000)
    missed = customer_writes(http, zapline, tenant, "Durante o corte", name="Perdida")
    moved = conversation_of(http, zapline, tenant, first)
    response = http.patch(
        f"{zapline.api_url}/api/conversations/{moved['id']}",
        json={"stage": "closed"},
        headers={"Authorization": f"Bearer {tenant.token}"},
    )
    assert response.status_code == 200
    conversation_of(http, zapline, tenant, missed)
    time.sleep(0.3)
    assert card(page, missed).count() == 0, "the cut page cannot have seen it live"

    proxy.restore()
    page.wait_for_selector("body[data-connection='connected']", timeout=15000)
    card(page, missed).wait_for(timeout=5000)
    column(page, "closed").locator(f".card[data-phone='{first}']").wait_for(timeout=5000)
    page.wait_for_selector("#banner", state="hidden", timeout=5000)
    # Recovered from the event log (socket.recovered): what it missed was replayed, no refetch.
    assert int(page.get_attribute("body", "data-resyncs") or 0) == 0

    # The browser itself going offline says so, and says when it is back.
    context.set_offline(True)
    page.wait_for_selector("#banner[data-state='offline']", state="visible")
    context.set_offline(False)
    page.wait_for_selector("body[data-connection='connected']", timeout=15000)
    after = customer_writes(http, zapline, tenant, "Depois do corte")
    card(page, after).wait_for(timeout=5000)


def test_older_messages_load_on_scroll(
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.Client,
    new_context: Context,
) -> None:
    phone = new_phone()
    base = time.time() - 3600
    for i in range(45):
        customer_writes(http, zapline, tenant, f"mensagem {i:02d}", phone=phone, timestamp=base + i)
    page = new_context().new_page()
    login(page, zapline, tenant.email, tenant.password)
    # The server counts the 45 unread messages (GET /api/conversations' unreadCount), and
    # opening the thread reads them (conversation:read -> unread:update 0).
    badge = card(page, phone).locator(".badge")
    badge.wait_for()
    assert badge.inner_text() == "45"
    card(page, phone).click()
    page.locator(".msg", has_text="mensagem 44").wait_for()
    badge.wait_for(state="hidden")
    assert page.locator(".msg").count() == 30
    page.locator("#messages").evaluate("el => { el.scrollTop = 0; }")
    page.locator(".msg", has_text="mensagem 00").wait_for()
    assert page.locator(".msg").count() == 45
    texts = page.locator(".msg .text").all_inner_texts()
    assert texts == [f"mensagem {i:02d}" for i in range(45)]
    assert page.locator(".thread-start").inner_text() == "Start of the conversation"


def test_phone_width_and_portuguese(
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.Client,
    new_context: Context,
    artifacts: Path,
) -> None:
    context = new_context(viewport={"width": 390, "height": 844}, locale="pt-BR", is_mobile=True)
    page = context.new_page()
    page.goto(f"{zapline.api_url}/")
    assert page.locator("#login-submit").inner_text() == "Entrar"
    assert page.locator("html").get_attribute("lang") == "pt-BR"
    login(page, zapline, tenant.email, tenant.password)
    phone = customer_writes(http, zapline, tenant, "Oi, tudo bem?", name="Rita Alves")
    card(page, phone).wait_for()
    assert column(page, "new").locator("h2").inner_text().startswith("Novas")
    page.screenshot(path=str(artifacts / "board-phone.png"))
    width = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate(
        "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 391)"
        ".map(e => e.id || e.className).slice(0, 5)"
    )
    assert width <= 390, f"the page scrolls sideways at phone width ({width} px): {wide}"
    card(page, phone).click()
    page.locator(".msg.in", has_text="Oi, tudo bem?").wait_for()
    box = page.locator("#thread").bounding_box()
    assert box is not None and box["width"] == 390
    page.screenshot(path=str(artifacts / "thread-phone.png"))
    page.click("#thread-back")
    page.locator("#thread").wait_for(state="hidden")
    assert page.evaluate("document.activeElement.dataset.phone") == phone


def test_one_tab_per_agent_plays_the_sound(
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.Client,
    new_context: Context,
) -> None:
    context = new_context()
    first = context.new_page()
    login(first, zapline, tenant.email, tenant.password)
    second = context.new_page()
    second.goto(f"{zapline.api_url}/")
    wait_live(second)
    toggle = first.locator("#sound-toggle")
    assert toggle.get_attribute("aria-pressed") == "false", "the sound starts off"
    toggle.click()
    assert toggle.get_attribute("aria-pressed") == "true"
    second.wait_for_selector("#sound-toggle[aria-pressed='true']")
    phone = customer_writes(http, zapline, tenant, "Alguém aí?")
    for page in (first, second):
        card(page, phone).wait_for()
    first.wait_for_timeout(300)
    chimes = [
        p.evaluate("Number(document.documentElement.dataset.chimes || 0)") for p in (first, second)
    ]
    assert sorted(chimes) == [0, 1], chimes


def test_the_desk_works_from_the_keyboard_alone(
    zapline: ZaplineServer,
    tenant: Tenant,
    http: httpx.Client,
    new_context: Context,
) -> None:
    page = new_context().new_page()
    login(page, zapline, tenant.email, tenant.password)
    older = customer_writes(http, zapline, tenant, "Primeiro", name="Alice Prado")
    card(page, older).wait_for()
    newer = customer_writes(http, zapline, tenant, "Segundo", name="Bruno Dias")
    card(page, newer).wait_for()
    page.locator("body").focus()
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('card')"):
            break
    assert page.evaluate("document.activeElement.dataset.phone") == newer
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.dataset.phone") == older
    page.keyboard.press("Enter")
    page.locator(".msg.in", has_text="Primeiro").wait_for()
    page.wait_for_function("document.activeElement.id === 'reply'")
    page.keyboard.type("Resposta pelo teclado")
    page.keyboard.press("Enter")
    page.locator(".msg.out", has_text="Resposta pelo teclado").wait_for()
    page.keyboard.press("Escape")
    page.locator("#thread").wait_for(state="hidden")
    page.wait_for_function(f"document.activeElement.dataset.phone === '{older}'")
