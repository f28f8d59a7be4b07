"""The storage contract for text PostgreSQL refuses: NUL and lone surrogates are storable.

Part of the contract suite: the same tests on every implementation, so both store the same
text. Each NUL and each lone surrogate becomes U+FFFD, in every text column and inside JSON
values; a surrogate pair becomes its character; raw inbox bodies are kept byte for byte.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storage import Storage
from storage._text import REPLACEMENT

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
R = REPLACEMENT
# What a customer's phone can send and PostgreSQL refuses: a NUL, a lone high and a lone low
# surrogate; with a real emoji written as a surrogate pair, which must come out whole.
HOSTILE = "a\x00b\ud800c\udfffd\ud83d\ude00"
STORED = f"a{R}b{R}c{R}d\U0001f600"


async def test_inbound_message_contact_and_metadata_with_nul_and_surrogates(
    storage: Storage,
) -> None:
    tenant = await storage.create_tenant(f"Acme {HOSTILE}")
    assert (await storage.get_tenant(tenant.id)).name == f"Acme {STORED}"  # type: ignore[union-attr]
    account = await storage.add_account(tenant.id, "pn-1")
    result = await storage.record_inbound(
        tenant_id=tenant.id,
        account_id=account.id,
        phone_number="5511",
        contact_name=f"Ana {HOSTILE}",
        whatsapp_message_id=f"wamid.{HOSTILE}",
        type="TEXT",
        content=HOSTILE,
        metadata={f"k{HOSTILE}": [HOSTILE, {"nested": HOSTILE}], "n": 1},
        timestamp=T0,
    )
    message = result.message
    assert message.content == STORED
    assert message.whatsapp_message_id == f"wamid.{STORED}"
    assert message.metadata == {f"k{STORED}": [STORED, {"nested": STORED}], "n": 1}
    assert result.conversation.contact.name == f"Ana {STORED}"
    assert await storage.get_message(tenant.id, message.id) == message
    page, _ = await storage.list_messages(tenant.id, result.conversation.id)
    assert page == [message]

    # A replay with the same hostile id finds the stored message: the rule is deterministic.
    again = await storage.record_inbound(
        tenant_id=tenant.id,
        account_id=account.id,
        phone_number="5511",
        contact_name=None,
        whatsapp_message_id=f"wamid.{HOSTILE}",
        type="TEXT",
        content=HOSTILE,
        metadata={},
        timestamp=T0,
    )
    assert (again.message_created, again.message) == (False, message)


async def test_outbound_message_contact_and_send_errors(storage: Storage) -> None:
    tenant = await storage.create_tenant("Acme")
    account = await storage.add_account(tenant.id, "pn-1")
    contact = await storage.upsert_contact(tenant.id, f"55{HOSTILE}", HOSTILE)
    assert (contact.phone_number, contact.name) == (f"55{STORED}", STORED)
    conversation, _ = await storage.get_or_create_conversation(tenant.id, contact.id, account.id)
    assert conversation.contact == contact
    message, created = await storage.insert_message(
        tenant_id=tenant.id,
        conversation_id=conversation.id,
        contact_id=contact.id,
        direction="outbound",
        type="TEXT",
        content=HOSTILE,
        metadata={HOSTILE: HOSTILE},
        status="PENDING",
        timestamp=T0,
    )
    assert created and (message.content, message.metadata) == (STORED, {STORED: STORED})
    sent = await storage.mark_message_sent(message.id, f"wamid.{HOSTILE}")
    assert sent.whatsapp_message_id == f"wamid.{STORED}"
    status = await storage.update_message_status(
        tenant.id, f"wamid.{HOSTILE}", "DELIVERED", error={"why": HOSTILE}
    )
    assert status is not None and status[0].error == {"why": STORED}
    failed = await storage.mark_message_failed(message.id, {"error": [HOSTILE]})
    assert failed.error == {"error": [STORED]}
    assert await storage.get_message(tenant.id, message.id) == failed


async def test_dead_letter_meta_and_inbox(storage: Storage) -> None:
    dead = await storage.add_dead_letter(f"job{HOSTILE}", {"body": HOSTILE, HOSTILE: [1]}, HOSTILE)
    (letter,) = await storage.list_dead_letters()
    assert letter.id == dead
    assert (letter.kind, letter.payload, letter.error) == (
        f"job{STORED}",
        {"body": STORED, STORED: [1]},
        STORED,
    )
    await storage.set_meta(f"key{HOSTILE}", HOSTILE)
    assert await storage.get_meta(f"key{HOSTILE}") == STORED

    # The raw webhook body is bytes and kept exactly: an escaped NUL, a raw NUL, bytes
    # that are not UTF-8 at all.
    bodies = [b'{"body":"a\\u0000b"}', b"a\x00b", b"\xff\xfe\xed\xa0\x80"]
    ids = await storage.inbox_append(bodies)
    await storage.inbox_mark(ids[:1], "pending", error=HOSTILE)
    pending = await storage.inbox_pending()
    assert [item.body for item in pending] == bodies
    assert pending[0].error == STORED
