"""scalepy's side of the queue benchmark: `Queue`, a task's `enqueue`/`enqueue_many`, `Worker`.

Everything at its defaults (leases, heartbeats and fencing on), the worker at the given
concurrency.
"""

from __future__ import annotations

from _queue_common import completions
from scalepy.queue import Queue, Worker


async def noop() -> None:
    """The benchmark's job: count itself and return."""
    completions.bump()


class ScalepyProducer:
    """Enqueues no-op jobs through a scalepy task."""

    def __init__(self, url: str, name: str) -> None:
        self._queue = Queue(url, name=name)
        self._noop = self._queue.task()(noop)

    async def enqueue(self) -> object:
        """Enqueue one job."""
        return await self._noop.enqueue()

    async def enqueue_batch(self, size: int) -> object:
        """Enqueue `size` jobs with one `enqueue_many`."""
        return await self._noop.enqueue_many([()] * size)

    async def aclose(self) -> None:
        """Close the queue."""
        await self._queue.aclose()


class ScalepyAdapter:
    """scalepy with its defaults."""

    async def producer(self, url: str, name: str) -> ScalepyProducer:
        """Return a producer for queue `name`."""
        return ScalepyProducer(url, name)

    async def work(self, url: str, name: str, concurrency: int) -> None:
        """Run a worker until SIGTERM (its own handler) or cancellation."""
        queue = Queue(url, name=name)
        queue.task()(noop)
        try:
            await Worker(queue, concurrency=concurrency).run()
        finally:
            await queue.aclose()
