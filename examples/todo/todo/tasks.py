"""Background work: the notification job sent when a todo is created.

The task functions are plain `async def`s; `register()` puts them on a queue and
returns typed handles (`Tasks`), so the app registers them on a queue built on its
shared Redis client (`services.py`) and the worker process on its own (`worker.py`).
A task reads what it needs through the pools its worker opened at startup
(`worker_state(PoolManager)`), never through a connection of its own, and makes
its side effect idempotent with the job's id: delivery is at least once, so a job
may run again after a worker died, and must not notify twice. The jobs come from the
outbox (`todo/outbox.py`): recording the notification deletes the todo's outbox row,
in the same transaction, so the relay stops enqueueing it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from scalepy.pools import PoolManager
from scalepy.queue import Queue, Task, current_job, worker_state

__all__ = ("Tasks", "notify_created", "register")

_logger = logging.getLogger("todo.tasks")


async def notify_created(todo_id: int) -> bool:
    """Tell the world a todo was created (here: record it and log it), once per job.

    Returns:
        Whether this attempt recorded the notification (`False` when the todo was
        deleted meanwhile, or an earlier attempt of the job already recorded it).
    """
    pools = worker_state(PoolManager)
    job = current_job()
    async with pools.postgres.acquire() as connection, connection.transaction():
        await connection.execute("DELETE FROM notification_outbox WHERE todo_id = $1", todo_id)
        title = await connection.fetchval("SELECT title FROM todos WHERE id = $1", todo_id)
        if title is None:
            _logger.info("todo %d is gone; nothing to notify (job %s)", todo_id, job.id)
            return False
        recorded = await connection.fetchval(
            """INSERT INTO notifications (job_id, todo_id, title) VALUES ($1, $2, $3)
               ON CONFLICT (job_id) DO NOTHING RETURNING true""",
            job.id,
            todo_id,
            title,
        )
    if recorded:
        _logger.info("notified: todo %d %r created (job %s)", todo_id, title, job.id)
    return bool(recorded)


@dataclass(frozen=True, slots=True)
class Tasks:
    """The service's tasks, registered on one queue: call `.enqueue(...)` on them."""

    queue: Queue
    """The queue they are registered on."""
    notify_created: Task[[int], bool]
    """`notify_created(todo_id)`, retried up to 5 times."""


def register(queue: Queue) -> Tasks:
    """Register every task on `queue` and return their handles."""
    return Tasks(
        queue=queue,
        notify_created=queue.task(name="todo.notify_created", retries=5, timeout=30.0)(
            notify_created
        ),
    )
