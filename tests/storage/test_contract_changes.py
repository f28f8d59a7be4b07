"""The storage contract for edits, deletions for everyone and reactions
(``apply_message_change``), including those that arrive before their message.

Part of the contract suite (``test_contract.py``): the same tests on every implementation,
on asyncio because asyncpg is asyncio-only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storage import Account, InboundResult, MessageChange, Storage, Tenant

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CUSTOMER = "5511999990000"


async def make_account(storage: Storage, name: str = "Acme") -> tuple[Tenant, Account]:
    tenant = await storage.create_tenant(name)
    return tenant, await storage.add_account(tenant.id, f"pn-{tenant.id}")


async def inbound(
    storage: Storage, tenant: Tenant, account: Account, wamid: str, text: str = "olá"
) -> InboundResult:
    return await storage.record_inbound(
        tenant_id=tenant.id,
        account_id=account.id,
        phone_number=CUSTOMER,
        contact_name="Ana",
        whatsapp_message_id=wamid,
        type="TEXT",
        content=text,
        metadata={"id": wamid, "from": CUSTOMER, "type": "text", "text": {"body": text}},
        timestamp=T0,
    )


def change(
    tenant: Tenant,
    kind: str,
    target: str,
    own: str,
    *,
    content: str | None = None,
    at: datetime = T0,
    sender: str = CUSTOMER,
    body: dict[str, Any] | None = None,
) -> MessageChange:
    return MessageChange(
        tenant_id=tenant.id,
        kind=kind,
        target_id=target,
        whatsapp_message_id=own,
        sender=sender,
        timestamp=at,
        content=content,
        body=body or {"original_message_id": target},
    )


async def test_reactions_attach_by_sender_replace_and_remove(storage: Storage) -> None:
    tenant, account = await make_account(storage)
    target = (await inbound(storage, tenant, account, "wamid.t")).message
    assert target.reactions == {}
    first = await storage.apply_message_change(
        change(tenant, "reaction", "wamid.t", "wamid.r1", content="👍", at=T0 + timedelta(1))
    )
    assert first is not None and first[1] is True
    assert first[0].id == target.id
    assert first[0].reactions[CUSTOMER]["emoji"] == "👍"
    assert first[0].content == "olá"  # a reaction is not an edit
    again = await storage.apply_message_change(
        change(tenant, "reaction", "wamid.t", "wamid.r1", content="👍", at=T0 + timedelta(1))
    )
    assert again is not None and again[1] is False
    older = await storage.apply_message_change(
        change(tenant, "reaction", "wamid.t", "wamid.r0", content="😡", at=T0)
    )
    assert older is not None and older[1] is False
    other = await storage.apply_message_change(
        change(tenant, "reaction", "wamid.t", "wamid.r2", content="❤️", sender="15550001111")
    )
    assert other is not None and set(other[0].reactions) == {CUSTOMER, "15550001111"}
    replaced = await storage.apply_message_change(
        change(tenant, "reaction", "wamid.t", "wamid.r3", content="🎉", at=T0 + timedelta(2))
    )
    assert replaced is not None and replaced[0].reactions[CUSTOMER]["emoji"] == "🎉"
    removed = await storage.apply_message_change(
        change(tenant, "reaction", "wamid.t", "wamid.r4", content="", at=T0 + timedelta(3))
    )
    assert removed is not None and removed[1] is True
    assert set(removed[0].reactions) == {"15550001111"}
    stored = await storage.get_message(tenant.id, target.id)
    assert stored is not None and stored.reactions == removed[0].reactions
    assert await storage.count_messages(tenant.id) == 1  # no message was created


async def test_an_edit_replaces_the_content_and_keeps_the_history(storage: Storage) -> None:
    tenant, account = await make_account(storage)
    target = (await inbound(storage, tenant, account, "wamid.t", "helo")).message
    edit = change(
        tenant, "edit", "wamid.t", "wamid.e1", content="hello", at=T0 + timedelta(minutes=1)
    )
    result = await storage.apply_message_change(edit)
    assert result is not None and result[1] is True
    edited = result[0]
    assert (edited.id, edited.type, edited.content) == (target.id, "TEXT", "hello")
    assert edited.edited_at == T0 + timedelta(minutes=1)
    (entry,) = edited.metadata["edits"]
    assert (entry["id"], entry["previousContent"]) == ("wamid.e1", "helo")
    assert edited.metadata["text"] == {"body": "helo"}  # the original object stays
    again = await storage.apply_message_change(edit)
    assert again is not None and again[1] is False
    late = await storage.apply_message_change(
        change(tenant, "edit", "wamid.t", "wamid.e0", content="hel", at=T0 + timedelta(seconds=5))
    )
    assert late is not None
    assert late[0].content == "hello"  # an older edit arriving late changes only the history
    assert [e["id"] for e in late[0].metadata["edits"]] == ["wamid.e0", "wamid.e1"]


async def test_a_deletion_empties_the_content_keeps_the_type_and_is_final(
    storage: Storage,
) -> None:
    tenant, account = await make_account(storage)
    target = (await inbound(storage, tenant, account, "wamid.t", "my secret")).message
    await storage.apply_message_change(
        change(tenant, "edit", "wamid.t", "wamid.e1", content="my new secret")
    )
    result = await storage.apply_message_change(
        change(tenant, "revoke", "wamid.t", "wamid.d1", at=T0 + timedelta(minutes=2))
    )
    assert result is not None and result[1] is True
    deleted = result[0]
    assert (deleted.id, deleted.type, deleted.content) == (target.id, "TEXT", "")
    assert deleted.deleted_at == T0 + timedelta(minutes=2)
    assert "secret" not in str(deleted.metadata)
    assert deleted.metadata["revoke"]["id"] == "wamid.d1"
    assert deleted.metadata["type"] == "text"
    for late in (
        change(tenant, "revoke", "wamid.t", "wamid.d2"),
        change(tenant, "edit", "wamid.t", "wamid.e2", content="back"),
    ):
        after = await storage.apply_message_change(late)
        assert after is not None and after[1] is False and after[0].content == ""


async def test_changes_ahead_of_their_message_are_applied_when_it_is_stored(
    storage: Storage,
) -> None:
    tenant, account = await make_account(storage)
    for early in (
        change(tenant, "reaction", "wamid.late", "wamid.r1", content="👍"),
        change(tenant, "edit", "wamid.late", "wamid.e1", content="edited first"),
    ):
        assert await storage.apply_message_change(early) is None
        assert await storage.apply_message_change(early) is None  # a replay keeps one
    assert await storage.count_messages(tenant.id) == 0
    result = await inbound(storage, tenant, account, "wamid.late", "original")
    assert result.message_created
    message = result.message
    assert message.content == "edited first"
    assert message.reactions[CUSTOMER]["emoji"] == "👍"
    assert [e["id"] for e in message.metadata["edits"]] == ["wamid.e1"]
    stored = await storage.get_message(tenant.id, message.id)
    assert stored == message
    # Applied once: nothing is kept any more.
    assert await storage.apply_pending_changes() == []
    assert await storage.expire_pending_changes(datetime.now(UTC) + timedelta(days=1)) == []
    replay = await inbound(storage, tenant, account, "wamid.late", "original")
    assert not replay.message_created and replay.message == message


async def test_a_change_ahead_of_an_outbound_message_is_applied_by_the_pending_pass(
    storage: Storage,
) -> None:
    tenant, account = await make_account(storage)
    conversation = (await inbound(storage, tenant, account, "wamid.in")).conversation
    reaction = change(tenant, "reaction", "wamid.out", "wamid.r1", content="❤️")
    assert await storage.apply_message_change(reaction) is None
    assert await storage.apply_pending_changes() == []
    reply, _ = await storage.insert_message(
        tenant_id=tenant.id,
        conversation_id=conversation.id,
        contact_id=conversation.contact_id,
        direction="outbound",
        type="TEXT",
        content="thanks!",
        metadata={},
        status="SENT",
        timestamp=T0,
        whatsapp_message_id="wamid.out",
    )
    (applied,) = await storage.apply_pending_changes()
    assert applied.id == reply.id and applied.reactions[CUSTOMER]["emoji"] == "❤️"


async def test_kept_changes_expire_and_stay_in_their_tenant(storage: Storage) -> None:
    ours, our_account = await make_account(storage, "Ours")
    theirs, their_account = await make_account(storage, "Theirs")
    assert await storage.apply_message_change(change(ours, "revoke", "wamid.x", "wamid.d")) is None
    other = await inbound(storage, theirs, their_account, "wamid.x", "theirs")
    assert other.message.deleted_at is None and other.message.content == "theirs"
    assert await storage.apply_pending_changes() == []
    assert await storage.expire_pending_changes(datetime.now(UTC) - timedelta(hours=1)) == []
    expired = await storage.expire_pending_changes(datetime.now(UTC) + timedelta(seconds=1))
    assert expired == [(ours.id, "wamid.d", "revoke", "wamid.x")]
    assert (await inbound(storage, ours, our_account, "wamid.x")).message.deleted_at is None


async def test_apply_message_change_refuses_an_unknown_kind(storage: Storage) -> None:
    tenant, _ = await make_account(storage)
    with pytest.raises(ValueError):
        await storage.apply_message_change(change(tenant, "pin", "wamid.t", "wamid.p"))
