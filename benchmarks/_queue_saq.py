"""saq's side of the queue benchmark: its Redis queue, `Worker(concurrency=...)` as its CLI runs it.

saq has no bulk enqueue (`Queue.map` enqueues one job per call and waits for the
results), so its batch is that many concurrent `enqueue` calls inside `Queue.batch()`,
which is how its docs enqueue a group of jobs. It runs in a venv of its own, on the
redis-py its `redis` extra allows (<8; see benchmarks/task_queue.py).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from saq import Queue, Worker

from _queue_common import completions

if TYPE_CHECKING:
    from saq.types import Context

FUNCTION = "noop"


async def noop(ctx: Context) -> None:
    """The benchmark's job: count itself and return."""
    completions.bump()


class SaqProducer:
    """Enqueues saq jobs by function name."""

    def __init__(self, queue: Queue) -> None:
        self._queue = queue

    async def enqueue(self) -> object:
        """Enqueue one job."""
        return await self._queue.enqueue(FUNCTION)

    async def enqueue_batch(self, size: int) -> object:
        """Enqueue `size` jobs concurrently inside `Queue.batch()`."""
        async with self._queue.batch():
            return await asyncio.gather(*(self._queue.enqueue(FUNCTION) for _ in range(size)))

    async def aclose(self) -> None:
        """Close the queue's connections."""
        await self._queue.disconnect()


class SaqAdapter:
    """saq with its defaults, the worker at the given concurrency."""

    async def producer(self, url: str, name: str) -> SaqProducer:
        """Connect a producer to queue `name`."""
        queue = Queue.from_url(url, name=name)
        await queue.connect()
        return SaqProducer(queue)

    async def work(self, url: str, name: str, concurrency: int) -> None:
        """Run a worker as `saq.worker.start` does, until SIGTERM."""
        queue = Queue.from_url(url, name=name)
        worker: Worker[Context] = Worker(queue, functions=[noop], concurrency=concurrency)
        try:
            await queue.connect()
            await worker.start()
        finally:
            await queue.disconnect()
