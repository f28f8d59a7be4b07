"""The desk's background passes: the inbox sweep, inbox pruning, kept statuses and changes,
and the event log's retention.

Each runs in the desk's task group for as long as the desk runs, and a failed pass (storage
away) is logged and tried again at the next one; none of them is on the path of a webhook.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from desk.announce import message_updated_events, status_events
from desk.journal import collect
from desk.recovery import replay_inbox

if TYPE_CHECKING:
    from desk._desk import Desk

__all__ = [
    "pending_loop",
    "prune_events",
    "prune_events_loop",
    "prune_inbox",
    "prune_loop",
    "settle_pending",
    "sweep_inbox",
    "sweep_loop",
]

log = logging.getLogger("zapline.desk")

# Finished inbox rows deleted per statement: short enough not to hold SQLite's one
# connection (and the intake's commits behind it) for long.
PRUNE_BATCH = 1000
# At most this many seconds between two passes over the statuses and changes kept for
# messages not stored yet.
PENDING_INTERVAL = 30.0


async def sweep_loop(desk: Desk) -> None:
    """Sweep the inbox every ``inbox_sweep_interval`` seconds until cancelled.

    A row can be left pending while this process runs: storage was away when its dead
    letter was due, a split failed during an outage. It is replayed here, so nothing
    acknowledged waits for a restart.
    """
    interval = desk.options.inbox_sweep_interval
    while True:
        await anyio.sleep(interval)
        try:
            swept = await sweep_inbox(desk, older_than=interval)
        except Exception as exc:
            log.warning("inbox sweep failed (next in %.0f s): %s", interval, exc)
            continue
        if swept:
            log.info("inbox sweep: %d pending rows queued again", swept)


async def sweep_inbox(desk: Desk, *, older_than: float) -> int:
    """Queue again every pending row older than ``older_than`` s that nothing in this
    process is working on; return how many. Raises what storage raises."""
    busy = desk.busy_inbox_ids()
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
    return await replay_inbox(
        desk, replay=False, skip=lambda row: row.id in busy or row.received_at > cutoff
    )


async def prune_loop(desk: Desk) -> None:
    """Delete finished inbox rows older than ``inbox_retention`` until cancelled.

    Without it the inbox keeps every body ever received: the file grows by the webhook rate
    forever, and so does every scan of the table (inbox_counts on each /metrics scrape).
    """
    interval = desk.options.inbox_sweep_interval
    while True:
        await anyio.sleep(interval)
        try:
            pruned = await prune_inbox(desk, older_than=desk.options.inbox_retention)
        except Exception as exc:
            log.warning("inbox prune failed (next in %.0f s): %s", interval, exc)
            continue
        if pruned:
            log.debug("inbox prune: %d finished rows deleted", pruned)


async def prune_inbox(desk: Desk, *, older_than: float) -> int:
    """Delete the finished inbox rows received more than ``older_than`` s ago, in batches of
    PRUNE_BATCH; return how many. Raises what storage raises."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
    total = 0
    while True:
        deleted = await desk.storage.inbox_prune(received_before=cutoff, limit=PRUNE_BATCH)
        total += deleted
        if deleted < PRUNE_BATCH:
            return total
        # the intake's commits get the connection in between
        await anyio.lowlevel.checkpoint()


async def pending_loop(desk: Desk) -> None:
    """Settle kept statuses and changes every so often until cancelled."""
    options = desk.options
    ttl = min(options.pending_status_ttl, options.pending_change_ttl)
    interval = max(0.05, min(ttl / 2, PENDING_INTERVAL))
    while True:
        await anyio.sleep(interval)
        try:
            await settle_pending(desk)
        except Exception as exc:
            log.warning("kept statuses/changes not settled (next in %.0f s): %s", interval, exc)


async def settle_pending(desk: Desk) -> None:
    """Apply the statuses and changes kept for messages that are known now (announcing
    them), and expire those older than their TTL. Raises what storage raises."""
    storage = desk.storage
    describe, publish = collect(desk.journal, status_events)
    await storage.apply_pending_statuses(describe=describe)
    publish()
    describe, publish = collect(
        desk.journal, lambda m, c: message_updated_events(c, m, text_changed=True)
    )
    await storage.apply_pending_changes(describe=describe)
    publish()
    now = datetime.now(UTC)
    ttl = desk.options.pending_status_ttl
    for tenant_id, wamid, status in await storage.expire_pending_statuses(
        now - timedelta(seconds=ttl)
    ):
        log.info(
            "status %s of %s expired: no message with this id arrived within %.0f s",
            status,
            wamid,
            ttl,
            extra={"tenant": tenant_id},
        )
    ttl = desk.options.pending_change_ttl
    for tenant_id, wamid, kind, target in await storage.expire_pending_changes(
        now - timedelta(seconds=ttl)
    ):
        log.info(
            "%s %s of %s expired: no message with this id arrived within %.0f s",
            kind,
            wamid,
            target,
            ttl,
            extra={"tenant": tenant_id},
        )


async def prune_events_loop(desk: Desk) -> None:
    """Delete logged events (and recovery sessions) older than ``event_retention`` now and
    then, until cancelled."""
    retention = desk.options.event_retention
    interval = max(0.05, min(retention / 10, 60.0))
    while True:
        await anyio.sleep(interval)
        try:
            pruned = await prune_events(desk, older_than=retention)
        except Exception as exc:
            log.warning("event log pruning failed (next in %.0f s): %s", interval, exc)
            continue
        if pruned:
            log.info("event log: %d events older than %.0f s pruned", pruned, retention)


async def prune_events(desk: Desk, *, older_than: float) -> int:
    """Delete, in batches, the events logged more than ``older_than`` s ago and the recovery
    sessions not saved for as long; return how many events. Raises what storage raises."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
    total = 0
    while True:
        deleted = await desk.storage.prune_events(created_before=cutoff, limit=PRUNE_BATCH)
        total += deleted
        desk.events_pruned += deleted
        if deleted < PRUNE_BATCH:
            break
        await anyio.lowlevel.checkpoint()
    await desk.storage.prune_recovery_sessions(updated_before=cutoff)
    return total
