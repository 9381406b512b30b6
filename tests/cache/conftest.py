"""Fixtures of the cache tests: one contract, every store (memory, Redis, Redis Cluster)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

from scalepy.backends.redis import RedisClient
from scalepy.cache import MemoryCacheStore, RedisCacheStore
from scalepy.testing import Advance, FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from scalepy.cache import CacheStore


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock the memory store and caches read."""
    return FakeClock()


@pytest.fixture
def namespace() -> str:
    """A cache namespace no other test uses."""
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture(params=["memory", "standalone", "cluster"])
async def store(
    request: pytest.FixtureRequest,
    clock: FakeClock,
    namespace: str,
    redis_url: str,
    cluster_url: str,
) -> AsyncIterator[CacheStore]:
    """The memory store, then the Redis store on a server, then on the cluster.

    Every key the store tests write expires within a minute: no cleanup needed.
    """
    if request.param == "memory":
        yield MemoryCacheStore(clock=clock)
        return
    url = redis_url if request.param == "standalone" else cluster_url
    async with RedisClient.from_url(url) as client:
        yield RedisCacheStore(client, namespace=namespace, lock_ttl=2.0)


@pytest.fixture
def advance(store: CacheStore, clock: FakeClock) -> Advance:
    """Move `store`'s time forward (see `warp`), for the store contract."""

    async def advance(seconds: float, keys: Sequence[str], tags: Sequence[str]) -> None:
        await warp(store, clock, seconds, keys, tags)

    return advance


async def warp(
    store: CacheStore, clock: FakeClock, seconds: float, keys: Sequence[str], tags: Sequence[str]
) -> None:
    """Move `store`'s time forward: the fake clock, or every named Redis key's TTL."""
    if isinstance(store, MemoryCacheStore):
        clock.advance(seconds)
        return
    assert isinstance(store, RedisCacheStore)
    client = store.client
    step = round(seconds * 1000)
    for name in [*map(store.key, keys), *map(store.tag_key, tags)]:
        left = await client.execute("PTTL", name)
        if left < 0:
            continue
        if left <= step:
            await client.execute("DEL", name)
        else:
            await client.execute("PEXPIRE", name, left - step)
