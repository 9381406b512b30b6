"""Exactness under contention: 8 processes x 50 tasks on one key admit exactly the quota.

Each process opens its own RedisClient, connects, then waits at a barrier so all
start hammering at once; nothing here synchronises by sleeping.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import pytest

from scalepy.backends.redis import RedisClient
from scalepy.ratelimit import RedisRateLimitStore, SlidingWindow, TokenBucket
from tests.support.processes import run_processes

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

    from scalepy.ratelimit import Policy

PROCESSES = 8
TASKS = 50
ATTEMPTS = 3  # per task: 1200 requests in all
BUCKET = TokenBucket(capacity=100, refill_rate=0.001)  # one token per 1000 s: no refill
WINDOW = SlidingWindow(limit=60, window=3600)


def hammer(
    url: str,
    namespace: str,
    policies: tuple[Policy, ...],
    barrier: Barrier,
    results: Queue[int],
) -> None:
    """Process entry point: report how many of this process' requests were allowed."""
    results.put(asyncio.run(_hammer(url, namespace, policies, barrier)))


async def _hammer(url: str, namespace: str, policies: tuple[Policy, ...], barrier: Barrier) -> int:
    async with RedisClient.from_url(url) as client:
        store = RedisRateLimitStore(client, namespace=namespace)
        await store.acquire("shared", policies, 0)  # connected (and slots mapped) first
        await asyncio.to_thread(barrier.wait, 30)

        async def task() -> int:
            allowed = 0
            for _ in range(ATTEMPTS):
                decisions = await store.acquire("shared", policies, 1)
                allowed += all(decision.allowed for decision in decisions)
            return allowed

        return sum(await asyncio.gather(*(task() for _ in range(TASKS))))


def allowed_in_total(url: str, namespace: str, policies: tuple[Policy, ...]) -> int:
    """Run the processes against one key and sum what they were allowed."""
    counts: list[int] = run_processes(
        hammer, PROCESSES, lambda _, barrier, results: (url, namespace, policies, barrier, results)
    )
    return sum(counts)


async def stored_state(url: str, namespace: str) -> tuple[int, tuple[int, int]]:
    """Return (bucket tokens taken, (window current, previous count)) as stored in Redis."""
    async with RedisClient.from_url(url) as client:
        store = RedisRateLimitStore(client, namespace=namespace)
        tat = int(await client.execute("GET", store.key("shared", BUCKET)))
        seconds, micros = await client.execute("TIME")
        now = int(seconds) * 1_000_000 + int(micros)
        interval = 1_000_000_000  # BUCKET's emission interval in us
        taken = -(-(tat - now) // interval)  # ceil: whole tokens not yet refilled
        window = await client.execute("GET", store.key("shared", WINDOW))
        _, current, previous = (int(part) for part in window.split(b":"))
        await store.reset("shared", (BUCKET, WINDOW))
        return taken, (current, previous)


@pytest.mark.parametrize("target", ["standalone", "cluster"])
def test_one_bucket_admits_exactly_its_capacity(
    target: str, redis_url: str, cluster_url: str
) -> None:
    """1200 concurrent requests from 8 processes: exactly 100 get through."""
    url = redis_url if target == "standalone" else cluster_url
    namespace = f"exactness:{uuid.uuid4().hex}"
    assert 100 == allowed_in_total(url, namespace, (BUCKET,))


def test_several_policies_are_never_over_consumed(redis_url: str) -> None:
    """Bucket of 100 plus window of 60: exactly 60 pass, and each policy counted exactly 60."""
    namespace = f"exactness:{uuid.uuid4().hex}"
    assert 60 == allowed_in_total(redis_url, namespace, (BUCKET, WINDOW))
    taken, (current, previous) = asyncio.run(stored_state(redis_url, namespace))
    assert 60 == taken
    assert 60 == current + previous  # previous > 0 only if a window boundary fell mid-run
