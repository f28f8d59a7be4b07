"""Outbound: an agent's reply is stored PENDING, announced, queued, and sent by a worker.

The API stores nothing itself: ``send_reply`` writes the PENDING message and touches the
card, ``handle_send`` (a ``send`` job, keyed by the conversation so replies leave in order)
calls the Cloud API and records SENT with the returned WhatsApp id, or FAILED with the reason.
A retryable Cloud API error is raised for the queue to retry with backoff; a message a dead
process left PENDING is sent at the next start (``desk.recovery``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from desk import outbound_media
from desk.announce import announce_message, announce_status
from desk.media_cache import MediaCache
from desk.ports import DeskMetrics, Emitter
from desk.whatsapp import CloudApiClient, CloudApiError
from engine.jobs import PermanentError, Priority, PriorityJobQueue
from storage import Conversation, Message, Storage

__all__ = ["Outbound"]

log = logging.getLogger("zapline.desk")


class Outbound:
    """The send path of one process; its collaborators are passed in."""

    def __init__(
        self,
        storage: Storage,
        emitter: Emitter,
        queue: PriorityJobQueue,
        cloud: CloudApiClient,
        metrics: DeskMetrics | None = None,
        media: MediaCache | None = None,
    ) -> None:
        self.storage = storage
        # Where uploaded files wait for their send (desk.outbound_media); None: no uploads.
        self.media = media
        self.emitter = emitter
        self.queue = queue
        self.cloud = cloud
        self.metrics = metrics

    async def send_reply(
        self,
        conversation: Conversation,
        *,
        kind: str,
        content: str,
        metadata: dict[str, Any],
        user_id: str,
    ) -> Message:
        """Store a PENDING reply by ``user_id``, announce it, queue its send; return it.

        The caller has checked that the message can be expressed for the Cloud API.
        Raises what storage raises; QueueClosed while draining.
        """
        now = datetime.now(UTC)
        message, _ = await self.storage.insert_message(
            tenant_id=conversation.tenant_id,
            conversation_id=conversation.id,
            contact_id=conversation.contact_id,
            direction="outbound",
            type=kind,
            content=content,
            metadata={**metadata, "sentBy": user_id},
            status="PENDING",
            timestamp=now,
        )
        await self.storage.touch_conversation(conversation.id, now)
        await self.queue_send(conversation, message)
        return message

    async def queue_send(self, conversation: Conversation, message: Message) -> None:
        """Announce a new PENDING outbound message and queue its delivery."""
        announce_message(self.emitter, conversation, message)
        await self.queue.put(
            "send",
            (message.tenant_id, message.id),
            key=f"c:{conversation.id}",
            priority=Priority.MESSAGE,
        )

    async def handle_send(self, payload: tuple[str, str]) -> None:
        """Deliver one outbound message through the Cloud API (a ``send`` job).

        Raises CloudApiError when a retry may succeed, PermanentError when the message or its
        conversation vanished.
        """
        tenant_id, message_id = payload
        storage = self.storage
        message = await storage.get_message(tenant_id, message_id)
        if message is None:
            raise PermanentError(f"outbound message {message_id} vanished")
        if message.status != "PENDING":
            return  # already sent (a replayed job)
        conversation = await storage.get_conversation(tenant_id, message.conversation_id)
        if conversation is None:
            raise PermanentError(f"conversation {message.conversation_id} vanished")
        account = await storage.get_account_by_id(tenant_id, conversation.account_id)
        if account is None:
            await self.fail(
                message, {"message": "no WhatsApp account for this conversation"}, conversation
            )
            return
        try:
            # An uploaded file goes to the Cloud API first; the send names its media id.
            content, metadata = await outbound_media.prepare_send(
                storage, self.cloud, self.media, message, account
            )
            result = await self.cloud.send_message(
                account.phone_number_id,
                account.access_token,
                conversation.contact.phone_number,
                message.type,
                content,
                metadata,
            )
        except CloudApiError as exc:
            self._count("retry" if exc.retryable else "failed")
            if exc.retryable:
                raise
            await self.fail(
                message, {"message": exc.message, "code": exc.code, "status": exc.status}
            )
            return
        self._count("sent")
        sent = await storage.mark_message_sent(message.id, result.whatsapp_message_id)
        announce_status(self.emitter, sent, conversation)
        await outbound_media.keep_sent_upload(storage, self.media, sent, account.phone_number_id)

    async def fail(
        self, message: Message, error: dict[str, Any], conversation: Conversation | None = None
    ) -> None:
        """Record a send as FAILED with ``error`` and announce it (to ``conversation``'s
        audience, read from storage when not given)."""
        failed = await self.storage.mark_message_failed(message.id, error)
        await outbound_media.discard_upload(self.media, message)
        log.warning("send of message %s failed: %s", message.id, error.get("message"))
        if conversation is None:
            conversation = await self.storage.get_conversation(
                message.tenant_id, message.conversation_id
            )
        if conversation is not None:
            announce_status(self.emitter, failed, conversation)

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.count_cloud_send(result)
