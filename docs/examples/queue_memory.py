"""A queue in one process (`memory://`): no Redis, same semantics, time you can move."""

from __future__ import annotations

import asyncio

from scalepy.queue import JobFailed, JobStatus, Queue, Worker
from scalepy.testing import FakeClock

# The store reads this clock: a test moves time instead of sleeping through delays.
clock = FakeClock()
queue = Queue("memory://", name="thumbnails", clock=clock)
attempts: list[str] = []


@queue.task(retries=2, backoff=lambda retry: 0.0)
async def thumbnail(image: str) -> str:
    """Fail once for a broken image, then succeed (or fail for good)."""
    attempts.append(image)
    if image.startswith("broken") and attempts.count(image) < 2:
        raise OSError(f"cannot read {image}")
    if image == "missing.png":
        raise FileNotFoundError(image)
    return f"thumb-{image}"


async def main() -> None:
    """Enqueue, run a worker in this process, read results, move the clock."""
    async with queue, Worker(queue, concurrency=4):
        job = await thumbnail.enqueue("cat.png")
        assert await job.result(timeout=5) == "thumb-cat.png"

        retried = await thumbnail.enqueue("broken.png")  # fails once, then succeeds
        assert await retried.result(timeout=5) == "thumb-broken.png"
        assert (await retried.info()).attempts == 2

        dead = await thumbnail.enqueue("missing.png")  # 1 attempt + 2 retries, then dead
        try:
            await dead.result(timeout=5)
        except JobFailed as failed:
            assert "FileNotFoundError" in failed.error
        assert [info.id for info in await queue.dead()] == [dead.id]

        # Delayed a day: it waits on the store's clock, which the test moves.
        later = await thumbnail.options(delay=86_400).enqueue("tomorrow.png")
        assert await later.status() is JobStatus.SCHEDULED
        clock.advance(86_400)
        assert await later.result(timeout=5) == "thumb-tomorrow.png"

        # Unique keys and cancellation work as with Redis.
        once = thumbnail.options(key="nightly", delay=60)
        first, second = await once.enqueue("a.png"), await once.enqueue("b.png")
        assert first == second
        assert not second.created
        assert await first.cancel() is JobStatus.CANCELLED


if __name__ == "__main__":
    asyncio.run(main())
