"""An agent reads a conversation: read position, unread counters, READ, WhatsApp read receipts.

``conversation:read`` and ``POST /api/conversations/{id}/read`` both come here
(``Reads.read``). The read is checked against ``desk.permissions`` like a join; storage moves
the agent's position forward (never back) and, in the same transaction, turns the customer's
messages it covers from DELIVERED to READ, only for the first agent to read them. Those are
announced as ``message:status-update``, and when the account says so (on by default), the
newest of them is marked read on WhatsApp through a ``read_receipt`` job: the send queue's
retries, its per-conversation order, the per-number throttle of the Cloud API client. One call
is enough, as WhatsApp marks the earlier messages of the chat read with it.
"""

from __future__ import annotations

import logging
from typing import Any

from desk.announce import status_events
from desk.journal import Journal
from desk.permissions import may_see
from desk.unread import UnreadDesk
from desk.whatsapp import CloudApiClient, CloudApiError
from engine.jobs import PermanentError, Priority, PriorityJobQueue, QueueClosed
from storage import LoggedEvent, Message, NotFound, Storage

__all__ = ["Reads"]

log = logging.getLogger("zapline.desk")

NOT_FOUND = "conversation not found"


class Reads:
    """The read path of one process; its collaborators are passed in."""

    def __init__(
        self,
        storage: Storage,
        journal: Journal,
        queue: PriorityJobQueue,
        cloud: CloudApiClient,
        unread: UnreadDesk,
    ) -> None:
        self.storage = storage
        self.journal = journal
        self.queue = queue
        self.cloud = cloud
        self.unread = unread
        self.agent_sees = unread.agent_sees

    async def read(
        self, tenant_id: str, user_id: str, role: str, conversation_id: Any, message_id: Any = None
    ) -> dict[str, Any]:
        """Read ``conversation_id`` up to ``message_id`` (None: everything now); the answer.

        Returns ``{ok: true, unreadCount}`` or ``{ok: false, error}``: a conversation the user
        may not see is "conversation not found", like another tenant's. Raises what storage
        raises when it is unavailable.
        """
        if not isinstance(conversation_id, str) or not conversation_id:
            return {"ok": False, "error": "conversationId required"}
        if message_id is not None and (not isinstance(message_id, str) or not message_id):
            return {"ok": False, "error": "messageId must be a message id or absent"}
        conversation = await self.storage.get_conversation(tenant_id, conversation_id)
        if conversation is None or not may_see(
            role, user_id, conversation.assignee_id, self.agent_sees
        ):
            log.info("user %s denied reading conversation %s", user_id, conversation_id)
            return {"ok": False, "error": NOT_FOUND}
        told: list[LoggedEvent] = []

        def describe(read: list[Message]) -> list[LoggedEvent]:
            # The messages this read turned READ: logged with the read, announced after it.
            events = [e for message in read for e in status_events(message, conversation)]
            told.extend(events)
            return events

        try:
            result = await self.storage.read_conversation(
                tenant_id, user_id, conversation_id, message_id, describe=describe
            )
        except NotFound:
            return {"ok": False, "error": "message not found in this conversation"}
        if result is None:
            return {"ok": False, "error": NOT_FOUND}
        unread = await self.unread.read(
            tenant_id, user_id, role, conversation, result.inbound_count, result.position
        )
        self.journal.publish(told)
        newest = next((m for m in reversed(result.read) if m.whatsapp_message_id), None)
        if result.receipts and newest is not None:
            try:
                await self.queue.put(
                    "read_receipt",
                    (tenant_id, result.account_id, newest.whatsapp_message_id),
                    key=f"c:{conversation_id}",
                    priority=Priority.MESSAGE,
                )
            except QueueClosed:
                log.info("read receipt of %s not sent: shutting down", newest.id)
        return {"ok": True, "unreadCount": unread}

    async def handle_receipt(self, payload: tuple[str, str, str]) -> None:
        """Mark one customer message read on WhatsApp (a ``read_receipt`` job).

        Raises CloudApiError when a retry may succeed, PermanentError when it cannot.
        """
        tenant_id, account_id, wamid = payload
        account = await self.storage.get_account_by_id(tenant_id, account_id)
        if account is None:
            raise PermanentError(f"account {account_id} vanished")
        try:
            await self.cloud.mark_read(account.phone_number_id, account.access_token, wamid)
        except CloudApiError as exc:
            if exc.retryable:
                raise
            raise PermanentError(f"read receipt of {wamid} refused: {exc}") from exc
        log.debug("marked %s read on WhatsApp", wamid)
