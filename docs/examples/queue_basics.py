"""A queue, a task, a worker: enqueue jobs and wait for their results."""

from __future__ import annotations

import asyncio
import uuid

from scalepy.queue import JobStatus, Queue, Worker, current_job

# A fresh queue name per run, so repeated runs of this example never meet.
queue = Queue("redis://127.0.0.1:6379/0", name=f"example-{uuid.uuid4().hex[:8]}")


@queue.task(retries=3, timeout=10)
async def resize(image: str, width: int = 100) -> dict[str, object]:
    """Pretend to resize an image; the job's id is a natural idempotency key."""
    await asyncio.sleep(0.01)
    return {"image": image, "width": width, "job": current_job().id}


async def main() -> None:
    """Run a worker in this process, enqueue jobs, collect their results."""
    async with queue, Worker(queue, concurrency=8):
        # Arguments are serialized (JSON) at the call: a bad one fails here, not later.
        job = await resize.enqueue("cat.png", width=640)
        result = await job.result(timeout=10)
        assert result == {"image": "cat.png", "width": 640, "job": job.id}
        assert await job.status() is JobStatus.COMPLETED

        # Bulk: one script call per chunk of jobs.
        jobs = await resize.enqueue_many([(f"img-{n}.png",) for n in range(100)])
        results = [await job.result(timeout=10) for job in jobs]
        assert [r["image"] for r in results] == [f"img-{n}.png" for n in range(100)]

        info = await job.info()
        assert (info.attempts, info.task) == (1, resize.name)


if __name__ == "__main__":
    asyncio.run(main())
