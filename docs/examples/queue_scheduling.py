"""Delayed, unique and idempotent jobs, priorities, cancellation and a cron schedule."""

from __future__ import annotations

import asyncio
import uuid

from scalepy.queue import JobCancelled, JobStatus, Queue, Worker

queue = Queue("redis://127.0.0.1:6379/0", name=f"example-{uuid.uuid4().hex[:8]}")
ran: list[str] = []
ticked = asyncio.Event()


@queue.task()
async def notify(message: str) -> None:
    """Record the message."""
    ran.append(message)


@queue.task()
async def heartbeat() -> None:
    """A periodic job."""
    ticked.set()


queue.cron("* * * * * *", heartbeat)  # every second (six fields: seconds first), UTC


async def main() -> None:
    """Enqueue with options before and while a worker runs."""
    async with queue:
        # Unique: while a job holds the key, enqueueing again returns that same job.
        first = await notify.options(key="digest:ada").enqueue("daily digest")
        again = await notify.options(key="digest:ada").enqueue("daily digest")
        assert (first.created, again.created, first == again) == (True, False, True)

        # Idempotent: the caller names the job; enqueueing the same id again (say, a
        # retry after a timeout) returns that job, even once it has ended.
        receipt = await notify.options(job_id="order-42:receipt").enqueue("receipt")
        retried = await notify.options(job_id="order-42:receipt").enqueue("receipt")
        assert (receipt.id, receipt.created, retried.created) == ("order-42:receipt", True, False)

        # Priorities: 0 (the default, lowest) to 9; higher levels are claimed first.
        await notify.options(priority=9).enqueue("urgent")

        # Delayed jobs wait in the scheduled set; a waiting job can be cancelled.
        later = await notify.options(delay=0.2).enqueue("in 200 ms")
        never = await notify.options(delay=60).enqueue("in a minute")
        assert await never.cancel() is JobStatus.CANCELLED
        try:
            await never.result()
        except JobCancelled as cancelled:
            assert cancelled.job_id == never.id

        async with Worker(queue, concurrency=1):
            await later.result(timeout=10)
            await asyncio.wait_for(ticked.wait(), timeout=10)  # the cron job ran
        assert ran == ["urgent", "daily digest", "receipt", "in 200 ms"]

        # Ended jobs expire, but a queue keeps one kind of key for good: each
        # schedule's last fire (so that it fires once). A throwaway queue like this
        # one deletes them when done.
        base = f"scalepy:queue:{{{queue.name}}}"
        schedules = [f"{base}:cron:{name}" for name in queue.periodic]
        await queue.client.execute("DEL", *schedules)


if __name__ == "__main__":
    asyncio.run(main())
