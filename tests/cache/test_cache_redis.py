"""Cache on real Redis and Redis Cluster: sharing, the load lock, L1 coherence, outages.

Two `Cache` objects with their own clients stand for two processes here; the
multi-process tests (test_processes.py) run the same scenarios in real processes.
Waiting for another cache's invalidation message polls with a deadline (the
message travels through Redis; there is no event to await).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalepy.backends.redis import RedisClient
from scalepy.cache import Cache, RedisCacheStore
from scalepy.errors import BackendError
from scalepy.serializers import PickleSerializer
from scalepy.testing import RecordingInstrumentation
from tests.support.polling import eventually

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from tests.support.redis_server import RedisServer


@pytest.fixture(params=["standalone", "cluster"])
def url(request: pytest.FixtureRequest, redis_url: str, cluster_url: str) -> str:
    """The shared Redis server, then the cluster."""
    return redis_url if request.param == "standalone" else cluster_url


@pytest.fixture
async def caches(url: str, namespace: str) -> AsyncIterator[tuple[Cache, Cache]]:
    """Two caches on one namespace, each with its own connection and L1 ("two processes").

    Their keys expire within 20 minutes (max_ttl 600 s keeps tag versions 1200 s).
    """
    options: dict[str, Any] = {
        "namespace": namespace,
        "local_max_size": 100,
        "heartbeat": 0.1,
        "max_ttl": 600,
    }
    async with Cache(url, **options) as first, Cache(url, **options) as second:
        yield first, second


class Counter:
    """A loader shared by several caches, counting calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.called = asyncio.Event()

    async def __call__(self, x: int = 0) -> dict[str, int]:
        """Return the call number (after the gate opens, if set)."""
        self.calls += 1
        self.called.set()
        calls = self.calls
        if self.gate is not None:
            await self.gate.wait()
        return {"call": calls}


async def test_entries_are_shared_through_redis(caches: tuple[Cache, Cache]) -> None:
    """What one cache loaded, the other reads; values survive the round trip."""
    first, second = caches
    counter = Counter()
    one = first.cached(ttl=60, key="k:{x}")(counter)
    two = second.cached(ttl=60, key="k:{x}")(counter)
    assert [{"call": 1}] * 3 == [await one(x=1), await two(x=1), await two(x=1)]
    assert (1, 2, 1) == (counter.calls, second.statistics().hits, second.statistics().local_hits)
    await first.set("manual", [1, "two"], ttl=30)
    assert [1, "two"] == await second.get("manual")


async def test_one_process_loads_a_cold_key_while_the_other_waits(
    caches: tuple[Cache, Cache],
) -> None:
    """Concurrent misses in two caches run the loader once: the lock holder's value is read."""
    first, second = caches
    counter = Counter()
    counter.gate = asyncio.Event()
    one = first.cached(ttl=60, key="cold")(counter)
    two = second.cached(ttl=60, key="cold")(counter)
    calls = [asyncio.create_task(call()) for call in (one, two) for _ in range(20)]
    await counter.called.wait()  # the lock holder's loader has started
    counter.gate.set()
    assert [{"call": 1}] * 40 == await asyncio.gather(*calls)
    assert 1 == counter.calls


async def test_writes_reach_the_other_l1_within_the_bound(caches: tuple[Cache, Cache]) -> None:
    """set, delete and tag invalidation in one cache reach the other's L1 within 2 heartbeats."""
    first, second = caches
    counter = Counter()
    read = second.cached(ttl=60, key="user:{x}", tags=["users"])(counter)
    assert {"call": 1} == await read(x=1)
    assert {"call": 1} == await read(x=1)
    assert 1 == second.statistics().local_hits
    bound = first.staleness_bound
    assert bound is not None
    assert bound == pytest.approx(0.2)

    async def sees(expected: object) -> bool:
        return await read(x=1) == expected

    await first.set("user:1", {"call": 0})
    assert await eventually(lambda: sees({"call": 0}), within=bound + 1.0) <= bound + 0.5
    await first.delete("user:1")
    await eventually(lambda: sees({"call": 2}), within=bound + 1.0)
    await first.invalidate_tags("users")
    await eventually(lambda: sees({"call": 3}), within=bound + 1.0)
    await first.clear()
    await eventually(lambda: sees({"call": 4}), within=bound + 1.0)


async def test_versions_and_namespaces_separate_entries(url: str, namespace: str) -> None:
    """A new version or another namespace starts from an empty cache."""
    counter = Counter()
    async with (
        Cache(url, namespace=namespace, version=1) as v1,
        Cache(url, namespace=namespace, version=2) as v2,
        Cache(url, namespace=namespace + "-other") as other,
    ):
        for cache in (v1, v2, other, v1):
            await cache.get_or_load("k", counter, ttl=60)
        assert 3 == counter.calls


async def test_undecodable_redis_entries_are_counted_misses(url: str, namespace: str) -> None:
    """Garbage under an entry's key is a miss, counted, then overwritten."""
    metrics = RecordingInstrumentation()
    async with (
        Cache(url, namespace=namespace, instrumentation=metrics) as cache,
        RedisClient.from_url(url) as client,
    ):
        store = cache.store
        assert isinstance(store, RedisCacheStore)
        await client.execute("SET", store.key("k"), b"\xffgarbage", "PX", 60_000)
        assert {"call": 1} == await cache.get_or_load("k", Counter(), ttl=60)
        assert 2 == metrics.value(
            "scalepy.cache.entries.undecodable"
        )  # the read, the re-read under lock
        assert {"call": 1} == await cache.get("k")


async def test_redis_stopped_mid_run_costs_at_most_the_timeout(outage_server: RedisServer) -> None:
    """While Redis (a server, or a cluster's node) is down the loader answers at once.

    No call waits beyond the timeout; caching resumes by itself once Redis is back.
    """
    redis_server = outage_server
    counter = Counter()
    async with Cache(redis_server.url, namespace="outage", timeout=0.1) as cache:
        cached = cache.cached(ttl=60)(counter)
        await cached(0)
        await cached(0)
        assert 1 == counter.calls
        redis_server.stop()
        durations = []
        for item in range(20):
            started = time.monotonic()
            assert "call" in await cached(item % 2)
            durations.append(time.monotonic() - started)
        assert max(durations) < 0.1 + 0.2  # the timeout, plus a loaded machine's slack
        assert max(durations[5:]) < 0.05  # the guard is open: no wait at all
        stats = cache.statistics()
        assert (False, 20) == (stats.backend_available, stats.errors)
        with pytest.raises(BackendError):
            await cache.delete("k")
        redis_server.start()

        async def cached_again() -> bool:
            before = counter.calls
            await cached(7)
            return counter.calls == before

        await eventually(cached_again, within=15.0)
        assert cache.statistics().backend_available


async def test_the_l1_is_bypassed_while_the_channel_is_down(redis_server: RedisServer) -> None:
    """With Redis gone the invalidation channel turns unhealthy and the L1 stops answering."""
    counter = Counter()
    async with Cache(
        redis_server.url, namespace="l1", local_max_size=10, heartbeat=0.1, timeout=0.1
    ) as cache:
        cached = cache.cached(ttl=60)(counter)
        await cached()
        await cached()
        assert (1, True) == (cache.statistics().local_hits, cache.statistics().local_coherent)
        redis_server.stop()

        async def incoherent() -> bool:
            return not cache.statistics().local_coherent

        await eventually(incoherent, within=2.0)
        await cached()
        assert (1, 2) == (cache.statistics().local_hits, counter.calls)


async def test_a_busy_event_loop_keeps_the_l1(redis_url: str, namespace: str) -> None:
    """A read the loop sends past its deadline times out, but the L1 and its channel stay.

    As under 50 tasks of L1 hits that yield every 64 calls: the loop runs so long
    between two polls that a command goes out after its deadline. That command's
    connection also carries the invalidation channel; dropping it would bypass the
    L1 and then empty it.
    """
    async with Cache(redis_url, namespace=namespace, local_max_size=10, timeout=0.1) as cache:
        cached = cache.cached(ttl=60)(Counter())
        await cached()
        await cached()
        assert (1, True) == (cache.statistics().local_hits, cache.statistics().local_coherent)
        late = asyncio.ensure_future(cache.get("elsewhere"))  # misses the L1: a Redis read
        asyncio.get_running_loop().call_soon(time.sleep, 0.2)  # right after it is submitted
        assert None is await late  # timed out, answered as a miss
        await asyncio.sleep(0.3)  # past the moment the connection is judged
        await cached()
        statistics = cache.statistics()
        assert (2, True, 1) == (
            statistics.local_hits,
            statistics.local_coherent,
            statistics.local_entries,
        )


async def test_a_computed_value_waits_serialized_in_the_l1_until_its_first_hit(
    redis_url: str, namespace: str
) -> None:
    """A miss holds the payload, weighed as its bytes; the first L1 hit decodes and weighs it.

    The miss pays for no decoding; the callers after it share one decoded copy,
    never the loader's own object.
    """
    record = {"id": 1, "roles": [f"role-{n}" for n in range(20)]}

    async def load() -> dict[str, Any]:
        return record

    async with Cache(redis_url, namespace=namespace, local_max_size=10) as cache:
        cached = cache.cached(ttl=60)(load)
        assert record is await cached()
        serialized = cache.statistics().local_bytes
        first = await cached()
        decoded = cache.statistics().local_bytes
        assert first == record
        assert first is not record
        assert first is await cached()
        statistics = cache.statistics()
        assert (2, 1, decoded) == (
            statistics.local_hits,
            statistics.local_entries,
            statistics.local_bytes,
        )
        assert 0 < serialized < decoded


async def test_a_value_too_large_once_decoded_leaves_the_l1_at_its_first_hit(
    redis_url: str, namespace: str
) -> None:
    """Small serialized, over `local_max_bytes` decoded: served once from the L1, then not held."""

    async def load() -> list[int]:
        return list(range(1000, 1200))  # about 1 KB of JSON, about 7 KB decoded

    options: dict[str, Any] = {"local_max_size": 10, "local_max_bytes": 4000}
    async with Cache(redis_url, namespace=namespace, **options) as cache:
        cached = cache.cached(ttl=60)(load)
        await cached()
        assert 1 == cache.statistics().local_entries
        assert list(range(1000, 1200)) == await cached()
        statistics = cache.statistics()
        assert (1, 0, 0) == (
            statistics.local_hits,
            statistics.local_entries,
            statistics.local_bytes,
        )
        assert list(range(1000, 1200)) == await cached()  # from Redis now
        statistics = cache.statistics()
        assert (1, 2, 0) == (statistics.local_hits, statistics.hits, statistics.local_entries)


async def test_signed_pickles_copied_to_another_key_or_namespace_are_misses(
    url: str, namespace: str
) -> None:
    """A signed entry copied under another key, or into another namespace, is a counted miss.

    The signature binds the namespace and the key: bob's `admin` role copied to
    mallory's key does not make mallory an admin.
    """
    metrics = RecordingInstrumentation()
    options: dict[str, Any] = {
        "serializer": PickleSerializer(b"k" * 32),
        "instrumentation": metrics,
    }
    async with (
        Cache(url, namespace=namespace, **options) as cache,
        Cache(url, namespace=namespace + "-other", **options) as other,
        RedisClient.from_url(url) as client,
    ):
        here, there = cache.store, other.store
        assert isinstance(here, RedisCacheStore)
        assert isinstance(there, RedisCacheStore)
        await cache.set("role:bob", {"role": "admin"}, ttl=60)
        blob = await client.execute("GET", here.key("role:bob"))
        await client.execute("SET", here.key("role:mallory"), blob, "PX", 60_000)
        await client.execute("SET", there.key("role:bob"), blob, "PX", 60_000)
        absent = object()
        assert absent is await cache.get("role:mallory", absent)
        assert absent is await other.get("role:bob", absent)
        assert {"role": "admin"} == await cache.get("role:bob")
        assert 2 == metrics.value("scalepy.cache.entries.undecodable")


async def test_an_oversized_value_is_returned_uncached_and_hurts_nobody(
    redis_url: str, namespace: str
) -> None:
    """A 60 MiB value is returned and not stored; callers hitting meanwhile keep their hits.

    Written, it would take longer than the 0.1 s timeout on the shared connection:
    every other caller's command would fail with it and the guard would open.
    """
    metrics = RecordingInstrumentation()
    async with Cache(redis_url, namespace=namespace, instrumentation=metrics) as cache:
        counter = Counter()
        small = cache.cached(ttl=60)(counter)

        @cache.cached(ttl=60)
        async def huge() -> str:
            return "x" * (60 * 2**20)

        for i in range(10):
            await small(i)
        done = asyncio.Event()
        hits_meanwhile = 0

        async def hitter(i: int) -> None:
            nonlocal hits_meanwhile
            while not done.is_set():
                assert {"call": i + 1} == await small(i)
                hits_meanwhile += 1

        async def load_huge() -> str:
            try:
                return await huge()
            finally:
                done.set()

        loading = asyncio.create_task(load_huge())
        await asyncio.gather(*(hitter(i) for i in range(10)))
        assert 60 * 2**20 == len(await loading)
        assert hits_meanwhile >= 10
        statistics = cache.statistics()
        assert (True, 0, 10) == (statistics.backend_available, statistics.errors, counter.calls)
        assert None is await cache.get(huge.key())  # not stored
        assert 60 * 2**20 == len(await huge())  # so loaded again
        assert (12, 2) == (cache.statistics().loads, cache.statistics().oversized)
        assert 2 == metrics.value("scalepy.cache.values.oversized")


async def commands_during(
    client: RedisClient, action: Callable[[], Awaitable[object]]
) -> tuple[int, dict[str, int]]:
    """Run `action`; return the commands `client` sent and those its server ran, by name.

    The server's count comes from INFO commandstats, which counts the commands inside
    scripts too: use a private server, where nothing else runs. The RESETSTAT and
    INFO (sent on a connection of their own) are left out of both counts.
    """
    async with RedisClient.from_url(client.config) as admin:
        await admin.execute("CONFIG", "RESETSTAT")
        before = client.statistics().pipeline.commands
        await action()
        sent = client.statistics().pipeline.commands - before
        stats = (await admin.execute("INFO", "commandstats")).decode()
    calls = {
        line.split(":")[0].removeprefix("cmdstat_"): int(line.split("calls=")[1].split(",")[0])
        for line in stats.splitlines()
        if line.startswith("cmdstat_")
    }
    calls.pop("config|resetstat", None)
    calls.pop("config", None)
    return sent, calls


async def test_an_uncontended_miss_takes_its_lock_in_the_read(redis_server: RedisServer) -> None:
    """A miss nobody else loads: one read that also locks, one write that also unlocks.

    Two scripts: read-or-lock (the entry's GET and the lock's SET) and
    store-and-release (the entry's SET, the lock's GET and DEL); no separate lock
    attempt, re-read or unlock.
    """
    async with (
        RedisClient.from_url(redis_server.url) as client,
        Cache(client, namespace="miss") as cache,
    ):
        cached = cache.cached(ttl=60)(Counter())
        assert {"call": 1} == await cached(0)  # connects and loads both scripts

        async def miss() -> None:
            assert {"call": 2} == await cached(1)  # returns once stored and unlocked

        sent, calls = await commands_during(client, miss)
    assert (2, {"evalsha": 2, "set": 2, "get": 2, "del": 1}) == (sent, calls)


async def test_a_hit_is_one_read_and_writes_nothing(redis_server: RedisServer) -> None:
    """A Redis hit (L1 off) once lookups mostly hit: PTTL and GET in one round trip, no script.

    No lock, no write: the hit costs the server what a plain GET and a PTTL cost.
    """
    async with (
        RedisClient.from_url(redis_server.url) as client,
        Cache(client, namespace="hit") as cache,
    ):
        cached = cache.cached(ttl=60)(Counter())
        assert {"call": 1} == await cached(1)
        for _ in range(HITS_TO_SETTLE):
            await cached(1)

        async def hit() -> None:
            assert {"call": 1} == await cached(1)

        sent, calls = await commands_during(client, hit)
    assert (2, {"pttl": 1, "get": 1}) == (sent, calls)


HITS_TO_SETTLE = 40
"""Hits after which a new cache, expecting misses at first, reads without the lock."""


async def test_misses_after_hits_take_the_lock_in_the_read_again(redis_server: RedisServer) -> None:
    """A miss among hits takes the lock in a step of its own; a run of misses, in the read.

    The first miss after many hits reads plainly, then locks and re-reads in one
    round trip (SET NX, PTTL, GET), loads and stores: one load, the lock freed. A
    second miss in a row is read with the read-or-lock script again.
    """
    async with (
        RedisClient.from_url(redis_server.url) as client,
        Cache(client, namespace="mixed") as cache,
    ):
        counter = Counter()
        cached = cache.cached(ttl=60)(counter)
        await cached(0)
        for _ in range(HITS_TO_SETTLE):
            await cached(0)

        async def miss(item: int) -> None:
            assert {"call": item + 1} == await cached(item)

        first = await commands_during(client, lambda: miss(1))
        second = await commands_during(client, lambda: miss(2))
        store = cache.store
        assert isinstance(store, RedisCacheStore)
        assert None is await client.execute("GET", store.key(cached.key(1)) + ":lock")
    # PTTL+GET, then SET NX+PTTL+GET, then store-and-release (SET, GET, DEL inside)
    assert (6, {"pttl": 2, "get": 3, "set": 2, "evalsha": 1, "del": 1}) == first
    # read-or-lock (GET, SET NX inside), then store-and-release
    assert (2, {"evalsha": 2, "get": 2, "set": 2, "del": 1}) == second


lookups = st.lists(
    st.tuples(st.sampled_from(["call", "invalidate"]), st.integers(0, 3)), max_size=60
)


@settings(max_examples=25, deadline=None)
@given(warm=st.integers(0, HITS_TO_SETTLE), sequence=lookups)
def test_lookups_agree_with_a_dict_whichever_way_they_read(
    redis_url: str, cluster_url: str, warm: int, sequence: list[tuple[str, int]]
) -> None:
    """Calls and invalidations give a dict's answers, loading only what is missing.

    The cache reads with the lock or without it as its share of misses moves (`warm`
    hits of another key first move it towards reading without): either way a call
    returns the value stored since the last invalidation, loads exactly when the
    dict has nothing, and leaves no load lock behind.
    """

    async def check(url: str) -> None:
        model: dict[int, int] = {}
        loads = expected_loads = 0

        async def load(item: int) -> int:
            nonlocal loads
            loads += 1
            return loads

        async with Cache(url, namespace=f"lookups-{uuid.uuid4().hex}") as cache:
            store = cache.store
            assert isinstance(store, RedisCacheStore)
            cached = cache.cached(ttl=60)(load)
            for _ in range(warm):
                await cached(-1)
            expected_loads = loads
            for action, item in sequence:
                if action == "invalidate":
                    model.pop(item, None)
                    await cached.invalidate(item)
                    continue
                if item not in model:
                    expected_loads += 1
                    model[item] = expected_loads
                assert (model[item], expected_loads) == (await cached(item), loads)
                lock = store.key(cached.key(item)) + ":lock"
                assert None is await store.client.execute("GET", lock)

    asyncio.run(check(redis_url))
    asyncio.run(check(cluster_url))
