"""`Worker`: claims jobs under leases and runs them until stopped, then hands back the rest.

One fetch loop claims up to the free slots in one script call (which also
promotes due jobs and reaps the expired leases of dead workers) and gives the
jobs to the `Runner` (`_runner.py`), which runs and settles them. A heartbeat
renews the leases (`_heartbeat.py`), and cron schedules fire from the same
workers (`_periodic.py`). Idle, the loop waits for the store to say jobs are
ready (Redis: a message on the wake-up channel), so a new job starts at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from scalepy._lifecycle import AsyncResource
from scalepy._validation import check_finite, check_int, check_object
from scalepy.errors import BackendError
from scalepy.queue._heartbeat import Heartbeat
from scalepy.queue._metrics import SENT
from scalepy.queue._periodic import run_schedule
from scalepy.queue._runner import Runner
from scalepy.queue._unknown import UnknownTasks

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

    from scalepy.queue._queue import Queue
    from scalepy.queue._runner import WorkerStatistics
    from scalepy.telemetry import Instrumentation

__all__ = ("Worker",)

_logger = logging.getLogger("scalepy.queue")


class Worker(AsyncResource):
    """Runs a queue's jobs: up to `concurrency` at once, each under a renewed lease.

    A job's lease lasts `lease` seconds and a heartbeat renews it every
    `lease / 3` seconds; with Redis from a thread, even while a job blocks the
    event loop (a `memory://` queue renews, and reaps, on the loop). A worker
    that dies stops renewing: its jobs are re-queued by another worker once their
    lease expires, the attempt counted against the job's retries. Each claim
    gets a new token, and an outcome is recorded only under the current one,
    so a worker that lost a lease (paused, partitioned) cannot overwrite the
    outcome of the job's new attempt; its running task is cancelled when the
    heartbeat learns of the loss.

    `stop()` (or SIGTERM, with `scalepy worker`) stops claiming, lets running
    jobs finish for up to `grace` seconds, then cancels the rest and hands them
    back to the front of the queue at once, without counting the attempt.
    `run()` runs in the foreground until then; `async with worker:` (or
    `await worker.open()`) runs it in a background task, and `aclose()` stops it.

    `startup` runs once before the first claim and `shutdown` once after the
    last job settled, around each `run()`: the place to open what tasks share
    (a `PoolManager`). What `startup` returns is the worker's state, which tasks
    read with `worker_state()` and `shutdown` receives.

    A job of a task the worker's queue does not have (a rolling deploy: the
    producers run newer code than this worker) is not run nor counted as an
    attempt: it is put back, due again `unknown_task_delay` seconds later, for a
    worker that has the task; put back more than `unknown_task_limit` times, it
    is dead-lettered with the reason.

    Args:
        queue: The queue whose jobs to run; its registered tasks are what runs.
        concurrency: Jobs running at once, at most.
        lease: Seconds a claim lasts without renewal, > 0.1.
        grace: Seconds `stop()` lets running jobs finish before handing them back.
        poll_interval: Most seconds an idle worker waits before checking the queue
            again (it wakes at once when a job is enqueued).
        stats_interval: Seconds between two `scalepy.queue.job.count` readings, or
            `None` for none.
        name: The worker's name, kept on the jobs it claims (`JobInfo.worker`);
            `host:pid` by default.
        instrumentation: Where spans and metrics go; the queue's if `None`.
        unknown_task_delay: Seconds until a job of a task this worker does not
            have is due again after the worker put it back.
        unknown_task_limit: Put-backs of such a job (by any worker) before it is
            dead-lettered; with the delay, how long a rolling deploy may take.
        startup: Awaited before the first claim; its result is the state tasks read
            with `worker_state()`. If it raises, `run()` raises before claiming.
        shutdown: Awaited with that state once the worker stopped and its jobs
            settled (or were handed back), even if a job or the fetch loop failed.

    Raises:
        ConfigurationError: An option out of range, or `queue` is not a `Queue`.

    Example:
        ```python
        worker = Worker(queue, concurrency=32)
        await worker.run()  # until worker.stop()
        ```
    """

    def __init__(
        self,
        queue: Queue,
        *,
        concurrency: int = 10,
        lease: float = 30.0,
        grace: float = 0.0,
        poll_interval: float = 1.0,
        stats_interval: float | None = 10.0,
        name: str | None = None,
        instrumentation: Instrumentation | None = None,
        unknown_task_delay: float = 10.0,
        unknown_task_limit: int = 60,
        startup: Callable[[], Awaitable[object]] | None = None,
        shutdown: Callable[[Any], Awaitable[object]] | None = None,
    ) -> None:
        check_object("Worker() takes", queue, "task", "a Queue", "e.g. Worker(Queue(url))")
        check_int("concurrency", concurrency)
        check_finite("unknown_task_delay", unknown_task_delay, inclusive=True)
        check_int("unknown_task_limit", unknown_task_limit, minimum=0)
        check_finite("lease", lease, minimum=0.1)
        check_finite("grace", grace, inclusive=True)
        check_finite("poll_interval", poll_interval)
        if stats_interval is not None:
            check_finite("stats_interval", stats_interval)
        self.queue = queue
        self.concurrency = concurrency
        self.lease = lease
        self.grace = grace
        self.poll_interval = poll_interval
        self.stats_interval = stats_interval
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._store = queue._store
        self._lease_ms = round(lease * 1000)
        self._cap = queue.max_running or 0
        instrumentation = instrumentation or queue._instrumentation
        self._sent = instrumentation.metric(SENT)
        self._slot_freed = asyncio.Event()
        unknown = UnknownTasks(queue.name, delay=unknown_task_delay, limit=unknown_task_limit)
        self._runner = Runner(
            queue,
            instrumentation=instrumentation,
            lease=lease,
            on_slot_freed=self._slot_freed.set,
            unknown=unknown,
        )
        self._idle_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._active = False
        self._done = asyncio.Event()
        self._background: asyncio.Task[None] | None = None
        self._startup, self._shutdown = startup, shutdown
        self._claiming = asyncio.Event()

    async def run(self) -> None:
        """Run jobs until `stop()` is called (or this task is cancelled), then shut down.

        Raises:
            RuntimeError: The worker is running already.
        """
        if self._active:
            raise RuntimeError(f"{self!r} is running already")
        self._active, self._stopping = True, False
        self._done.clear()
        try:
            state = None if self._startup is None else await self._startup()
        except BaseException:
            self._active = False
            self._done.set()
            raise
        if self._startup is not None:
            self._runner.state = state
        try:
            await self._claim()
        finally:
            try:
                if self._shutdown is not None:
                    await self._shutdown(state)
            finally:
                self._active = False
                self._claiming.clear()
                self._done.set()

    async def _claim(self) -> None:
        loop = asyncio.get_running_loop()
        heartbeat = Heartbeat(
            self._store,
            self._runner.held,
            connector=self.queue._abilities.connector,
            lease_ms=self._lease_ms,
            interval=self.lease / 3,
            report=self._runner.on_heartbeat,
            loop=loop,
        )
        heartbeat.start()
        if self.queue._limit_backend is not None:  # the queue has a rate_limit
            from scalepy.ratelimit import RateLimiter

            limiter = RateLimiter(self.queue._limit_backend, namespace=f"queue:{self.queue.name}")
            self._runner.limiter = limiter
        chores = [
            loop.create_task(
                run_schedule(
                    self._store,
                    periodic,
                    # Sent as the task's job, like any enqueue: processed counts match.
                    on_fired=functools.partial(self._sent.record, 1, periodic.task._labels),
                )
            )
            for periodic in self.queue.periodic.values()
        ]
        if self.stats_interval is not None:
            chores.append(loop.create_task(self._record_depth(self.stats_interval)))
        self._claiming.set()
        try:
            await self._fetch()
        finally:
            for chore in chores:
                chore.cancel()
            await asyncio.gather(*chores, return_exceptions=True)
            await self._runner.shut_down(self.grace)
            await heartbeat.stop()
            if self._runner.limiter is not None:
                await self._runner.limiter.aclose()
                self._runner.limiter = None

    async def stop(self) -> None:
        """Stop claiming, hand unfinished jobs back (after `grace`), and wait for `run()`."""
        if not self._active:
            return
        self._stopping = True
        self._slot_freed.set()
        if self._idle_task is not None:
            self._idle_task.cancel()
        await self._done.wait()

    async def _open(self) -> None:
        """Start `run()` in a background task; return once it claims (`startup` done).

        Raises:
            Exception: What `startup` raised.
        """
        background = asyncio.get_running_loop().create_task(self.run())
        self._background = background
        claiming = asyncio.ensure_future(self._claiming.wait())
        try:
            await asyncio.wait((background, claiming), return_when=asyncio.FIRST_COMPLETED)
        finally:
            claiming.cancel()
        if background.done():
            self._background = None
            background.result()  # raises what startup raised

    async def _aclose(self) -> None:
        """Stop the worker (see `stop()`) and wait for the task `open()` started."""
        await self.stop()
        background, self._background = self._background, None
        if background is not None:
            await background

    def statistics(self) -> WorkerStatistics:
        """Return a snapshot of the worker's counters."""
        return self._runner.statistics()

    def __repr__(self) -> str:
        state = "stopping" if self._stopping else "running" if self._active else "idle"
        stats = self._runner.statistics()
        return (
            f"<Worker queue={self.queue.name!r} {state} running={stats.running}"
            f"/{self.concurrency} completed={stats.completed}>"
        )

    # -- claiming -----------------------------------------------------------------

    async def _fetch(self) -> None:
        failures = 0
        while not self._stopping:
            free = self.concurrency - len(self._runner.running)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                # One more tick: the outcomes of the jobs that just ended go out
                # first, so they and this claim share one round trip.
                await asyncio.sleep(0)
                continue
            if not self._runner.acks.sent:
                # Outcomes before claims: a claim reaps the leases that ran out (all
                # of them, after an outage longer than the lease), and an outcome
                # that reached Redis after it would be refused and its job run again.
                await self._idle(self._runner.acks.wait_sent())
                continue
            try:
                nearest, claimed = await self._store.claim(
                    free,
                    lease_ms=self._lease_ms,
                    cap=self._cap,
                    result_ttl_ms=self.queue._result_ttl_ms,
                    dead_ttl_ms=self.queue._dead_ttl_ms,
                    worker=self.name,
                )
            except BackendError as exc:
                failures += 1
                _logger.warning("could not claim jobs from %r: %s", self.queue.name, exc)
                await self._idle(asyncio.sleep(min(0.1 * 2**failures, 5.0)))
                continue
            failures = 0
            for job in claimed:
                self._runner.start(job)
            if len(claimed) < free and not self._stopping:
                timeout = self.poll_interval if nearest < 0 else nearest / 1000
                await self._idle(self._wait_for_jobs(min(self.poll_interval, timeout)))

    async def _idle(self, waiting: Coroutine[Any, Any, None]) -> None:
        """Wait for `waiting` to end, or less on stop."""
        self._idle_task = asyncio.get_running_loop().create_task(waiting)
        try:
            await asyncio.wait((self._idle_task,))
        finally:
            self._idle_task.cancel()
            self._idle_task = None

    async def _wait_for_jobs(self, seconds: float) -> None:
        """Wait up to `seconds`, less when a job is enqueued."""
        if seconds < 0.01:
            await asyncio.sleep(seconds)
            return
        await self.queue._abilities.wait_for_jobs(seconds)

    # -- lifecycle ------------------------------------------------------------------

    async def _record_depth(self, interval: float) -> None:
        while True:
            try:
                await self.queue.stats()
            except BackendError as exc:
                _logger.debug("could not read the depth of %r: %s", self.queue.name, exc)
            await asyncio.sleep(interval)
