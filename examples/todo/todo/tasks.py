"""Background work: the notification job sent when a todo is created.

The task functions are plain `async def`s; `register()` puts them on a queue and
returns typed handles (`Tasks`), so the app registers them on a queue built on its
shared Redis client (`services.py`) and the worker process on its own (`worker.py`).
A task reads what it needs through the pools its worker opened at startup
(`worker_state(PoolManager)`), never through a connection of its own, and makes
its side effect idempotent with the job's id: delivery is at least once, so a job
may run again after a worker died, and must not notify twice. The jobs come from the
outbox (`todo/outbox.py`): recording the notification deletes the todo's outbox row,
in the same statement, so the relay stops enqueueing it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from scalepy.pools import PoolManager
from scalepy.queue import Queue, Task, current_job, worker_state

__all__ = ("Tasks", "notify_created", "register")

_logger = logging.getLogger("todo.tasks")


# One statement, so one transaction and one round trip: the outbox row goes, and the
# notification is recorded under the job id (once, whichever attempt gets there first),
# together. The DELETE runs though nothing reads it: WITH runs every data-modifying
# statement to completion.
_NOTIFY = """WITH relayed AS (DELETE FROM notification_outbox WHERE todo_id = $1),
                  todo AS (SELECT title FROM todos WHERE id = $1),
                  recorded AS (
                      INSERT INTO notifications (job_id, todo_id, title)
                      SELECT $2, $1, title FROM todo
                      ON CONFLICT (job_id) DO NOTHING RETURNING true
                  )
             SELECT (SELECT title FROM todo) AS title, EXISTS (SELECT FROM recorded) AS recorded"""


async def notify_created(todo_id: int) -> bool:
    """Tell the world a todo was created (here: record it and log it), once per job.

    Returns:
        Whether this attempt recorded the notification (`False` when the todo was
        deleted meanwhile, or an earlier attempt of the job already recorded it).
    """
    pools = worker_state(PoolManager)
    job = current_job()
    [row] = await pools.postgres.fetch(_NOTIFY, todo_id, job.id)  # no FROM: one row
    title, recorded = row["title"], row["recorded"]
    if title is None:
        _logger.info("todo %d is gone; nothing to notify (job %s)", todo_id, job.id)
        return False
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
