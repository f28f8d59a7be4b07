"""Crash recovery at start-up: what a dead or stopped process left unfinished.

Three things, all after ``ZAPLINE_RECOVERY_GRACE`` (the agents' browsers lost their sockets
with the old process; announcements made before they reconnect reach no one):

- after a crash, the messages stored in the last ``ZAPLINE_RECOVERY_WINDOW`` seconds are
  announced again: what was announced just before it may have died in an outbox (at least
  once: a client may see one twice);
- inbox rows still pending are queued again (every step is idempotent on the WhatsApp id);
- outbound messages still PENDING are sent (single node only, see ``resend_pending``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from desk.announce import announce_message
from desk.whatsapp import load_json
from engine.jobs import Priority
from storage import Conversation, InboxItem

if TYPE_CHECKING:
    from desk._desk import Desk

log = logging.getLogger("zapline.desk")


async def recover(desk: Desk, crashed: bool) -> None:
    """Run the recovery steps that apply (see the module docstring).

    ``crashed``: the last run of this node ended without a clean stop.
    """
    pending = await desk.storage.inbox_pending(limit=1)
    unsent = await desk.storage.pending_outbound(limit=1)
    if not pending and not unsent and not crashed:
        return
    options = desk.options
    log.info(
        "recovering (%s): announcements resume in %.1f s",
        "after a crash" if crashed else "unfinished work",
        options.recovery_grace,
    )
    await anyio.sleep(options.recovery_grace)
    if crashed:
        count = await reannounce_recent(desk, options.recovery_window)
        log.info("re-announced %d messages stored just before the crash", count)
    replayed = await replay_inbox(desk)
    if replayed:
        log.info("replaying %d unprocessed inbox rows", replayed)
    if unsent:
        await resend_pending(desk)


async def resend_pending(desk: Desk) -> int:
    """Queue a send for every outbound message the last run left PENDING; return how many.

    Single node only (no ``REDIS_URL``): with several nodes on one database, another
    node's PENDING messages are its own, about to be sent, and sending them here too
    would send them twice. There they are only logged.
    """
    messages = await desk.storage.pending_outbound(limit=10_000)
    if not desk.options.single_node:
        log.warning(
            "%d outbound messages are PENDING; with several nodes they are left to the node"
            " that stored them (not re-sent from here)",
            len(messages),
        )
        return 0
    for message in messages:
        await desk.queue.put(
            "send",
            (message.tenant_id, message.id),
            key=f"c:{message.conversation_id}",
            priority=Priority.MESSAGE,
        )
    log.info("sending %d outbound messages the last run left PENDING", len(messages))
    return len(messages)


async def reannounce_recent(desk: Desk, window_seconds: float) -> int:
    """Announce again the messages stored within ``window_seconds`` of the newest one."""
    messages = await desk.storage.recent_messages(window_seconds=window_seconds)
    conversations: dict[str, Conversation | None] = {}
    for message in messages:
        if message.conversation_id not in conversations:
            conversations[message.conversation_id] = await desk.storage.get_conversation(
                message.tenant_id, message.conversation_id
            )
        conversation = conversations[message.conversation_id]
        if conversation is not None:
            announce_message(desk.emitter, conversation, message)
    return len(messages)


async def replay_inbox(
    desk: Desk,
    *,
    replay: bool = True,
    skip: Callable[[InboxItem], bool] | None = None,
) -> int:
    """Queue every pending inbox row again (after a crash or restart); return how many.

    ``replay`` says whether messages already stored are announced again (after a crash:
    what was announced may have died with the process). ``skip`` leaves rows out.
    """
    count = 0
    after = 0
    while True:
        rows = await desk.storage.inbox_pending(after_id=after, limit=500)
        if not rows:
            return count
        for row in rows:
            if skip is not None and skip(row):
                continue
            try:
                body = load_json(row.body)
            except ValueError:
                await desk.storage.inbox_mark([row.id], "failed", error="invalid JSON")
                continue
            desk.replaying.add(row.id)
            await desk.queue.put(
                "inbox", (row.id, body, replay, None), key=None, priority=Priority.MESSAGE
            )
            count += 1
        after = rows[-1].id
