"""The store contract, run on the memory store, Redis and Redis Cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from scalepy.backends.redis import RedisClient
from scalepy.cache import (
    Cache,
    CacheStore,
    LockingCacheStore,
    MemoryCacheStore,
    PubSubCacheStore,
    RedisCacheStore,
    SharedCacheStore,
)
from scalepy.errors import ConfigurationError
from scalepy.testing import FakeClock
from tests.cache.conftest import warp

if TYPE_CHECKING:
    from collections.abc import Sequence

SLACK = 0.5  # seconds a Redis TTL may have run down in real time during a test


async def test_entries_are_stored_with_their_time_to_live(store: CacheStore) -> None:
    """A stored entry comes back with what is left of its TTL; set replaces it."""
    assert await store.get("a") is None
    await store.set("a", b"one", 10.0)
    data, left = await store.get("a") or (b"", 0.0)
    assert b"one" == data
    assert 10.0 - SLACK <= left <= 10.0
    await store.set("a", b"two", 20.0)
    data, left = await store.get("a") or (b"", 0.0)
    assert (b"two", True) == (data, left > 10.0)


async def test_entries_expire_after_their_ttl(store: CacheStore, clock: FakeClock) -> None:
    """Once its TTL has run out an entry is gone."""
    await store.set("a", b"one", 2.0)
    await store.set("b", b"two", 5.0)
    await warp(store, clock, 2.0, ["a", "b"], [])
    assert await store.get("a") is None
    assert await store.get("b") is not None


async def test_delete_removes_entries(store: CacheStore) -> None:
    """Deleting removes exactly the named entries; absent ones are ignored."""
    for key in "abc":
        await store.set(key, key.encode(), 10.0)
    await store.delete(["a", "c", "missing"])
    assert [None, b"b", None] == [(await store.get(key) or (None,))[0] for key in "abc"]


async def test_tag_versions_count_invalidations(store: CacheStore) -> None:
    """A tag starts at version 0 and each invalidation adds one."""
    assert (0, 0) == await store.tag_versions(["x", "y"])
    await store.invalidate_tags(["x"], 60.0)
    await store.invalidate_tags(["x", "y"], 60.0)
    assert (2, 1, 0) == await store.tag_versions(["x", "y", "z"])
    assert () == await store.tag_versions([])


async def test_tag_versions_are_kept_then_forgotten(store: CacheStore, clock: FakeClock) -> None:
    """A version lives at least `keep_for`; a shorter later `keep_for` does not cut it."""
    await store.invalidate_tags(["x"], 10.0)
    await store.invalidate_tags(["x"], 1.0)
    await warp(store, clock, 5.0, [], ["x"])
    assert (2,) == await store.tag_versions(["x"])
    await warp(store, clock, 5.0, [], ["x"])
    assert (0,) == await store.tag_versions(["x"])


async def test_clear_removes_entries_and_tags(store: CacheStore) -> None:
    """Clearing empties the store's namespace."""
    await store.set("a", b"one", 10.0)
    await store.invalidate_tags(["x"], 10.0)
    await store.clear()
    assert (None, (0,)) == (await store.get("a"), await store.tag_versions(["x"]))


async def test_shared_stores_lock_per_key(store: CacheStore) -> None:
    """One holder at a time; only the holder's token releases the lock (not in memory)."""
    if isinstance(store, MemoryCacheStore):
        assert not isinstance(store, SharedCacheStore)  # one process: no lock, no channel
        return
    assert isinstance(store, SharedCacheStore)
    token = await store.acquire_lock("a")
    assert token is not None
    assert await store.acquire_lock("a") is None
    assert await store.acquire_lock("b") is not None
    await store.release_lock("a", "not-the-token")
    assert await store.acquire_lock("a") is None
    await store.release_lock("a", token)
    assert await store.acquire_lock("a") is not None


async def test_redis_layout_shares_one_slot_per_entry(redis_url: str) -> None:
    """An entry and its lock share a hash tag; other namespaces are untouched by clear."""
    async with RedisClient.from_url(redis_url) as client:
        store = RedisCacheStore(client, namespace="layout", version=3)
        other = RedisCacheStore(client, namespace="layout-other")
        assert "scalepy:cache:layout:v3:{user:{1}}" != store.key("user:{1}")
        assert "scalepy:cache:layout:v3:{user:%7B1%7D}" == store.key("user:{1}")
        assert "scalepy:cache:layout:v3:tag:{t}" == store.tag_key("t")
        await other.set("kept", b"1", 10.0)
        await store.set("gone", b"1", 10.0)
        assert await store.acquire_lock("gone") is not None
        assert 1 == await client.execute("EXISTS", store.key("gone") + ":lock")
        await store.clear()
        assert (None, b"1") == (await store.get("gone"), (await other.get("kept") or (None,))[0])
        assert 0 == await client.execute("EXISTS", store.key("gone") + ":lock")
        await other.clear()
        assert "layout" in repr(store)


async def test_entries_without_expiry_are_not_ours(redis_url: str, namespace: str) -> None:
    """A key someone set without a TTL reads as absent."""
    async with RedisClient.from_url(redis_url) as client:
        store = RedisCacheStore(client, namespace=namespace)
        await client.execute("SET", store.key("a"), b"foreign")
        assert await store.get("a") is None
        await client.execute("DEL", store.key("a"))


def test_memory_store_options_are_checked() -> None:
    """max_entries must be positive, and repr shows it."""
    with pytest.raises(ConfigurationError):
        MemoryCacheStore(max_entries=0)
    assert "max_entries=5" in repr(MemoryCacheStore(max_entries=5))


async def test_memory_store_evicts_the_least_recently_used() -> None:
    """A full memory store drops the entry used least recently."""
    store = MemoryCacheStore(clock=FakeClock(), max_entries=2)
    await store.set("a", b"1", 10.0)
    await store.set("b", b"2", 10.0)
    await store.get("a")
    await store.set("c", b"3", 10.0)
    assert (2, None) == (len(store), await store.get("b"))
    await store.aclose()


async def test_memory_store_forgets_expired_tags_as_it_grows() -> None:
    """Tag versions past their keep time are swept, so the dict stays bounded."""
    clock = FakeClock()
    store = MemoryCacheStore(clock=clock)
    await store.invalidate_tags([f"t{i}" for i in range(60)], 1.0)
    clock.advance(2.0)
    await store.invalidate_tags([f"u{i}" for i in range(10)], 1.0)
    assert 10 == len(store._tags)


class CoreOnlyStore:
    """A shared store offering only the core `CacheStore` operations: no lock, no pub/sub."""

    def __init__(self, inner: CacheStore) -> None:
        self.inner = inner

    async def get(self, key: str) -> tuple[bytes, float] | None:
        """Read from the shared store."""
        return await self.inner.get(key)

    async def set(self, key: str, data: bytes, ttl: float) -> None:
        """Write to the shared store."""
        await self.inner.set(key, data, ttl)

    async def delete(self, keys: Sequence[str]) -> None:
        """Delete from the shared store."""
        await self.inner.delete(keys)

    async def tag_versions(self, tags: Sequence[str]) -> tuple[int, ...]:
        """Read tag versions from the shared store."""
        return await self.inner.tag_versions(tags)

    async def invalidate_tags(self, tags: Sequence[str], keep_for: float) -> None:
        """Bump tag versions in the shared store."""
        await self.inner.invalidate_tags(tags, keep_for)

    async def clear(self) -> None:
        """Clear the shared store."""
        await self.inner.clear()

    async def aclose(self) -> None:
        """Nothing held: the inner store is closed by its owner."""


async def test_an_l1_in_front_of_a_store_without_pubsub_is_refused(
    redis_url: str, namespace: str
) -> None:
    """A shared store without pub/sub gets no silently incoherent L1; opting in accepts staleness.

    Two caches stand for two processes sharing one Redis through a store with
    neither lock nor channel: an L1 is refused, and when allowed it serves the
    old value (bounded by `local_ttl`) after the other process changed it.
    """
    async with RedisClient.from_url(redis_url) as client:
        store = CoreOnlyStore(RedisCacheStore(client, namespace=namespace))
        assert not isinstance(store, PubSubCacheStore | LockingCacheStore)
        with pytest.raises(ConfigurationError, match="allow_stale_local"):
            Cache(store, local_max_size=100)
        here = Cache(store, local_max_size=100, allow_stale_local=True)
        there = Cache(CoreOnlyStore(RedisCacheStore(client, namespace=namespace)))
        await here.set("k", "old")
        assert "old" == await here.get("k")
        assert "old" == await here.get("k")  # the second hit is the L1's
        await there.set("k", "new")
        assert ("old", "new") == (await here.get("k"), await there.get("k"))
        await store.clear()
