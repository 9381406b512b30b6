"""Retries with backoff, the dead-letter set, re-driving dead jobs and purging them."""

from __future__ import annotations

import asyncio
import uuid

from scalepy.queue import Backoff, JobFailed, JobStatus, Queue, Worker, current_job

# Dead jobs are kept a day (a week by default), then the workers delete them.
queue = Queue(
    "redis://127.0.0.1:6379/0", name=f"example-{uuid.uuid4().hex[:8]}", dead_ttl=24 * 3600
)
payment_service_up = False


@queue.task(retries=4, backoff=Backoff(initial=0.01, maximum=0.1))
async def flaky() -> int:
    """Fail the first two attempts, then succeed."""
    attempt = current_job().attempt
    if attempt < 3:
        raise ConnectionError(f"attempt {attempt}: upstream timed out")
    return attempt


@queue.task(retries=1, backoff=Backoff(initial=0.01))
async def charge(order: int) -> str:
    """Fail for as long as the payment service is down."""
    if not payment_service_up:
        raise RuntimeError("payment service down")
    return f"charged order {order}"


async def main() -> None:
    """Watch a job succeed on its third attempt, another die and come back, a third purged."""
    global payment_service_up  # the example's stand-in for an outage ending
    async with queue, Worker(queue):
        assert await (await flaky.enqueue()).result(timeout=10) == 3

        # Two failed attempts (the first, and its one retry): the job is dead-lettered.
        job = await charge.enqueue(42)
        try:
            await job.result(timeout=10)
        except JobFailed as failed:
            assert failed.error.startswith("RuntimeError: payment service down")
        dead = await queue.dead()
        assert [(d.id, d.status, d.attempts) for d in dead] == [(job.id, JobStatus.DEAD, 2)]

        # The outage is over: re-drive the dead jobs, with their retries restored.
        payment_service_up = True
        assert await queue.requeue() == 1
        assert await job.result(timeout=10) == "charged order 42"

        # A job that should never be retried: delete it for good instead.
        payment_service_up = False
        doomed = await charge.enqueue(43)
        try:
            await doomed.result(timeout=10)
        except JobFailed:
            assert await queue.purge_dead([doomed.id]) == 1
        assert (await queue.stats()).dead == 0


if __name__ == "__main__":
    asyncio.run(main())
