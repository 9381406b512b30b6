"""Job arguments and results keep their type: the worker gets what the task's annotations say."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from datetime import UTC, datetime, timedelta

from scalepy.queue import Queue, Worker

REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# A fresh queue name per run, so repeated runs of this example never meet.
queue = Queue(REDIS_URL, name=f"example-typed-{uuid.uuid4().hex[:8]}")


@dataclasses.dataclass(frozen=True)
class Reminder:
    """What to remind whom of."""

    todo_id: uuid.UUID
    due: datetime


@queue.task(retries=3)
async def schedule_reminder(reminder: Reminder, early: timedelta) -> datetime:
    """Runs on a worker with a `Reminder` (not a dict) and a `timedelta`; returns a datetime."""
    assert isinstance(reminder, Reminder)
    return reminder.due - early


async def main() -> None:
    """Enqueue a typed job, run it on a worker, get a typed result back."""
    due = datetime(2026, 12, 24, 9, 0, tzinfo=UTC)
    async with queue, Worker(queue):
        job = await schedule_reminder.enqueue(Reminder(uuid.uuid4(), due), timedelta(hours=1))
        at = await job.result(timeout=10)
        assert at == datetime(2026, 12, 24, 8, 0, tzinfo=UTC)
        assert isinstance(at, datetime)


if __name__ == "__main__":
    asyncio.run(main())
