"""A queue on a store with no optional ability: every fallback of `_abilities.py` at work.

`CoreOnlyStore` offers a memory store's `QueueStore` operations and nothing more:
its workers poll, its result waiters re-read their job, its acks are taken
before each claim and its leases are renewed from the worker's loop.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from scalepy.errors import ConfigurationError
from scalepy.queue import (
    AnnouncingQueueStore,
    ConnectingQueueStore,
    MemoryQueueStore,
    OrderedAcksQueueStore,
    Queue,
    WakingQueueStore,
    Worker,
)

# Internal on purpose: the one place that asks a store for its abilities, checked directly.
from scalepy.queue._abilities import POLL, abilities
from scalepy.ratelimit import TokenBucket
from tests.queue.conftest import WAIT

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from scalepy.queue import Batch, Claimed, NewJob, Settlement, StoredJob


class CoreOnlyStore:
    """A `QueueStore` and no more: a memory store's operations, none of its abilities."""

    def __init__(self) -> None:
        self.inner = MemoryQueueStore()
        self.closed = False

    async def enqueue(
        self, batch: Batch, jobs: Sequence[NewJob]
    ) -> list[tuple[str, bool, str | None]]:
        """See `QueueStore.enqueue`."""
        return await self.inner.enqueue(batch, jobs)

    async def claim(self, count: int, **options: Any) -> tuple[int, list[Claimed]]:
        """See `QueueStore.claim`."""
        return await self.inner.claim(count, **options)

    async def ack(
        self, settlements: Iterable[Settlement], *, result_ttl_ms: int, unknown_limit: int = 0
    ) -> list[int]:
        """See `QueueStore.ack`."""
        return await self.inner.ack(
            settlements, result_ttl_ms=result_ttl_ms, unknown_limit=unknown_limit
        )

    async def extend(
        self, leases: Sequence[tuple[str, int]], *, lease_ms: int
    ) -> tuple[list[str], list[str]]:
        """See `QueueStore.extend`."""
        return await self.inner.extend(leases, lease_ms=lease_ms)

    async def cancel(self, job_id: str, *, result_ttl_ms: int) -> str | None:
        """See `QueueStore.cancel`."""
        return await self.inner.cancel(job_id, result_ttl_ms=result_ttl_ms)

    async def fire_cron(
        self, name: str, fire_ms: int, job_id: str, batch: Batch, args: bytes
    ) -> int:
        """See `QueueStore.fire_cron`."""
        return await self.inner.fire_cron(name, fire_ms, job_id, batch, args)

    async def requeue(self, job_ids: Sequence[str]) -> int:
        """See `QueueStore.requeue`."""
        return await self.inner.requeue(job_ids)

    async def purge_dead(
        self, job_ids: Sequence[str] | None, *, older_than_ms: int | None, limit: int
    ) -> int:
        """See `QueueStore.purge_dead`."""
        return await self.inner.purge_dead(job_ids, older_than_ms=older_than_ms, limit=limit)

    async def counts(self) -> tuple[int, int, int, int]:
        """See `QueueStore.counts`."""
        return await self.inner.counts()

    async def dead_ids(self, limit: int) -> list[str]:
        """See `QueueStore.dead_ids`."""
        return await self.inner.dead_ids(limit)

    async def job(self, job_id: str) -> StoredJob | None:
        """See `QueueStore.job`."""
        return await self.inner.job(job_id)

    async def aclose(self) -> None:
        """See `QueueStore.aclose`."""
        self.closed = True


def test_a_store_claims_only_the_abilities_it_has() -> None:
    """Each ability is found by its own protocol; a lacking one gets its fallback."""
    protocols = (
        WakingQueueStore,
        AnnouncingQueueStore,
        OrderedAcksQueueStore,
        ConnectingQueueStore,
    )
    assert [False] * 4 == [isinstance(CoreOnlyStore(), protocol) for protocol in protocols]
    found = abilities(CoreOnlyStore())
    assert (asyncio.sleep, None, False, None, POLL) == (
        found.wait_for_jobs,
        found.settled_feed,
        found.acks_ordered(),
        found.connector,
        found.recheck,
    )
    memory = abilities(MemoryQueueStore())
    assert (True, True, None, 1.0) == (
        memory.settled_feed is not None,
        memory.acks_ordered(),
        memory.connector,
        memory.recheck,
    )


async def test_a_queue_runs_on_a_store_without_abilities() -> None:
    """Jobs run, results arrive and retries happen; the queue leaves the store open."""
    store = CoreOnlyStore()
    async with Queue(store, name="core") as queue:
        assert (None, False) == (queue.config, store.closed)
        assert "CoreOnlyStore" in repr(queue)
        calls: list[str] = []

        @queue.task(name="flaky", retries=1, backoff=lambda n: 0.0)
        async def flaky(value: str) -> str:
            calls.append(value)
            if len(calls) == 1:
                raise RuntimeError("first try fails")
            return value * 2

        job = await flaky.enqueue("a")
        async with Worker(queue, poll_interval=0.05):
            assert "aa" == await job.result(timeout=WAIT)
        assert ["a", "a"] == calls
    assert False is store.closed


def test_a_rate_limit_needs_buckets_the_workers_share() -> None:
    """A store object's workers may run anywhere: the queue cannot pace them, so it refuses."""
    with pytest.raises(ConfigurationError, match="rate_limit needs a queue on Redis or memory://"):
        Queue(CoreOnlyStore(), rate_limit=TokenBucket(capacity=1, refill_rate=1.0))
    with_store = Queue(MemoryQueueStore(), rate_limit=TokenBucket(capacity=1, refill_rate=1.0))
    assert with_store.rate_limit is not None
