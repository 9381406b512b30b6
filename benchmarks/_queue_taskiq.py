"""taskiq-redis's side of the queue benchmark: its list broker and its stream broker.

The worker is taskiq's programmatic receiver (`taskiq.api.run_receiver_task`, what the
`taskiq worker` command runs in each of its processes) with `max_async_tasks` as the
concurrency and taskiq's default acknowledgement, `WHEN_SAVED`: the stream broker
XACKs a message once its result is saved (no result backend here, so right after the
job); the list broker has no acknowledgement at all, BRPOP removes a message on
delivery. taskiq has no bulk enqueue, so its batch is that many concurrent `kiq()` calls.
The stream broker's consumer group starts at the stream's first message (`consumer_id`
"0", not the default "$"): the benchmark enqueues before the worker creates the group.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from taskiq import AsyncBroker, AsyncTaskiqDecoratedTask
from taskiq.acks import AcknowledgeType
from taskiq.api import run_receiver_task
from taskiq_redis import ListQueueBroker, RedisStreamBroker

from _queue_common import completions

Task = AsyncTaskiqDecoratedTask[[], Coroutine[Any, Any, None]]


async def noop() -> None:
    """The benchmark's job: count itself and return."""
    completions.bump()


class TaskiqProducer:
    """Kicks taskiq tasks into one broker."""

    def __init__(self, broker: AsyncBroker, task: Task) -> None:
        self._broker = broker
        self._task = task

    async def enqueue(self) -> object:
        """Kick one task."""
        return await self._task.kiq()

    async def enqueue_batch(self, size: int) -> object:
        """Kick `size` tasks concurrently."""
        return await asyncio.gather(*(self._task.kiq() for _ in range(size)))

    async def aclose(self) -> None:
        """Shut the broker down."""
        await self._broker.shutdown()


class TaskiqAdapter:
    """taskiq-redis with its defaults, on its list broker or its stream broker."""

    def __init__(self, *, stream: bool) -> None:
        self._stream = stream

    def _broker(self, url: str, name: str) -> tuple[AsyncBroker, Task]:
        broker: AsyncBroker
        if self._stream:
            broker = RedisStreamBroker(
                url, queue_name=name, consumer_group_name=name, consumer_id="0"
            )
        else:
            broker = ListQueueBroker(url, queue_name=name)
        return broker, broker.task(task_name="noop")(noop)

    async def producer(self, url: str, name: str) -> TaskiqProducer:
        """Start a broker on queue `name` for kicking."""
        broker, task = self._broker(url, name)
        await broker.startup()
        return TaskiqProducer(broker, task)

    async def work(self, url: str, name: str, concurrency: int) -> None:
        """Run taskiq's receiver until cancelled."""
        broker, _ = self._broker(url, name)
        try:
            await run_receiver_task(
                broker,
                max_async_tasks=concurrency,
                run_startup=True,
                ack_time=AcknowledgeType.WHEN_SAVED,
            )
        finally:
            await broker.shutdown()
