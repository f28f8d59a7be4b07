"""Crash recovery at start-up: what a dead or stopped process left unfinished.

Two things, after ``ZAPLINE_RECOVERY_GRACE`` (the agents' browsers reconnect meanwhile):

- inbox rows still pending are queued again (every step is idempotent on the WhatsApp id,
  and what is stored already is not announced again);
- outbound messages still PENDING are sent (single node only, see ``resend_pending``).

Nothing is announced again: what the old process announced, or meant to, is in the event
log, and a client that reconnects is sent what it missed from there (``desk.resume``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from desk.whatsapp import load_json
from engine.jobs import Priority
from storage import InboxItem

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


async def replay_inbox(
    desk: Desk,
    *,
    replay: bool = True,
    skip: Callable[[InboxItem], bool] | None = None,
) -> int:
    """Queue every pending inbox row again (after a crash or restart); return how many.

    ``replay`` marks the rows as replayed (logged); nothing stored already is announced
    again. ``skip`` leaves rows out.
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
