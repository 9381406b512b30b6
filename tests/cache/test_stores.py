"""The store contract, run on the memory store, Redis and Redis Cluster; each store's own rules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from scalepy.backends.redis import RedisClient
from scalepy.cache import (
    Cache,
    LockingCacheStore,
    MemoryCacheStore,
    PubSubCacheStore,
    RedisCacheStore,
    ReleaseOnSetCacheStore,
)
from scalepy.cache._redis import entry_of
from scalepy.errors import ConfigurationError
from scalepy.testing import CacheStoreContract, FakeClock
from tests.support.polling import eventually

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from redis.typing import EncodableT

    from scalepy.cache import CacheStore


class TestCacheStores(CacheStoreContract):
    """The shipped store contract, on the memory store, Redis and Redis Cluster (conftest)."""


def test_memory_store_claims_no_shared_ability() -> None:
    """One process: the memory store offers no lock and no channel."""
    assert not isinstance(MemoryCacheStore(), LockingCacheStore | PubSubCacheStore)


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


@pytest.mark.parametrize("which", ["standalone", "cluster"])
async def test_redis_store_and_release_frees_only_its_own_lock(
    which: str, redis_url: str, cluster_url: str, namespace: str
) -> None:
    """`set_and_release` stores the entry, then frees the lock only while the token holds it."""
    async with RedisClient.from_url(redis_url if which == "standalone" else cluster_url) as client:
        store = RedisCacheStore(client, namespace=namespace)
        assert isinstance(store, ReleaseOnSetCacheStore)
        token = await store.acquire_lock("a")
        assert token is not None
        await store.set_and_release("a", b"one", 10.0, token)
        stored = await store.get("a")
        assert stored is not None
        assert b"one" == stored[0]
        assert 9.0 < stored[1] <= 10.0
        assert await store.acquire_lock("a") is not None  # free again, and taken by another
        await store.set_and_release("a", b"two", 10.0, token)  # no longer the holder
        assert await store.acquire_lock("a") is None  # the other holder keeps its lock
        assert b"two" == ((await store.get("a")) or (b"",))[0]
        await store.clear()


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


class LockOnlyStore(MemoryCacheStore):
    """A store with the load lock but no invalidation channel; it records who locks."""

    def __init__(self) -> None:
        super().__init__(clock=FakeClock())
        self.locked: list[str] = []

    async def acquire_lock(self, key: str) -> str | None:
        """Take the lock (never contended here)."""
        self.locked.append(key)
        return "token"

    async def release_lock(self, key: str, token: str) -> None:
        """Release the lock."""


async def test_a_store_with_only_the_lock_ability_is_locked() -> None:
    """Each ability counts alone: a store with a lock but no pub/sub gets its lock used."""
    store = LockOnlyStore()
    assert (True, False) == (
        isinstance(store, LockingCacheStore),
        isinstance(store, PubSubCacheStore),
    )
    cache = Cache(store, jitter=0.0, xfetch_beta=0.0)

    async def load() -> str:
        return "v"

    assert "v" == await cache.get_or_load("k", load)
    assert ["k"] == store.locked


class Interleaving(RedisClient):
    """A client that runs `between` after the first command of `execute_many`.

    It stands for another client whose command Redis runs between a read's PTTL and
    GET (they normally run back to back).
    """

    between: Callable[[], Awaitable[object]] | None = None

    async def execute_many(self, *commands: tuple[EncodableT, ...]) -> list[Any]:
        """Run `commands` one by one, `between` after the first."""
        replies = [await self.execute(*commands[0])]
        if self.between is not None:
            await self.between()
        replies += [await self.execute(*command) for command in commands[1:]]
        return replies


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("delete", None),
        ("expire", None),
        ("create", None),
        ("rewrite-longer", (b"new", 10.0)),
        ("rewrite-shorter", (b"new", 10.0)),
        ("persist", (b"old", 10.0)),
    ],
)
async def test_a_read_racing_a_write_is_a_miss_or_the_newest_value(
    cluster_url: str, redis_url: str, namespace: str, change: str, expected: Any
) -> None:
    """A write between a read's PTTL and GET: a miss, or the newest bytes with the older time left.

    An entry gone in between (deleted, expired) or created in between is a miss;
    one rewritten in between gives the new bytes judged by the time the old entry
    had left, never the old bytes with the new entry's lifetime (so a rewrite with a
    shorter TTL is judged by the longer one left before it). A PERSIST in between
    (not something the cache does) leaves the bytes and the time read before it.
    """
    for url in (redis_url, cluster_url):
        found = await read_racing(url, namespace, change)
        if expected is None:
            assert found is None
        else:
            assert found is not None
            assert expected[0] == found[0]
            assert expected[1] - 0.5 <= found[1] <= expected[1]


async def read_racing(url: str, namespace: str, change: str) -> tuple[bytes, float] | None:
    """Read entry "k" (10 s left, unless `change` creates it) while `change` runs in between."""
    client = Interleaving.from_url(url)
    assert isinstance(client, Interleaving)
    async with client:
        store = RedisCacheStore(client, namespace=namespace)
        key = store.key("k")
        if change != "create":
            await store.set("k", b"old", 10.0)
        command = {
            "delete": ("DEL", key),
            "expire": ("PEXPIRE", key, 1),
            "create": ("SET", key, b"new", "PX", 10_000),
            "rewrite-longer": ("SET", key, b"new", "PX", 60_000),
            "rewrite-shorter": ("SET", key, b"new", "PX", 5_000),
            "persist": ("PERSIST", key),
        }[change]

        async def gone() -> bool:
            return 0 == int(await client.execute("EXISTS", key))

        async def write() -> None:
            await client.execute(*command)
            if change == "expire":
                await eventually(gone)

        client.between = write
        found = await store.get("k")
        client.between = None
        await store.delete(["k"])
        return found


def test_a_read_without_an_expiry_is_a_miss() -> None:
    """A key without expiry (PTTL -1) is not one of ours; an absent one (-2) is a miss too."""
    assert (None, None, (b"x", 1.5)) == (
        entry_of(-1, b"x"),
        entry_of(-2, b"x"),
        entry_of(1500, b"x"),
    )
