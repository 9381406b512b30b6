"""Every metric a primitive emits at run time is in its catalogue; every catalogued one is defined.

Each test drives one primitive against real Redis (and PostgreSQL for the pools)
with a `RecordingInstrumentation`, which already refuses labels a metric does not
declare. It then compares what the primitive defined and recorded with its
catalogue: a metric added in code but not to the catalogue (and so not to the
docs) fails here, and so does a catalogue entry nothing defines any more.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from scalepy.backends.redis import RedisClient
from scalepy.breaker import CircuitBreaker, CircuitOpenError
from scalepy.bulkhead import Bulkhead
from scalepy.cache import Cache
from scalepy.health import Health, redis_check
from scalepy.pools import PoolManager
from scalepy.queue import Queue, Worker
from scalepy.ratelimit import Lease, RateLimiter, TokenBucket
from scalepy.retry import RetryPolicy, call
from scalepy.shedding import AIMD, LoadShedder, RequestShed
from scalepy.testing import RecordingInstrumentation, asgi_request
from tests.support.metrics import CATALOGUES, catalogue

if TYPE_CHECKING:
    from types import ModuleType

REDIS = frozenset(m.name for m in catalogue(CATALOGUES["Redis client"])[1])
"""What the Redis client a primitive builds from a URL defines: allowed beside its own."""
RETRY = frozenset(m.name for m in catalogue(CATALOGUES["Retry"])[1])
"""What the pools' startup retries define."""


def check_against(
    recording: RecordingInstrumentation, module: ModuleType, *, built_on: frozenset[str] = REDIS
) -> None:
    """Defined == the catalogue (plus what it is built on); recorded within that; some recorded."""
    own = {metric.name for metric in catalogue(module)[1]}
    defined = set(recording.metrics)
    recorded = {name for name, _, _ in recording.records}
    assert own <= defined, f"catalogued but never defined: {sorted(own - defined)}"
    assert set() == defined - own - built_on, "defined outside the catalogue"
    assert recorded <= defined
    assert recorded & own, "the scenario recorded none of the primitive's metrics"
    for name, metric in recording.metrics.items():  # one definition per name, the catalogue's
        if name in own:
            assert metric in catalogue(module)[1]


async def test_cache(redis_url: str, key_prefix: str) -> None:
    """A Redis cache with an L1: lookups, loads, invalidations, its bus."""
    recording = RecordingInstrumentation()
    cache = Cache(redis_url, namespace=key_prefix, local_max_size=10, instrumentation=recording)
    async with cache:

        @cache.cached(ttl=60, tags=["t"])
        async def double(x: int) -> int:
            return 2 * x

        assert [2, 2, 2] == [await double(1) for _ in range(3)]
        await cache.invalidate_tags("t")
        await cache.delete("k")
        await cache.clear()
    check_against(recording, CATALOGUES["Cache"])


async def test_rate_limiter(redis_url: str, key_prefix: str) -> None:
    """Decisions allowed and limited on Redis, by a limiter that leases (its lease metric)."""
    recording = RecordingInstrumentation()
    async with RateLimiter(
        redis_url, namespace=key_prefix, instrumentation=recording, lease=Lease()
    ) as limiter:
        bucket = TokenBucket(capacity=1, refill_rate=0.001)
        assert [True, False] == [(await limiter.acquire("k", bucket)).allowed for _ in range(2)]
    check_against(recording, CATALOGUES["Rate limiter"])


async def test_queue(redis_url: str, key_prefix: str) -> None:
    """A job enqueued, processed by a worker, and the queue's statistics."""
    recording = RecordingInstrumentation()
    async with Queue(redis_url, name=key_prefix, instrumentation=recording) as queue:

        @queue.task(name="t")
        async def echo(x: int) -> int:
            return x

        job = await echo.enqueue(1)
        async with Worker(queue):
            assert 1 == await job.result(timeout=10)
        await queue.stats()
    check_against(recording, CATALOGUES["Task queue"])


async def test_circuit_breaker() -> None:
    """A failure that opens the breaker, then a rejected call."""
    recording = RecordingInstrumentation()
    breaker = CircuitBreaker("db", minimum_calls=1, instrumentation=recording)

    async def fail() -> None:
        raise OSError("down")

    for expected in (OSError, CircuitOpenError):
        with pytest.raises(expected):
            async with breaker:
                await fail()
    check_against(recording, CATALOGUES["Circuit breaker"], built_on=frozenset())


async def test_retry() -> None:
    """A failed attempt retried, then a success."""
    recording = RecordingInstrumentation()
    attempts = iter((OSError("once"), None))

    async def flaky() -> None:
        error = next(attempts)
        if error is not None:
            raise error

    policy = RetryPolicy(retry_on=(OSError,), initial_backoff=0.001, max_backoff=0.001)
    await call(flaky, policy, instrumentation=recording)
    check_against(recording, CATALOGUES["Retry"], built_on=frozenset())


async def test_bulkhead() -> None:
    """One call through a bulkhead."""
    recording = RecordingInstrumentation()
    async with Bulkhead("db", max_concurrent=1, instrumentation=recording):
        await asyncio.sleep(0)
    check_against(recording, CATALOGUES["Bulkhead"], built_on=frozenset())


async def test_load_shedder() -> None:
    """A call through a load shedder with no free slot and no line: it is shed."""
    recording = RecordingInstrumentation()
    shedder = LoadShedder(
        "http", limit=AIMD(initial_limit=1), max_queue=0, instrumentation=recording
    )
    async with shedder.slot():
        with pytest.raises(RequestShed):
            await shedder.slot().__aenter__()
    check_against(recording, CATALOGUES["Load shedder"], built_on=frozenset())


async def test_health(redis_url: str) -> None:
    """A readiness probe of a Redis check."""
    recording = RecordingInstrumentation()
    async with RedisClient.from_url(redis_url) as client:
        health = Health([redis_check(client)], instrumentation=recording)
        async with health:
            health.mark_started()
            assert 200 == (await asgi_request(health.asgi, "/health/ready")).status
    check_against(recording, CATALOGUES["Health"], built_on=frozenset())


async def test_pools(postgres_dsn: str, redis_url: str) -> None:
    """A read from a PostgreSQL replica pool and a Redis command."""
    recording = RecordingInstrumentation()
    pools = PoolManager(
        postgres=postgres_dsn,
        postgres_replicas=[postgres_dsn],
        redis=redis_url,
        instrumentation=recording,
    )
    async with pools:
        async with pools.postgres.acquire(read_only=True) as connection:
            assert 1 == await connection.fetchval("SELECT 1")
        await pools.redis.execute("PING")
    check_against(recording, CATALOGUES["Connection pools"], built_on=REDIS | RETRY)


async def test_redis_client(redis_url: str) -> None:
    """Commands pipelined by a Redis client."""
    recording = RecordingInstrumentation()
    async with RedisClient.from_url(redis_url, instrumentation=recording) as client:
        await asyncio.gather(*(client.execute("PING") for _ in range(3)))
    check_against(recording, CATALOGUES["Redis client"], built_on=frozenset())


def test_every_catalogue_is_driven() -> None:
    """A new catalogue needs a scenario here."""
    driven = {
        "Cache", "Rate limiter", "Task queue", "Circuit breaker", "Retry", "Bulkhead",
        "Load shedder", "Health", "Connection pools", "Redis client",
    }  # fmt: skip
    assert driven == set(CATALOGUES)
