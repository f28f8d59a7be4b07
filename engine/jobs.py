"""In-process priority job queues with per-key ordering, retries and dead letters.

Theory of operation
-------------------
A job moves through four places, and every move happens in this module's
``PriorityJobQueue`` methods:

    put ──► held (its key is busy) ──► ready heap ──► running ──► done
                                          ▲              │
                                          └── retrying ◄─┤ (handler raised, attempts left)
                                                         └─► dead letter

* *Ready heap*: ordered by ``(priority, id)``, so a free worker takes the most
  urgent job, and within a priority the one that was put first.
* *Keys*: a key is "busy" from the moment one of its jobs enters the ready heap
  until that job is done or dead, including any retry wait.  Later jobs of a
  busy key are held in a per-key FIFO, whatever their priority, and the next one
  is released only when the current one finishes.  That single rule gives
  per-key ordering across priorities and across retries.
* *Waiting*: idle workers and blocked ``put()`` callers each wait on their own
  ``anyio.Event`` in a FIFO of waiters; a state change wakes exactly the waiters
  it can satisfy.  Retry delays are sleeping tasks in ``run()``'s task group.
* *Outages*: a failure that ``is_transient`` recognises (the database is down, the
  disk is full) is not the job's fault.  Such a job waits and retries with backoff
  without spending its attempts, for up to ``outage_timeout`` seconds from its first
  such failure; only then, or on any other error, do attempts count.  An
  acknowledged message is never dead-lettered because its storage was away.
* *Cancellation*: when ``run()`` is cancelled, a running or retrying job goes
  back to the ready heap (its attempt is not counted), so a restarted ``run()``
  picks it up.  Handlers must therefore be idempotent, which the design asks of
  every worker step anyway.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum
from functools import partial
from typing import Any

import anyio
import anyio.abc

__all__ = [
    "ExpectedError",
    "Handler",
    "Job",
    "PermanentError",
    "Priority",
    "PriorityJobQueue",
    "QueueClosed",
    "QueueFull",
    "QueueStatistics",
]

logger = logging.getLogger("zapline.jobs")

Handler = Callable[[Any], Awaitable[None]]


class Priority(IntEnum):
    """How urgent a job is; a lower value runs first."""

    MESSAGE = 0  # inbound messages and outbound sends: what an agent is waiting to see
    STATUS = 1
    HOUSEKEEPING = 2


@dataclass(slots=True)
class Job:
    """One unit of work; ``id`` and ``enqueued_at`` are assigned by the queue."""

    kind: str
    payload: Any
    key: str | None = None
    priority: Priority = Priority.MESSAGE
    attempts: int = 0
    id: int = 0
    enqueued_at: float = 0.0
    # Monotonic time of the first transient failure of the current outage, and how many.
    outage_since: float | None = None
    outage_retries: int = 0


class QueueFull(Exception):
    """Raised by ``put_nowait`` when the queue already holds ``max_size`` queued jobs."""


class QueueClosed(Exception):
    """Raised by ``put``/``put_nowait`` once ``drain()`` has started: intake is over."""


class PermanentError(Exception):
    """Raised by a handler to send its job straight to the dead letters, without retries."""


class ExpectedError(Exception):
    """A failure the handler expects (a remote service refused or timed out): the queue logs
    its retries and its burial in one line with the message, without a traceback."""


def _trace(exc: BaseException) -> BaseException | None:
    # What the queue's log lines carry as exc_info: nothing for an expected failure.
    return None if isinstance(exc, ExpectedError) else exc


@dataclass(frozen=True)
class QueueStatistics:
    """A snapshot of a queue: queued depth by priority name, and lifetime counters."""

    depth: dict[str, int]
    running: int
    waiting_retry: int
    waiting_outage: int
    done: int
    retried: int
    dead: int
    max_size: int


@dataclass(slots=True)
class _Kind:
    handler: Handler
    max_attempts: int


class _Waiters:
    """A FIFO of tasks each waiting for a wake-up meant for exactly one of them."""

    def __init__(self) -> None:
        self._events: deque[anyio.Event] = deque()

    async def wait(self) -> None:
        event = anyio.Event()
        self._events.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                # We were chosen but will not act on it: hand the wake-up on,
                # or another waiter could sleep next to work it could do.
                self.wake_one()
            else:
                self._events.remove(event)
            raise

    def wake_one(self) -> None:
        if self._events:
            self._events.popleft().set()

    def wake_all(self) -> None:
        while self._events:
            self._events.popleft().set()


class PriorityJobQueue:
    """Priority job queue served by ``workers`` tasks inside ``run()``.

    Contract:

    * **Strict priority.** A free worker takes the ready job with the lowest
      ``Priority`` value; within one priority, jobs run in the order they were put.
    * **Per-key ordering.** Jobs sharing a non-None ``key`` run one at a time, in
      put order, even across priorities: a later job of a key never overtakes an
      earlier one, also while that earlier one waits for a retry.  Jobs of other
      keys (and keyless jobs) proceed in parallel on the other workers.
    * **Retries.** A handler that raises is retried after a delay drawn uniformly
      from ``[0, min(max_delay, base_delay * 2**n)]`` (full jitter), ``n`` being the
      number of failures so far minus one.  After ``max_attempts`` attempts (the
      kind's own value if it registered one) the job goes to
      ``on_dead_letter(job, exc)`` and is counted dead; ``PermanentError`` goes
      there at once.  Errors from handlers and hooks are logged on
      ``"zapline.jobs"`` and never end a worker; cancellation always propagates.
    * **Bounded.** At most ``max_size`` jobs are queued (waiting to run, not
      running nor waiting for a retry); ``put`` waits for room, ``put_nowait``
      raises ``QueueFull``.  A retried job re-enters even when the queue is full,
      because it was accepted already.
    * **Drain.** ``drain()`` closes intake (``QueueClosed``) and waits until every
      queued, running and retrying job has finished; then ``run()`` returns.
    * **Cancellation.** Cancelling ``run()`` puts running and retrying jobs back
      in the queue uncounted, so a later ``run()`` resumes them.
    * ``on_done(job, seconds)`` is called after each successful job with the
      handler's run time.
    """

    def __init__(
        self,
        *,
        max_size: int = 10_000,
        workers: int = 4,
        max_attempts: int = 5,
        base_delay: float = 0.2,
        max_delay: float = 30.0,
        on_dead_letter: Callable[[Job, BaseException], Awaitable[None]] | None = None,
        on_done: Callable[[Job, float], None] | None = None,
        is_transient: Callable[[BaseException], bool] | None = None,
        outage_timeout: float = 3600.0,
        outage_max_delay: float = 2.0,
    ) -> None:
        """Create an empty, open queue; raises ``ValueError`` on a non-positive size or count.

        ``is_transient(exc)`` tells an outage (retry without spending attempts, for up to
        ``outage_timeout`` seconds, at most ``outage_max_delay`` apart) from a job failure.
        """
        if max_size < 1 or workers < 1 or max_attempts < 1:
            raise ValueError("max_size, workers and max_attempts must each be at least 1")
        self._max_size = max_size
        self._workers = workers
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._on_dead_letter = on_dead_letter
        self._on_done = on_done
        self._is_transient = is_transient
        self._outage_timeout = outage_timeout
        self._outage_max_delay = outage_max_delay
        self._waiting_outage = 0
        self._kinds: dict[str, _Kind] = {}
        self._ids = itertools.count(1)
        self._ready: list[tuple[int, int, Job]] = []
        # A key is present while one of its jobs is ready, running or retrying;
        # the deque holds that key's later jobs in put order.
        self._held: dict[str, deque[Job]] = {}
        self._depth = {p: 0 for p in Priority}
        self._queued = 0
        self._running = 0
        self._waiting_retry = 0
        self._done = 0
        self._retried = 0
        self._dead = 0
        self._idle_workers = _Waiters()
        self._blocked_putters = _Waiters()
        self._closed = False
        self._drained = anyio.Event()
        self._task_group: anyio.abc.TaskGroup | None = None

    def register(self, kind: str, handler: Handler, *, max_attempts: int | None = None) -> None:
        """Route jobs of ``kind`` to ``handler``; returns None, replaces an earlier registration.

        Raises ``ValueError`` if ``max_attempts`` is given and below 1.
        """
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._kinds[kind] = _Kind(handler, max_attempts or self._max_attempts)

    async def put(
        self,
        kind: str,
        payload: Any,
        *,
        key: str | None = None,
        priority: Priority = Priority.MESSAGE,
    ) -> Job:
        """Queue a job, waiting while the queue is full; returns the queued ``Job``.

        Raises ``QueueClosed`` if the queue is draining (also while waiting) and
        ``ValueError`` for a kind nobody registered.
        """
        while True:
            self._check_can_put(kind)
            if self._queued < self._max_size:
                return self._enqueue(kind, payload, key, priority)
            await self._blocked_putters.wait()

    def put_nowait(
        self,
        kind: str,
        payload: Any,
        *,
        key: str | None = None,
        priority: Priority = Priority.MESSAGE,
    ) -> Job:
        """Queue a job without waiting; returns the queued ``Job``.

        Raises ``QueueFull`` when ``max_size`` jobs are queued, ``QueueClosed`` if
        the queue is draining and ``ValueError`` for a kind nobody registered.
        """
        self._check_can_put(kind)
        if self._queued >= self._max_size:
            raise QueueFull(f"job queue is full ({self._max_size} queued); use put() to wait")
        return self._enqueue(kind, payload, key, priority)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve jobs with the configured workers; returns once ``drain()`` has completed.

        Signals ``task_status.started()`` when the workers are up.  Runs until
        cancelled otherwise.  Raises ``RuntimeError`` if this queue is already running.
        """
        if self._task_group is not None:
            raise RuntimeError("this PriorityJobQueue is already running")
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                for n in range(self._workers):
                    tg.start_soon(self._worker, name=f"zapline.jobs worker {n}")
                task_status.started()
                await self._drained.wait()
                tg.cancel_scope.cancel()
        finally:
            self._task_group = None

    async def drain(self, timeout: float) -> bool:  # noqa: ASYNC109 (shutdown budget is the API)
        """Close intake and wait for all accepted work to finish.

        Returns True if everything finished within ``timeout`` seconds (``run()``
        then returns), False otherwise; the queue stays closed either way.
        """
        self._closed = True
        self._blocked_putters.wake_all()
        self._check_drained()
        with anyio.move_on_after(timeout):
            await self._drained.wait()
        return self._drained.is_set()

    def holds(self, key: str) -> bool:
        """True while a job with ``key`` is queued, running or waiting for a retry."""
        return key in self._held

    def statistics(self) -> QueueStatistics:
        """Return a snapshot of depths and counters."""
        return QueueStatistics(
            depth={p.name: n for p, n in self._depth.items()},
            running=self._running,
            waiting_retry=self._waiting_retry,
            waiting_outage=self._waiting_outage,
            done=self._done,
            retried=self._retried,
            dead=self._dead,
            max_size=self._max_size,
        )

    def qsize(self) -> int:
        """Return how many jobs are queued (neither running nor waiting for a retry)."""
        return self._queued

    # -- state transitions -------------------------------------------------

    def _check_can_put(self, kind: str) -> None:
        if self._closed:
            raise QueueClosed("job queue is draining and accepts no new jobs")
        if kind not in self._kinds:
            raise ValueError(f"no handler for job kind {kind!r}; call register() first")

    def _enqueue(self, kind: str, payload: Any, key: str | None, priority: Priority) -> Job:
        job = Job(kind, payload, key, Priority(priority), 0, next(self._ids), anyio.current_time())
        self._queued += 1
        self._depth[job.priority] += 1
        if key is not None:
            held = self._held.get(key)
            if held is not None:
                held.append(job)
                return job
            self._held[key] = deque()
        self._make_ready(job)
        return job

    def _make_ready(self, job: Job) -> None:
        heapq.heappush(self._ready, (job.priority, job.id, job))
        self._idle_workers.wake_one()

    def _take(self) -> Job:
        job = heapq.heappop(self._ready)[2]
        self._queued -= 1
        self._depth[job.priority] -= 1
        self._running += 1
        self._blocked_putters.wake_one()
        return job

    def _requeue(self, job: Job) -> None:
        self._queued += 1
        self._depth[job.priority] += 1
        self._make_ready(job)

    def _finish(self, job: Job) -> None:
        """The job is done or dead: release its key to the next held job."""
        if job.key is not None:
            held = self._held[job.key]
            if held:
                self._make_ready(held.popleft())
            else:
                del self._held[job.key]
        self._check_drained()

    def _check_drained(self) -> None:
        if self._closed and not (self._queued or self._running or self._waiting_retry):
            self._drained.set()

    # -- workers -------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            while not self._ready:
                await self._idle_workers.wait()
            job = self._take()
            try:
                await self._execute(job)
            finally:
                self._running -= 1
                self._check_drained()

    async def _execute(self, job: Job) -> None:
        kind = self._kinds[job.kind]
        job.attempts += 1
        # A duration only, so the plain clock: anyio.current_time() looks up the backend first.
        started = time.perf_counter()
        try:
            await kind.handler(job.payload)
        except Exception as exc:
            if self._outage_retry(job, exc):
                return
            if isinstance(exc, PermanentError) or job.attempts >= kind.max_attempts:
                await self._bury(job, exc)
            else:
                self._schedule_retry(job, exc)
            return
        except BaseException:
            # Cancelled mid-attempt: the job did not finish, so it is owed a rerun.
            job.attempts -= 1
            self._requeue(job)
            raise
        self._done += 1
        job.outage_since, job.outage_retries = None, 0
        try:
            if self._on_done is not None:
                self._on_done(job, time.perf_counter() - started)
        except Exception:
            logger.exception("on_done hook failed for job %s (%s)", job.id, job.kind)
        finally:
            self._finish(job)

    def _schedule_retry(self, job: Job, exc: Exception) -> None:
        ceiling = min(self._max_delay, self._base_delay * 2 ** (job.attempts - 1))
        delay = random.uniform(0.0, ceiling)
        logger.warning(
            "job %s (%s) failed on attempt %d (%s); retrying in %.3fs",
            job.id,
            job.kind,
            job.attempts,
            exc,
            delay,
            exc_info=_trace(exc),
        )
        self._retried += 1
        self._waiting_retry += 1
        assert self._task_group is not None  # workers only exist inside run()
        self._task_group.start_soon(self._retry_later, job, delay)

    async def _retry_later(self, job: Job, delay: float, *, outage: bool = False) -> None:
        try:
            await anyio.sleep(delay)
        finally:
            # Also on cancellation: the job goes back to the queue, not into limbo.
            self._waiting_retry -= 1
            if outage:
                self._waiting_outage -= 1
            self._requeue(job)

    def _outage_retry(self, job: Job, exc: Exception) -> bool:
        """Schedule a retry that spends no attempt if ``exc`` is an outage; return whether."""
        if isinstance(exc, PermanentError) or self._is_transient is None:
            return False
        if not self._is_transient(exc):
            return False
        now = time.monotonic()
        if job.outage_since is None:
            job.outage_since = now
            # One line per job and outage, without a traceback: an outage is expected weather.
            logger.warning("job %s (%s) waits for storage to return: %s", job.id, job.kind, exc)
        elif now - job.outage_since >= self._outage_timeout:
            return False  # outlasted its budget: attempts count again
        job.attempts -= 1
        job.outage_retries += 1
        ceiling = min(self._outage_max_delay, self._base_delay * 2 ** min(job.outage_retries, 16))
        delay = random.uniform(ceiling / 2, ceiling)
        self._retried += 1
        self._waiting_retry += 1
        self._waiting_outage += 1
        assert self._task_group is not None  # workers only exist inside run()
        self._task_group.start_soon(partial(self._retry_later, job, delay, outage=True))
        return True

    async def _bury(self, job: Job, exc: BaseException) -> None:
        self._dead += 1
        logger.error(
            "job %s (%s) is dead after %d attempt(s): %s",
            job.id,
            job.kind,
            job.attempts,
            exc,
            exc_info=_trace(exc),
        )
        try:
            if self._on_dead_letter is not None:
                await self._on_dead_letter(job, exc)
        except Exception:
            logger.exception("on_dead_letter hook failed for job %s (%s)", job.id, job.kind)
        finally:
            self._finish(job)
