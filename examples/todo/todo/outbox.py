"""The transactional outbox: a todo's notification is never lost, even while Redis is down.

`POST /todos` writes the todo and a row of `notification_outbox` in one statement
(`TodoRepository.create`): both commit, or neither. It does not talk to Redis. The
`NotificationRelay`, running in the worker process (`todo/worker.py`), moves the rows
to the queue:

1. in a transaction, it locks up to `batch_size` of the oldest rows due (never
   relayed, or relayed over `redeliver_after` seconds ago) with
   `SELECT ... FOR UPDATE SKIP LOCKED` (several workers each take other rows);
2. it enqueues one `notify_created` job per row, with the job id `todo-notification-<row id>`;
3. it sets `relayed_at` on the rows whose enqueue succeeded, and commits.

The job deletes the row in the transaction that records the notification
(`todo/tasks.py`). While Redis (or PostgreSQL) is down, step 2 (or 1) fails: the rows
stay, and the relay tries again with a backoff doubling up to `max_backoff`, logging
once per outage. A row still there `redeliver_after` seconds after it was relayed may
have lost its job (a Redis that restarted without its data), so it is enqueued again;
its job, if dead-lettered meanwhile (it failed every attempt), is re-driven. A row
relayed `max_relays` times is parked: a job that failed that often will not succeed by
being driven again (a bug, a todo its task cannot handle). It stays in the outbox, with
one ERROR naming it; an operator fixes the cause, then sets its `relays` back to 0.

The job id is the idempotency key. Enqueueing a row again, after a relay died before
committing or once `redeliver_after` passed, makes no second job while the first is
queued, running or kept: the queue hands that one back. Should the first have run
and expired, the task records its notification under the job id with
`ON CONFLICT DO NOTHING`. Delivery is at least once; the notification, exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from typing import TYPE_CHECKING, Self

from todo.outage import OutageLog
from todo.repository import UNAVAILABLE

if TYPE_CHECKING:
    from collections.abc import Sequence

    import asyncpg

    from scalepy.pools import PostgresCluster
    from scalepy.queue import Task
    from scalepy.telemetry import ContextPropagation

__all__ = ("NotificationRelay", "notification_job_id")

_logger = logging.getLogger("todo.outbox")

_CLAIM = """SELECT id, todo_id, trace FROM notification_outbox
            WHERE (relayed_at IS NULL OR relayed_at < now() - make_interval(secs => $2))
              AND relays < $3
            ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"""
_RELAYED = """UPDATE notification_outbox SET relayed_at = now(), relays = relays + 1
              WHERE id = ANY($1::bigint[]) RETURNING id, todo_id, relays"""


def notification_job_id(row_id: int) -> str:
    """The id of the job that notifies the outbox row `row_id`: its idempotency key."""
    return f"todo-notification-{row_id}"


class NotificationRelay:
    """Enqueues the outbox's notifications; `open()` (or `async with`) starts, `aclose()` stops.

    Args:
        postgres: The pools' PostgreSQL cluster (the outbox is on the primary).
        task: The task whose jobs notify (`Tasks.notify_created`).
        propagation: Makes each row's trace context current while its job is enqueued,
            so the job continues the request's trace; `None` to drop it.
        batch_size: Rows moved per transaction.
        poll_interval: Seconds between two looks at an outbox with nothing due.
        redeliver_after: Seconds after which a relayed row still in the outbox (its
            job has not recorded the notification) is enqueued again.
        max_backoff: Most seconds between two tries while Redis or PostgreSQL is down.
        max_relays: Times a row is enqueued before it is parked (logged, left in place).
    """

    def __init__(
        self,
        postgres: PostgresCluster,
        task: Task[[int], bool],
        *,
        propagation: ContextPropagation | None = None,
        batch_size: int = 100,
        poll_interval: float = 0.2,
        redeliver_after: float = 15.0,
        max_backoff: float = 5.0,
        max_relays: int = 20,
    ) -> None:
        self._postgres = postgres
        self._task = task
        self._propagation = propagation
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._redeliver_after = redeliver_after
        self._max_backoff = max_backoff
        self._max_relays = max_relays
        self._outage = OutageLog(_logger, "relaying notifications from the outbox")
        self._running: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Start relaying in a background task."""
        if self._running is None:
            self._running = asyncio.get_running_loop().create_task(self._relay())

    async def aclose(self) -> None:
        """Stop relaying; the rows not enqueued yet wait in the outbox for the next relay."""
        running, self._running = self._running, None
        if running is not None:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --8<-- [start:relay]
    async def relay_once(self) -> int:
        """Enqueue one batch of the rows due; how many were enqueued.

        Raises:
            Exception: What made an enqueue, or PostgreSQL, fail (the rows whose
                enqueue succeeded are marked relayed all the same).
        """
        async with self._postgres.acquire() as connection, connection.transaction():
            rows = await connection.fetch(
                _CLAIM, self._batch_size, self._redeliver_after, self._max_relays
            )
            if not rows:
                return 0
            outcomes = await asyncio.gather(
                *(self._enqueue(row) for row in rows), return_exceptions=True
            )
            sent = [
                row["id"] for row, outcome in zip(rows, outcomes, strict=True) if outcome is None
            ]
            if sent:
                self._log_parked(await connection.fetch(_RELAYED, sent))
        _raise_first(outcomes)
        return len(sent)

    # --8<-- [end:relay]

    def _log_parked(self, relayed: Sequence[asyncpg.Record]) -> None:
        """One ERROR per row relayed for the last time: it will not be driven again."""
        for row in relayed:
            if row["relays"] >= self._max_relays:
                _logger.error(
                    "the notification of todo %d (outbox row %d) was relayed %d times and "
                    "never recorded: parked; fix its task, then set its relays to 0",
                    row["todo_id"],
                    row["id"],
                    row["relays"],
                )

    async def _enqueue(self, row: asyncpg.Record) -> None:
        trace = row["trace"]
        scope = (
            self._propagation.attached_context(json.loads(trace))
            if trace and self._propagation is not None
            else contextlib.nullcontext()
        )
        with scope:
            job = await self._task.options(job_id=notification_job_id(row["id"])).enqueue(
                row["todo_id"]
            )
        if not job.created:
            # Relayed before, and not notified yet: a job that ran out of retries (e.g.
            # PostgreSQL was down for each attempt) is re-driven; a live one is left be.
            await self._task.queue.requeue([job.id])

    async def _relay(self) -> None:
        failures = 0
        while True:
            try:
                moved = await self.relay_once()
            except Exception as exc:  # the relay must outlive any failure: the rows wait
                failures += 1
                if isinstance(exc, UNAVAILABLE):
                    self._outage.failed(exc, "the notifications wait in the outbox")
                else:
                    _logger.exception("relaying notifications failed; trying again")
                # Jittered: the workers of a fleet do not all try again at once.
                bound = min(self._poll_interval * 2**failures, self._max_backoff)
                await asyncio.sleep(random.uniform(bound / 2, bound))
                continue
            failures = 0
            self._outage.succeeded()
            if moved < self._batch_size:
                await asyncio.sleep(self._poll_interval)


def _raise_first(outcomes: Sequence[BaseException | None]) -> None:
    """Raise the first exception among the enqueues' outcomes, if any."""
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
