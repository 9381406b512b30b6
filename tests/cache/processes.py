"""Process entry points for the multi-process cache tests (run with spawn).

Each process builds its own `Cache` on one namespace, connects, then meets the
others at a barrier; nothing synchronises by sleeping. Loaders count their calls
with INCR in Redis, so the parent can count loads across every process. Times
are `time.monotonic()`, one system-wide clock on Linux, so the parent can
compare readings taken in different processes.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from typing import TYPE_CHECKING, Any

from scalepy.backends.redis import RedisClient
from scalepy.cache import Cache, MemoryCacheStore

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

Report = tuple[Any, ...]
CALLERS = 250
LOAD_TIME = 0.3  # seconds a stampede load takes: others must wait that long


def stampede(
    url: str, namespace: str, counter: str, barrier: Barrier, results: Queue[Report]
) -> None:
    """Process entry point: 250 concurrent callers of one cold key; report what they got."""
    results.put(asyncio.run(_stampede(url, namespace, counter, barrier)))


async def _stampede(url: str, namespace: str, counter: str, barrier: Barrier) -> Report:
    async with (
        Cache(url, namespace=namespace, timeout=1.0) as cache,
        RedisClient.from_url(url) as client,
    ):

        @cache.cached(ttl=60)
        async def report(report_id: int) -> dict[str, int]:
            load = int(await client.execute("INCR", counter))
            await asyncio.sleep(LOAD_TIME)  # a slow query
            return {"report": report_id, "load": load}

        await cache.get("warm-up")  # connected (and slots mapped) before the start
        await client.execute("GET", counter)
        await asyncio.to_thread(barrier.wait, 30)
        values = await asyncio.gather(*(report(7) for _ in range(CALLERS)))
        unique = sorted({value["load"] for value in values})
        return (unique, cache.statistics().loads)


def hot_key(
    url: str,
    namespace: str,
    loads: str,
    seconds: float,
    barrier: Barrier,
    results: Queue[Report],
) -> None:
    """Process entry point: hammer one hot key; report misses after the first value."""
    results.put(asyncio.run(_hot_key(url, namespace, loads, seconds, barrier)))


async def _hot_key(
    url: str, namespace: str, loads: str, seconds: float, barrier: Barrier
) -> Report:
    async with (
        Cache(url, namespace=namespace, jitter=0.0, timeout=1.0) as cache,
        RedisClient.from_url(url) as client,
    ):

        @cache.cached(ttl=1.0)
        async def popular() -> float:
            started = time.monotonic()
            await client.execute("RPUSH", loads, repr(started))
            await asyncio.sleep(0.1)  # the load takes 0.1 s
            return started

        await asyncio.to_thread(barrier.wait, 30)
        await popular()  # one process loads it, the others wait for that value
        await asyncio.to_thread(barrier.wait, 30)
        misses = cache.statistics().misses
        end = time.monotonic() + seconds

        async def caller() -> None:
            while time.monotonic() < end:
                await popular()
                await asyncio.sleep(0.002)  # pacing of the workload, not synchronisation

        await asyncio.gather(*(caller() for _ in range(20)))
        return (cache.statistics().misses - misses, cache.statistics().hits)


def coherence(
    index: int, url: str, namespace: str, barrier: Barrier, results: Queue[Report]
) -> None:
    """Process entry point: process 0 writes and invalidates, the others watch their L1."""
    results.put(asyncio.run(_coherence(index, url, namespace, barrier)))


async def _coherence(index: int, url: str, namespace: str, barrier: Barrier) -> Report:
    options: dict[str, Any] = {
        "namespace": namespace,
        "local_max_size": 100,
        "heartbeat": 0.1,
        "max_ttl": 600,  # tag versions expire after 1200 s: the test leaves nothing behind
    }
    async with Cache(url, **options) as cache:

        @cache.cached(ttl=600, key="user:{user_id}", tags=["users"])
        async def user(user_id: int) -> dict[str, Any]:
            return {"id": user_id, "version": 0, "loaded_at": time.monotonic()}

        @cache.cached(ttl=600, key="settings")
        async def settings() -> float:
            return time.monotonic()

        for _ in range(2):  # the second round comes from the L1
            held = [await user(1), await user(2), await settings()]
        await asyncio.to_thread(barrier.wait, 30)
        if index == 0:
            await cache.set("user:1", {"id": 1, "version": 1}, tags=["users"])
            set_at = time.monotonic()
            await asyncio.to_thread(barrier.wait, 30)  # the others saw it
            await cache.invalidate_tags("users")
            invalidated_at = time.monotonic()
            await asyncio.to_thread(barrier.wait, 30)
            return ("writer", set_at, invalidated_at, cache.staleness_bound)
        local_hits = cache.statistics().local_hits
        while (await user(1))["version"] != 1:  # noqa: ASYNC110 - another process writes
            await asyncio.sleep(0.001)
        saw_set = time.monotonic()
        await asyncio.to_thread(barrier.wait, 30)
        # Both users are reloaded (by any process) once the tag invalidation arrives.
        while (await user(1)).get("version") == 1 or await user(2) == held[1]:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        saw_invalidation = time.monotonic()
        kept = await settings() == held[2]
        await asyncio.to_thread(barrier.wait, 30)
        return ("reader", saw_set, saw_invalidation, local_hits, kept)


def profile(user_id: int) -> dict[str, Any]:
    """A typical small cached record: a dozen objects, about 170 bytes of JSON."""
    return {
        "id": user_id,
        "name": f"user-{user_id}",
        "email": f"user{user_id}@example.com",
        "roles": ["reader", f"team-{user_id % 97}"],
        "score": user_id * 1.5,
        "active": True,
        "org": {"id": user_id % 13, "name": "acme"},
    }


def fill_l1(count: int, bound: int, _: Barrier, results: Queue[Report]) -> None:
    """Process entry point: set and read back `count` distinct records.

    Reports the process' RSS growth and the L1's size.
    """
    results.put(asyncio.run(_fill_l1(count, bound)))


def _resident_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:  # Linux: pages resident
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _fill_l1(count: int, bound: int) -> Report:
    # The store keeps 64 entries: what the process grows by is the L1's.
    store = MemoryCacheStore(max_entries=64)
    options: dict[str, Any] = {
        "local_max_size": count,  # only the byte bound limits the L1
        "local_max_bytes": bound,
        "local_ttl": 600,
    }
    async with Cache(store, **options) as cache:
        await cache.set("warm-up", profile(-1), ttl=60)  # code paths warm
        gc.collect()
        before = _resident_bytes()
        for user_id in range(count):
            await cache.set(f"user:{user_id}", profile(user_id), ttl=60)
            await cache.get(f"user:{user_id}")  # the L1 holds what it reads back, decoded
        gc.collect()
        statistics = cache.statistics()
        return (_resident_bytes() - before, statistics.local_entries, statistics.local_bytes)
