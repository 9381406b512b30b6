"""The store contracts shipped in `scalepy.testing` catch broken stores.

The queue's runs here on the memory store, Redis and Redis Cluster (the cache's
and the rate limiter's run in tests/cache and tests/ratelimit). Their use by a
third party is shown, and run, by docs/examples/store_contract.py and
docs/examples/queue_store_contract.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

from scalepy.backends.redis import RedisClient
from scalepy.cache import MemoryCacheStore
from scalepy.queue import Batch, MemoryQueueStore, NewJob, QueueStore, RedisQueueStore
from scalepy.ratelimit import MemoryRateLimitStore
from scalepy.testing import (
    CacheStoreContract,
    FakeClock,
    QueueStoreContract,
    RateLimitStoreContract,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from scalepy.ratelimit import Policy, PolicyDecision


class ForgetfulStore(MemoryCacheStore):
    """A broken cache store: a later, shorter `keep_for` cuts a tag version's life."""

    async def invalidate_tags(self, tags: Sequence[str], keep_for: float) -> None:
        """Bump the versions, then forget the longer keep time."""
        await super().invalidate_tags(tags, keep_for)
        now = self._clock.now()
        for tag in tags:
            self._tags[tag] = (self._tags[tag][0], now + keep_for)


class CostBlindStore(MemoryRateLimitStore):
    """A broken rate-limit store: every request costs at most one."""

    async def acquire(
        self, key: str, policies: Sequence[Policy], cost: int, *, commit: bool = True
    ) -> tuple[PolicyDecision, ...]:
        """Decide as if the cost were at most one."""
        return await super().acquire(key, policies, min(cost, 1), commit=commit)


async def test_the_cache_contract_catches_a_broken_store() -> None:
    """A store that shortens kept tag versions fails the contract and the reference check."""
    contract = CacheStoreContract()
    clock = FakeClock()

    async def advance(seconds: float, keys: Sequence[str], tags: Sequence[str]) -> None:
        clock.advance(seconds)

    with pytest.raises(AssertionError):
        await contract.test_tag_versions_are_kept_then_forgotten(
            ForgetfulStore(clock=clock), advance
        )
    with pytest.raises(AssertionError):
        await contract.test_agrees_with_the_memory_reference(ForgetfulStore(clock=clock), advance)


async def test_the_rate_limit_contract_catches_a_broken_store() -> None:
    """A store that ignores the cost disagrees with the memory reference."""
    contract = RateLimitStoreContract()
    clock = FakeClock(1_700_000_000.0)
    with pytest.raises(AssertionError):
        await contract.test_agrees_with_the_memory_reference(CostBlindStore(clock=clock), clock)
    with pytest.raises(AssertionError):
        await contract.test_cost_zero_peeks_and_costs_above_the_quota_take_nothing(
            CostBlindStore(clock=clock), clock
        )


@pytest.fixture(params=["memory", "standalone", "cluster"])
async def store(
    request: pytest.FixtureRequest, redis_url: str, cluster_url: str, key_prefix: str
) -> AsyncIterator[QueueStore]:
    """A queue store holding no job: in memory, then on Redis and Redis Cluster."""
    if request.param == "memory":
        yield MemoryQueueStore()
        return
    url = redis_url if request.param == "standalone" else cluster_url
    redis_store = RedisQueueStore(RedisClient.from_url(url), key_prefix, owns_client=True)
    yield redis_store  # key_prefix deletes its keys
    await redis_store.aclose()


class TestQueueStores(QueueStoreContract):
    """The shipped queue store contract, on the memory store, Redis and Redis Cluster."""


class DuplicatingStore(MemoryQueueStore):
    """A broken queue store: a job with a caller's id is created again, ended or not."""

    async def enqueue(
        self, batch: Batch, jobs: Sequence[NewJob]
    ) -> list[tuple[str, bool, str | None]]:
        """Forget that the batch names its jobs."""
        return await super().enqueue(replace(batch, named=False), jobs)


async def test_the_queue_contract_catches_a_broken_store() -> None:
    """A store that makes a named job twice fails the contract and the reference check."""
    contract = QueueStoreContract()
    with pytest.raises(AssertionError):
        await contract.test_a_named_job_is_made_once(DuplicatingStore())
    with pytest.raises(AssertionError):
        await contract.test_agrees_with_the_memory_reference(DuplicatingStore())
