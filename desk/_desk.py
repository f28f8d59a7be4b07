"""The desk's workers: inbox rows -> messages and statuses -> storage -> Socket.IO events.

Theory of operation
-------------------
A webhook of plain customer messages whose conversations have nothing queued (the usual
kind) is stored with its messages in one commit (``InboxWriter.commit_with``: the inbox row is
``done`` at once) and announced before its 200 leaves. Any other webhook is committed to the
inbox, then split (by the request that committed it; by an ``inbox`` job when replayed) into
one job per inbound message (key: the contact's conversation, so a conversation's messages are
processed one at a time, in order) and one job per status (key: the message id); while one of
a conversation's messages is between its commit and its split or in a job, that
conversation's next messages take the same path, so none overtakes another. The inbox row is marked done when all of its jobs finished
(or went to dead letters), so a crash at any point leaves it pending, and the start-up replay
processes it again. Every step is idempotent on the WhatsApp message id: a replay stores
nothing twice and announces nothing twice. Every announcement is described to storage with
its change (``desk.announce``), logged in the change's transaction with a per-tenant seq, and
emitted in seq order by ``desk.journal``: what a crash kept from the sockets is in the log,
where reconnecting clients recover it (``desk.resume``).

Inbound messages finishing together share one database commit (``self.inbound``, a group
commit) and one socket write per agent (deferred emits, ``engine/_coalesce.py``).

A storage outage does not spend a job's attempts (the queue's ``is_transient``); a row whose
part could be neither stored nor dead-lettered stays pending and the inbox sweep processes it
again. Outbound replies are ``desk.outbound``; what a dead process left behind is
``desk.recovery``; every event is built by ``desk.announce`` from ``desk.contract``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import anyio
import anyio.lowlevel
import orjson

from desk import housekeeping
from desk.accounts import AccountCache
from desk.announce import (
    message_updated_events,
    status_events,
)
from desk.inbound import KeyCounts, announce_inbound, conversation_key, inbound_record
from desk.inbox import InboxWriter
from desk.journal import Journal, collect
from desk.media_cache import MediaCache
from desk.outbound import Outbound
from desk.ports import DeskMetrics, DeskOptions, Emitter, timed_stage
from desk.reads import Reads
from desk.recovery import recover
from desk.unread import UnreadDesk
from desk.whatsapp import (
    Change,
    CloudApiClient,
    CloudApiError,
    InboundMessage,
    StatusUpdate,
    WebhookBatch,
    parse_webhook,
)
from engine.group_commit import GroupCommit
from engine.jobs import Job, PermanentError, Priority, PriorityJobQueue, QueueClosed
from storage import (
    Conflict,
    Conversation,
    InboundRecord,
    InboundResult,
    LoggedEvent,
    Message,
    MessageChange,
    Storage,
)

log = logging.getLogger("zapline.desk")

# meta key: "running" while a process serves, "stopped" after a clean shutdown.
LIFECYCLE_KEY = "lifecycle"
# Seconds finished inbox rows wait to be marked done together.
DONE_MARK_DELAY = 0.25


def _latency_observer(metrics: DeskMetrics, since: float) -> Callable[[], None]:
    # Called by the engine right after the write, which a deferred emit does later in the turn.
    def observe() -> None:
        metrics.observe_fanout_latency(time.monotonic() - since)

    return observe


def _change_sender(msg: InboundMessage) -> str:
    # An echoed change is the business's own: its number, not the customer's.
    sender = msg.metadata.get("from") if msg.echo else msg.wa_id
    return sender if isinstance(sender, str) and sender else msg.wa_id


@dataclass(slots=True)
class _InboxProgress:
    remaining: int
    replay: bool
    received: float | None


class Desk:
    """Job handlers and the inbox bookkeeping of one process.

    Collaborators are explicit: ``storage``, the ``emitter`` every announcement goes through
    (local sockets, and other nodes with a broker), the job ``queue`` (call ``register`` to
    route the desk's job kinds to it), the Cloud API ``cloud`` client, ``options`` and
    optional ``metrics``. ``local_emitter`` (this node's sockets only) is where logged
    events go, when there are several nodes (``desk.journal``); default ``emitter``.
    """

    def __init__(
        self,
        *,
        storage: Storage,
        emitter: Emitter,
        queue: PriorityJobQueue,
        cloud: CloudApiClient,
        options: DeskOptions,
        metrics: DeskMetrics | None = None,
        media: MediaCache | None = None,
        local_emitter: Emitter | None = None,
    ) -> None:
        self.storage = storage
        self.emitter = emitter
        self.queue = queue
        self.cloud = cloud
        self.options = options
        self.metrics = metrics
        self.accounts = AccountCache(storage)
        # Logged events go to this node's sockets only: every node's journal takes the other
        # nodes' events from the log (desk/journal.py), so they never cross the broker.
        self.journal = Journal(
            local_emitter or emitter,
            storage,
            poll_interval=0.0 if options.single_node else options.event_poll_interval,
        )
        self.outbound = Outbound(storage, self.journal, queue, cloud, metrics, media)
        self.reads = Reads(
            storage, self.journal, queue, cloud, UnreadDesk(storage, emitter, options)
        )
        self.intake = InboxWriter(
            storage,
            observe=None if metrics is None else metrics.observe_inbox_commit,
            min_interval=options.commit_interval,
        )
        write = timed_stage(storage.record_inbound_many, metrics, "db_write")  # cost ledger
        self.inbound: GroupCommit[InboundRecord, InboundResult] = GroupCommit(
            write, name="inbound messages"
        )
        # One lifecycle record per node, so a second node starting is not taken for a crash.
        self.lifecycle_key = f"{LIFECYCLE_KEY}:{options.node}"
        self._progress: dict[int, _InboxProgress] = {}
        # Inbox rows queued as "inbox" jobs (replays) that have not been split yet.
        self.replaying: set[int] = set()
        self._done_ids: list[int] = []
        self._done_wakeup = anyio.Event()
        self.events_pruned = 0
        # Conversation keys of webhooks committed to be split, not split yet (accept_webhook).
        self._splitting = KeyCounts()

    # -- wiring ------------------------------------------------------------------------------

    def register(self) -> None:
        """Register the job kinds on the queue."""
        q = self.queue
        q.register("inbox", self.handle_inbox)
        q.register("inbound", self.handle_inbound)
        q.register("status", self.handle_status, max_attempts=8)
        q.register("send", self.outbound.handle_send)
        q.register("read_receipt", self.reads.handle_receipt)

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Run intake, the done-marker and crash recovery until cancelled."""
        async with anyio.create_task_group() as tg:
            await tg.start(self.journal.run)
            await tg.start(self.intake.run)
            await tg.start(self.inbound.run)
            await tg.start(self.reads.unread.run)
            tg.start_soon(self._mark_done_loop)
            tg.start_soon(housekeeping.sweep_loop, self)
            if self.options.inbox_retention > 0:
                tg.start_soon(housekeeping.prune_loop, self)
            tg.start_soon(housekeeping.pending_loop, self)
            if self.options.event_retention > 0:
                tg.start_soon(housekeeping.prune_events_loop, self)
            previous = await self.storage.get_meta(self.lifecycle_key)
            await self.storage.set_meta(self.lifecycle_key, "running")
            task_status.started()
            tg.start_soon(recover, self, previous == "running")

    async def aclose(self) -> None:
        """Flush done-marks, record a clean stop, close the Cloud API client."""
        await self._flush_done()
        try:
            await self.storage.set_meta(self.lifecycle_key, "stopped")
        except Exception as exc:
            log.warning("could not record the clean stop: %s", exc)
        await self.cloud.aclose()

    # -- intake ------------------------------------------------------------------------------

    async def accept_webhook(self, raw: bytes, body: dict[str, Any]) -> int:
        """Commit ``raw`` to the inbox and process it, or queue its processing; return the
        inbox id.

        A webhook of plain messages whose conversations have nothing queued (the usual
        kind) is stored with its messages in the inbox commit itself (``commit_with``: one
        transaction, one fsync, no job) and announced once it returns. Anything else
        (statuses, changes, number changes, unroutable parts, a conversation with work
        still queued, which must not be overtaken) is committed alone and split into jobs.
        """
        received = time.monotonic()
        try:
            batch = parse_webhook(body)
        except Exception:
            batch = None  # the "inbox" job's split fails the same way, and says why
        inline = None if batch is None else await self._inline(batch, received)
        if inline is not None:
            assert batch is not None
            # Shielded: once the commit is under way, what it stores is announced even if
            # the poster hangs up (the journal's order waits for every seq it hands out).
            with anyio.CancelScope(shield=True):
                records = [record for record, _ in inline]
                inbox_id, results = await self.intake.commit_with(raw, records)
                if results is not None:
                    self._log_skipped(inbox_id, batch)
                    await self._announce_stored(inbox_id, inline, results)
                    return inbox_id
        else:
            keys = [] if batch is None else [conversation_key(m) for m in batch.messages]
            self._splitting.claim(keys)
            try:
                inbox_id = await self.intake.commit(raw)
            except BaseException:
                self._splitting.release(keys)
                raise
        payload = (inbox_id, body, False, received)
        try:
            # Split it into its message and status jobs here, not in an "inbox" job of its
            # own: one queue hop less per webhook. Replays still go through "inbox" jobs.
            if batch is None:
                await self.handle_inbox(payload)
            else:
                await self._split(inbox_id, batch, False, received)
        except Exception as exc:
            log.warning("inbox %d: split failed (%s); queued for a retry", inbox_id, exc)
            try:
                await self.queue.put("inbox", payload, priority=Priority.MESSAGE)
            except QueueClosed:
                # Draining: the row is durable and pending, so the next start processes it.
                log.info("inbox %d stored during shutdown; processed at the next start", inbox_id)
        finally:
            if inline is None:
                self._splitting.release(keys)
        return inbox_id

    async def _announce_stored(
        self,
        inbox_id: int,
        inline: list[tuple[InboundRecord, list[LoggedEvent]]],
        results: list[InboundResult],
    ) -> None:
        # Stored and logged already: a failure here (moving an older message's card needs a
        # read) is no reason to refuse the webhook; the log still holds every event.
        try:
            for (_, told), result in zip(inline, results, strict=True):
                await self._announce_inbound(told, result)
        except Exception as exc:
            log.warning("inbox %d: stored, not all announced live: %s", inbox_id, exc)

    async def _inline(
        self, batch: WebhookBatch, received: float
    ) -> list[tuple[InboundRecord, list[LoggedEvent]]] | None:
        """The records of a webhook stored in its inbox commit, or None to split it."""
        if batch.statuses or not batch.messages:
            return None
        prepared = []
        for msg in batch.messages:
            if msg.change is not None or msg.new_wa_id is not None:
                return None
            key = conversation_key(msg)
            # A job of this conversation queued or running, or a webhook with one between
            # its commit and its split: storing this message now would overtake it.
            if key in self._splitting or self.queue.holds(key):
                return None
            account = await self.accounts.get(msg.phone_number_id)
            if account is None:
                return None
            prepared.append(inbound_record(account, msg, self._on_written(received)))
        return prepared

    def _log_skipped(self, inbox_id: int, batch: WebhookBatch) -> None:
        for reason in batch.skipped:
            log.info("inbox %d: skipped part: %s", inbox_id, reason)

    async def handle_inbox(self, payload: tuple[int, dict[str, Any], bool, float | None]) -> None:
        """Split one webhook into message and status jobs."""
        inbox_id, body, replay, received = payload
        await self._split(inbox_id, parse_webhook(body), replay, received)

    async def _split(
        self, inbox_id: int, batch: WebhookBatch, replay: bool, received: float | None
    ) -> None:
        self.replaying.discard(inbox_id)
        self._log_skipped(inbox_id, batch)
        routable_messages = []
        routable_statuses = []
        for message in batch.messages:
            if await self.accounts.get(message.phone_number_id) is None:
                log.warning(
                    "inbox %d: unroutable message for phone_number_id %s",
                    inbox_id,
                    message.phone_number_id,
                )
            else:
                routable_messages.append(message)
        for status in batch.statuses:
            if await self.accounts.get(status.phone_number_id) is None:
                log.warning(
                    "inbox %d: unroutable status for phone_number_id %s",
                    inbox_id,
                    status.phone_number_id,
                )
            else:
                routable_statuses.append(status)
        jobs = len(routable_messages) + len(routable_statuses)
        if jobs == 0:
            state = "done" if not (batch.messages or batch.statuses) else "unroutable"
            await self.storage.inbox_mark([inbox_id], state)
            return
        self._progress[inbox_id] = _InboxProgress(jobs, replay, received)
        try:
            for message in routable_messages:
                await self.queue.put(
                    "inbound",
                    (inbox_id, message),
                    key=conversation_key(message),
                    priority=Priority.MESSAGE,
                )
            for status in routable_statuses:
                key = f"m:{status.whatsapp_message_id}"
                await self.queue.put(
                    "status", (inbox_id, status), key=key, priority=Priority.STATUS
                )
        except QueueClosed:
            # Draining: this webhook was acknowledged, so finish it here, in order. A part that
            # fails leaves the row pending (never "failed"): the next start replays it.
            await self._finish_inline(inbox_id, routable_messages, routable_statuses)

    async def _finish_inline(
        self, inbox_id: int, messages: list[InboundMessage], statuses: list[StatusUpdate]
    ) -> None:
        try:
            for message in messages:
                await self.handle_inbound((inbox_id, message))
            for status in statuses:
                await self.handle_status((inbox_id, status))
        except Exception as exc:
            self._progress.pop(inbox_id, None)
            log.info("inbox %d left pending for the next start: %s", inbox_id, exc)

    def _finished(self, inbox_id: int) -> None:
        progress = self._progress.get(inbox_id)
        if progress is None:
            return
        progress.remaining -= 1
        if progress.remaining <= 0:
            del self._progress[inbox_id]
            self._done_ids.append(inbox_id)
            self._done_wakeup.set()

    async def _mark_done_loop(self) -> None:
        # Done-marks are batched: one UPDATE for every row finished in the last
        # DONE_MARK_DELAY. A mark is cheap to lose (the row is replayed, idempotently) and a
        # commit each would be a third of the database work of a webhook at low rates.
        while True:
            if not self._done_ids:
                self._done_wakeup = anyio.Event()
                await self._done_wakeup.wait()
            await anyio.sleep(DONE_MARK_DELAY)
            await self._flush_done()

    async def _flush_done(self) -> None:
        ids, self._done_ids = self._done_ids, []
        if ids:
            try:
                with anyio.CancelScope(shield=True):
                    await self.storage.inbox_mark(ids, "done")
            except Exception as exc:  # they stay pending and are replayed: harmless
                log.warning("could not mark %d inbox rows done: %s", len(ids), exc)

    # -- inbound messages --------------------------------------------------------------------

    async def handle_inbound(self, payload: tuple[int, InboundMessage]) -> None:
        """Store one inbound message and announce it (or apply the change it makes)."""
        inbox_id, msg = payload
        account = await self.accounts.get(msg.phone_number_id)
        if account is None:
            raise PermanentError(f"no account for phone_number_id {msg.phone_number_id}")
        if msg.change is not None:
            await self._apply_change(inbox_id, account.tenant_id, msg, msg.change)
            return
        phone, moved = msg.wa_id, False
        if msg.new_wa_id is not None:
            # The customer changed numbers: their contact takes the new one first, so the
            # notice, and what they write next, continue the same conversation (and a
            # replay of the notice finds it there instead of recreating the old number).
            moved = await self._change_number(account.tenant_id, msg.wa_id, msg.new_wa_id)
            phone = msg.new_wa_id
        progress = self._progress.get(inbox_id)
        received = None if progress is None else progress.received
        record, told = inbound_record(
            account, msg, self._on_written(received), phone=phone, moved=moved
        )
        # Group commit: the messages the other workers are storing right now share this
        # commit (they are for other conversations: a conversation's jobs run one at a time).
        result = await self.inbound.submit(record)
        await self._announce_inbound(told, result)
        self._finished(inbox_id)

    def _on_written(self, received: float | None) -> Callable[[], None] | None:
        if self.metrics is None or received is None:
            return None
        return _latency_observer(self.metrics, received)

    async def _announce_inbound(self, told: list[LoggedEvent], result: InboundResult) -> None:
        await announce_inbound(self.storage, self.journal, self.reads.unread, told, result)

    async def _apply_change(
        self, inbox_id: int, tenant_id: str, msg: InboundMessage, change: Change
    ) -> None:
        # A reaction, edit or deletion changes its target; it is no message of its own, so
        # it neither moves the card nor counts as new. One that came first is kept by
        # storage and applied when its target is stored.
        text_changed = change.kind != "reaction"
        describe, publish = collect(
            self.journal, lambda m, c: message_updated_events(c, m, text_changed=text_changed)
        )
        result = await self.storage.apply_message_change(
            MessageChange(
                tenant_id=tenant_id,
                kind=change.kind,
                target_id=change.target,
                whatsapp_message_id=msg.whatsapp_message_id,
                sender=_change_sender(msg),
                timestamp=msg.timestamp,
                content=change.content,
                body=change.body,
            ),
            describe=describe,
        )
        publish()
        if result is None:
            log.debug("%s of %s kept until it arrives", change.kind, change.target)
        self._finished(inbox_id)

    async def _change_number(self, tenant_id: str, old: str, new: str) -> bool:
        try:
            contact = await self.storage.change_contact_number(tenant_id, old, new)
        except Conflict:
            contact = None
        if contact is None:
            log.info(
                "number change %s -> %s: no contact to move (or %s has one already)",
                old,
                new,
                new,
                extra={"tenant": tenant_id},
            )
            return False
        log.info("contact %s changed number %s -> %s", contact.id, old, new)
        return True

    # -- statuses ----------------------------------------------------------------------------

    async def handle_status(self, payload: tuple[int, StatusUpdate]) -> None:
        """Apply one status (monotonic) and announce a change."""
        inbox_id, status = payload
        account = await self.accounts.get(status.phone_number_id)
        if account is None:
            raise PermanentError(f"no account for phone_number_id {status.phone_number_id}")
        error = {"errors": status.errors} if status.errors else None
        # A status that overtook its message (the send worker has not recorded the id yet,
        # or the message was sent from elsewhere) is kept and applied when the message is:
        # an expected race, not an error to retry.
        describe, publish = collect(self.journal, status_events)
        result = await self.storage.record_status(
            account.tenant_id,
            status.whatsapp_message_id,
            status.status,
            error=error,
            describe=describe,
        )
        publish()
        if result is None:
            log.debug(
                "status %s of %s kept until its message is known",
                status.status,
                status.whatsapp_message_id,
            )
        self._finished(inbox_id)

    # -- outbound ----------------------------------------------------------------------------

    async def send_reply(
        self,
        conversation: Conversation,
        *,
        kind: str,
        content: str,
        metadata: dict[str, Any],
        user_id: str,
    ) -> Message:
        """Store an agent's reply as PENDING, announce it and queue its delivery; return it."""
        return await self.outbound.send_reply(
            conversation, kind=kind, content=content, metadata=metadata, user_id=user_id
        )

    # -- dead letters ------------------------------------------------------------------------

    async def on_dead_letter(self, job: Job, exc: BaseException) -> None:
        """Keep the failed job with its error; finish its inbox row; fail a send.

        An inbox row counts a dead-lettered part as finished only once the dead letter is
        durable: if it cannot be written either, the row stays pending and the sweep (or the
        next start) processes the whole webhook again. Raises what storage raised then.
        """
        payload = job.payload
        record: dict[str, Any] = {"kind": job.kind, "attempts": job.attempts}
        if job.kind in ("inbound", "status"):
            inbox_id, item = payload
            record.update({"inboxId": inbox_id, "item": asdict(item)})
            try:
                await self._add_dead_letter(job, record, exc)
            except BaseException:
                # Forget the row here, so the sweep replays it: it stays pending in storage.
                self._progress.pop(inbox_id, None)
                raise
            self._finished(inbox_id)
            return
        if job.kind == "send":
            tenant_id, message_id = payload
            record.update({"tenantId": tenant_id, "messageId": message_id})
            message = await self.storage.get_message(tenant_id, message_id)
            if message is not None and message.status == "PENDING":
                err: dict[str, Any] = {"message": str(exc)}
                if isinstance(exc, CloudApiError):
                    err.update({"code": exc.code, "status": exc.status})
                await self.outbound.fail(message, err)
        elif job.kind == "inbox":
            record["inboxId"] = payload[0]
            await self._add_dead_letter(job, record, exc)
            await self.storage.inbox_mark([payload[0]], "failed", error=repr(exc))
            return
        await self._add_dead_letter(job, record, exc)

    async def _add_dead_letter(self, job: Job, record: dict[str, Any], exc: BaseException) -> None:
        log.error("job %s dead-lettered after %d attempts: %s", job.kind, job.attempts, exc)
        await self.storage.add_dead_letter(
            job.kind, orjson.loads(orjson.dumps(record, default=str)), repr(exc)
        )

    def busy_inbox_ids(self) -> set[int]:
        """Inbox rows this process is working on (split, queued, or about to be marked done)."""
        return set(self._progress) | set(self._done_ids) | self.replaying
