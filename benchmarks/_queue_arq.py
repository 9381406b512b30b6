"""arq's side of the queue benchmark: `ArqRedis.enqueue_job` and `arq.worker.Worker`.

arq pins redis<6, so this module runs in a venv of its own (see benchmarks/task_queue.py).
arq has no bulk enqueue, so its batch is that many concurrent `enqueue_job` calls. Its
worker polls the queue every `poll_delay` (0.5 s by default) for up to
`queue_read_limit` jobs (by default 5 x `max_jobs`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker

from _queue_common import completions

FUNCTION = "noop"


async def noop(ctx: dict[str, Any]) -> None:
    """The benchmark's job: count itself and return."""
    completions.bump()


class ArqProducer:
    """Enqueues arq jobs by function name on one queue."""

    def __init__(self, redis: ArqRedis, name: str) -> None:
        self._redis = redis
        self._name = name

    async def enqueue(self) -> object:
        """Enqueue one job."""
        job: object = await self._redis.enqueue_job(FUNCTION, _queue_name=self._name)
        return job

    async def enqueue_batch(self, size: int) -> object:
        """Enqueue `size` jobs concurrently."""
        return await asyncio.gather(*(self.enqueue() for _ in range(size)))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


class ArqAdapter:
    """arq with its defaults; `poll_delay=None` keeps arq's own (0.5 s)."""

    def __init__(self, poll_delay: float | None) -> None:
        self._poll_delay = poll_delay

    async def producer(self, url: str, name: str) -> ArqProducer:
        """Connect a producer to queue `name`."""
        redis = await create_pool(RedisSettings.from_dsn(url), default_queue_name=name)
        return ArqProducer(redis, name)

    async def work(self, url: str, name: str, concurrency: int) -> None:
        """Run a worker as `arq.worker.run_worker` does (minus its logging), until SIGTERM."""
        options: dict[str, Any] = (
            {} if self._poll_delay is None else {"poll_delay": self._poll_delay}
        )
        worker = Worker(
            functions=[noop],
            queue_name=name,
            redis_settings=RedisSettings.from_dsn(url),
            max_jobs=concurrency,
            **options,
        )
        try:
            # arq's SIGTERM handler cancels its main task, which ends async_run().
            with contextlib.suppress(asyncio.CancelledError):
                await worker.async_run()
        finally:
            await worker.close()
