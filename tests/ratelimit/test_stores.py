"""The RateLimitStore contract, run on memory, Redis and Redis Cluster; then each store's extras."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest

from scalepy.backends.redis import RedisClient
from scalepy.errors import BackendUnavailable, ConfigurationError
from scalepy.ratelimit import (
    FixedWindow,
    MemoryRateLimitStore,
    RedisRateLimitStore,
    SlidingWindow,
    TokenBucket,
)
from scalepy.testing import FakeClock, RateLimitStoreContract

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from scalepy.ratelimit import RateLimitStore

BUCKET = TokenBucket(capacity=3, refill_rate=1.0)
WINDOW = SlidingWindow(limit=2, window=60)
FIXED = FixedWindow(limit=2, window=10)


@pytest.fixture
def clock() -> FakeClock:
    """The time every store under test decides on."""
    return FakeClock(1_700_000_000.0)


@pytest.fixture(params=["memory", "standalone", "cluster"])
async def store(
    request: pytest.FixtureRequest,
    clock: FakeClock,
    redis_url: str,
    cluster_url: str,
    key_prefix: str,
) -> AsyncIterator[RateLimitStore]:
    """Every store on the fake clock; the Redis ones get its time through the now_us hook."""
    if request.param == "memory":
        yield MemoryRateLimitStore(clock=clock)
        return
    url = redis_url if request.param == "standalone" else cluster_url
    redis_store = RedisRateLimitStore(
        RedisClient.from_url(url),
        namespace=key_prefix,
        owns_client=True,
        now_us=lambda: int(clock.now() * 1_000_000),
    )
    yield redis_store
    await redis_store.aclose()


class TestRateLimitStores(RateLimitStoreContract):
    """The shipped store contract, on the memory store, Redis and Redis Cluster."""


async def test_a_key_with_a_lone_surrogate_is_limited_like_any_other(
    store: RateLimitStore,
) -> None:
    """JSON's `"\ud800"` decodes to a lone surrogate: a key made of it is its own key.

    Redis keys are UTF-8, which cannot spell it: the Redis stores raised an encoding
    error (a 500 behind the middleware) where the memory store limited it.
    """
    assert all(d.allowed for d in await store.acquire("user:\ud800", [BUCKET], 3))
    assert not any(d.allowed for d in await store.acquire("user:\ud800", [BUCKET], 1))
    assert all(d.allowed for d in await store.acquire("user:\udfff", [BUCKET], 1))
    assert all(d.allowed for d in await store.acquire("user:%ED%A0%80", [BUCKET], 1))


# -- memory store ---------------------------------------------------------------------------


async def test_memory_store_drops_expired_states_when_touched() -> None:
    """Once the quota is whole again the state is forgotten."""
    clock = FakeClock()
    store = MemoryRateLimitStore(clock=clock)
    await store.acquire("a", [BUCKET, WINDOW], 1)
    assert 2 == len(store)
    clock.advance(1.0)
    await store.acquire("a", [BUCKET], 0)
    assert 1 == len(store)
    clock.advance(120.0)
    await store.acquire("a", [WINDOW], 0)
    assert 0 == len(store)
    assert "<MemoryRateLimitStore states=0 max_keys=100000>" == repr(store)
    await store.aclose()


async def test_memory_store_evicts_the_least_recently_used_beyond_max_keys() -> None:
    """The oldest untouched key is forgotten first, and so gets its whole quota back."""
    store = MemoryRateLimitStore(clock=FakeClock(), max_keys=2)
    for key in ("a", "b"):
        await store.acquire(key, [BUCKET], 3)
    await store.acquire("a", [BUCKET], 0)  # touch a: b is now the oldest
    await store.acquire("c", [BUCKET], 3)
    assert 2 == len(store)
    assert [0, 3, 0] == [
        (await store.acquire(key, [BUCKET], 0))[0].remaining for key in ("a", "b", "c")
    ]


def test_memory_store_needs_room_for_one_key() -> None:
    """max_keys below 1 is refused."""
    with pytest.raises(ValueError, match="max_keys must be >= 1"):
        MemoryRateLimitStore(max_keys=0)


async def test_memory_store_reads_the_monotonic_clock_by_default() -> None:
    """Without a clock, real time refills the bucket."""
    store = MemoryRateLimitStore()
    fast = TokenBucket(capacity=1, refill_rate=1000.0)
    assert (await store.acquire("a", [fast], 1))[0].allowed
    (denied,) = await store.acquire("a", [fast], 1)
    assert 0 < denied.retry_after <= 0.001


# -- Redis store ----------------------------------------------------------------------------


async def test_redis_keys_share_the_call_key_hash_tag(redis: RedisClient, key_prefix: str) -> None:
    """Keys are scalepy:rl:{namespace}:{key}:{rule id}, one hash tag (one slot) per call."""
    store = RedisRateLimitStore(redis, namespace=key_prefix)
    assert f"scalepy:rl:{key_prefix}:{{user:1}}:g1000000x3" == store.key("user:1", BUCKET)
    assert f"scalepy:rl:{key_prefix}:{{user:1}}:w60000000x2" == store.key("user:1", WINDOW)
    assert f"scalepy:rl:{key_prefix}:{{user:1}}:f10000000x2" == store.key("user:1", FIXED)
    with pytest.raises(ConfigurationError, match="free of braces"):
        RedisRateLimitStore(redis, namespace="{x}")
    assert repr(redis) in repr(store)


async def test_redis_keys_expire_when_the_quota_is_whole(
    redis: RedisClient, key_prefix: str
) -> None:
    """GCRA keys live for reset_after, window keys for two windows."""
    store = RedisRateLimitStore(redis, namespace=key_prefix)
    bucket = TokenBucket(capacity=10, refill_rate=0.1)  # 10 s per token
    bucket_decision, _ = await store.acquire("a", [bucket, WINDOW], 2)
    assert 20.0 == pytest.approx(bucket_decision.reset_after, abs=0.01)
    bucket_ttl = await redis.execute("PTTL", store.key("a", bucket))
    window_ttl = await redis.execute("PTTL", store.key("a", WINDOW))
    assert 19_000 < bucket_ttl <= 20_000
    assert 119_000 < window_ttl <= 120_000


async def test_redis_idle_keys_disappear(redis: RedisClient, key_prefix: str) -> None:
    """A key refilled to full is gone from Redis: nothing is left for idle keys."""
    store = RedisRateLimitStore(redis, namespace=key_prefix)
    fast = TokenBucket(capacity=1, refill_rate=100.0)  # full again after 10 ms
    key = store.key("a", fast)
    assert (await store.acquire("a", [fast], 1))[0].allowed
    deadline = time.monotonic() + 2.0
    # Redis' own expiry notifies nobody: poll, bounded by the deadline.
    while await redis.execute("EXISTS", key) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    assert 0 == await redis.execute("EXISTS", key)


async def test_redis_decides_on_server_time(redis: RedisClient, key_prefix: str) -> None:
    """Without the now_us hook the script reads Redis TIME, and the state it stores is sane."""
    store = RedisRateLimitStore(redis, namespace=key_prefix)
    slow = TokenBucket(capacity=2, refill_rate=0.001)
    assert [True, True, False] == [
        (await store.acquire("a", [slow], 1))[0].allowed for _ in range(3)
    ]
    seconds, micros = await redis.execute("TIME")
    now_us = int(seconds) * 1_000_000 + int(micros)
    tat = int(await redis.execute("GET", store.key("a", slow)))
    assert 0 < tat - now_us <= 2 * 1_000_000_000  # two tokens of 1000 s


async def test_redis_fixed_windows_align_to_the_epoch_on_server_time(
    redis: RedisClient, key_prefix: str
) -> None:
    """Windows start at multiples of their length since the Unix epoch, by Redis TIME.

    So every replica counts in the same windows: an hourly window ends on the hour.
    The key lives one window from its last change, so it outlives its window.
    """
    store = RedisRateLimitStore(redis, namespace=key_prefix)
    hourly = FixedWindow(limit=5, window=3600)
    before = await server_time_us(redis)
    (decision,) = await store.acquire("a", [hourly], 2)
    after = await server_time_us(redis)
    start, count = (
        int(part) for part in (await redis.execute("GET", store.key("a", hourly))).split(b":")
    )
    assert (0, 2, 3) == (start % 3_600_000_000, count, decision.remaining)
    assert before - 3_600_000_000 < start <= after
    assert (start + 3_600_000_000 - after) / 1e6 <= decision.reset_after
    assert decision.reset_after <= (start + 3_600_000_000 - before) / 1e6
    assert 3_599_000 < await redis.execute("PTTL", store.key("a", hourly)) <= 3_600_000


async def server_time_us(redis: RedisClient) -> int:
    """Redis TIME in microseconds."""
    seconds, micros = await redis.execute("TIME")
    return int(seconds) * 1_000_000 + int(micros)


async def test_redis_store_closes_only_a_client_it_owns(redis_url: str, key_prefix: str) -> None:
    """aclose() leaves a borrowed client open and closes an owned one."""
    client = RedisClient.from_url(redis_url)
    await RedisRateLimitStore(client, namespace=key_prefix).aclose()
    assert await client.ping()
    await RedisRateLimitStore(client, namespace=key_prefix, owns_client=True).aclose()
    with pytest.raises(BackendUnavailable):
        await client.ping()


def test_stores_satisfy_the_protocol() -> None:
    """Both stores type-check as RateLimitStore (mypy checks these assignments)."""
    stores: Sequence[type[RateLimitStore]] = (MemoryRateLimitStore, RedisRateLimitStore)
    assert 2 == len(stores)
