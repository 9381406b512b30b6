"""One lifecycle: `async with`, `open()`, `aclose()` on every stateful object, and hooks."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

# The internal base every stateful object shares; the tests below check each against it.
from scalepy._lifecycle import AsyncResource
from scalepy.backends.redis import RedisClient
from scalepy.breaker import CircuitBreaker, RedisSharedState
from scalepy.cache import Cache
from scalepy.errors import NoWorkerState, ResourceClosedError, UsageError
from scalepy.health import Health
from scalepy.pools import PoolManager, PoolOptions
from scalepy.queue import Queue, Worker, worker_state
from scalepy.ratelimit import RateLimiter
from tests.pools.helpers import unique_name, wait_for_backends

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


def _namespace(key_prefix: str) -> str:
    return key_prefix.replace(":", "-")


def _cache(redis_url: str, postgres_dsn: str, key_prefix: str) -> AsyncResource:
    return Cache(redis_url, namespace=_namespace(key_prefix), local_max_size=10)


def _limiter(redis_url: str, postgres_dsn: str, key_prefix: str) -> AsyncResource:
    return RateLimiter(redis_url, namespace=_namespace(key_prefix))


def _queue(redis_url: str, postgres_dsn: str, key_prefix: str) -> AsyncResource:
    return Queue(redis_url, name=_namespace(key_prefix))


def _client(redis_url: str, postgres_dsn: str, key_prefix: str) -> AsyncResource:
    return RedisClient.from_url(redis_url)


def _shared(redis_url: str, postgres_dsn: str, key_prefix: str) -> AsyncResource:
    shared = RedisSharedState(redis_url, namespace=_namespace(key_prefix))
    CircuitBreaker("db", shared=shared)
    return shared


def _pools(redis_url: str, postgres_dsn: str, key_prefix: str) -> AsyncResource:
    return PoolManager(postgres=postgres_dsn, redis=redis_url)


def _health(redis_url: str, postgres_dsn: str, key_prefix: str) -> AsyncResource:
    return Health()


def _worker(redis_url: str, postgres_dsn: str, key_prefix: str) -> AsyncResource:
    return Worker(Queue("memory://", name="lifecycle"), stats_interval=None)


BUILDERS = {
    "cache": _cache,
    "rate_limiter": _limiter,
    "queue": _queue,
    "redis_client": _client,
    "shared_breaker_state": _shared,
    "pool_manager": _pools,
    "health": _health,
    "worker": _worker,
}


@pytest.mark.parametrize("kind", list(BUILDERS))
async def test_every_stateful_object_opens_and_closes_once(
    kind: str, redis_url: str, postgres_dsn: str, key_prefix: str
) -> None:
    """Entering opens; open() again does nothing; aclose() twice is harmless; no reopen."""
    resource = BUILDERS[kind](redis_url, postgres_dsn, key_prefix)

    async with resource as entered:
        await resource.open()
        assert resource is entered
    await resource.aclose()

    with pytest.raises(ResourceClosedError, match="is closed"):
        await resource.open()


class _Gated(AsyncResource):
    """A resource whose close waits for a gate, counting the closes that ran."""

    def __init__(self) -> None:
        self.closes = 0
        self.closing = asyncio.Event()
        self.gate = asyncio.Event()

    async def _aclose(self) -> None:
        self.closes += 1
        self.closing.set()
        await self.gate.wait()


async def test_concurrent_acloses_share_one_close_and_all_wait_for_it() -> None:
    """Two aclose() calls run one close; neither returns before it finished."""
    resource = _Gated()
    first = asyncio.create_task(resource.aclose())
    second = asyncio.create_task(resource.aclose())
    await resource.closing.wait()

    done, _ = await asyncio.wait({first, second}, timeout=0.05)
    assert set() == done
    resource.gate.set()
    await asyncio.gather(first, second)

    assert 1 == resource.closes


async def test_a_cancelled_aclose_leaves_the_object_closing_then_closed() -> None:
    """Cancelling the caller does not cancel the close: a later aclose() joins it."""
    resource = _Gated()
    closing = asyncio.create_task(resource.aclose())
    await resource.closing.wait()

    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    resource.gate.set()
    await resource.aclose()

    assert 1 == resource.closes


async def test_aclose_during_open_cancels_the_opening() -> None:
    """An opening still running when aclose() is called is cancelled, then the close runs."""
    started = asyncio.Event()

    class Slow(AsyncResource):
        closed = False

        async def _open(self) -> None:
            started.set()
            await asyncio.Event().wait()  # never opens

        async def _aclose(self) -> None:
            self.closed = True

    resource = Slow()
    opening = asyncio.create_task(resource.open())
    await started.wait()
    await resource.aclose()

    with pytest.raises(asyncio.CancelledError):
        await opening
    assert resource.closed


@pytest.fixture
async def pools_with_a_lent_connection(
    postgres_dsn: str,
) -> AsyncIterator[tuple[PoolManager, asyncio.Event, asyncio.Task[int], str]]:
    """An open PoolManager (2 sessions) with a connection lent until the event is set."""
    app_name = unique_name()
    pools = PoolManager(
        postgres=postgres_dsn, options=PoolOptions(application_name=app_name, min_size=2)
    )
    await pools.open()
    release, lent = asyncio.Event(), asyncio.Event()

    async def work() -> int:
        async with pools.postgres.acquire() as connection:
            lent.set()
            await release.wait()
            value: int = await connection.fetchval("SELECT 42")
            return value

    task = asyncio.create_task(work())
    await lent.wait()
    yield pools, release, task, app_name
    release.set()
    await pools.aclose(grace=0)


async def test_a_second_pool_manager_aclose_waits_for_the_first(
    pools_with_a_lent_connection: tuple[PoolManager, asyncio.Event, asyncio.Task[int], str],
    postgres_dsn: str,
) -> None:
    """aclose() while another aclose() drains returns only once the pools are closed."""
    pools, release, work, app_name = pools_with_a_lent_connection
    first = asyncio.create_task(pools.aclose(grace=10))
    second = asyncio.create_task(pools.aclose())

    done, _ = await asyncio.wait({second}, timeout=0.1)
    assert set() == done  # the lent connection is still out
    release.set()
    await asyncio.gather(first, second)

    assert 42 == await work
    assert 0 == await wait_for_backends(postgres_dsn, app_name, 0)


async def test_a_cancelled_pool_manager_aclose_still_closes_the_pools(
    pools_with_a_lent_connection: tuple[PoolManager, asyncio.Event, asyncio.Task[int], str],
    postgres_dsn: str,
) -> None:
    """The caller of aclose() is cancelled mid-drain: the pools still drain and close."""
    pools, release, work, app_name = pools_with_a_lent_connection
    closing = asyncio.create_task(pools.aclose(grace=10))
    done, _ = await asyncio.wait({closing}, timeout=0.1)
    assert set() == done

    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    release.set()
    assert 42 == await work
    await pools.aclose()  # joins the close the cancelled caller started

    assert 0 == await wait_for_backends(postgres_dsn, app_name, 0)


class _RecordedPools(PoolManager):
    log: list[str]

    async def _open(self) -> None:
        self.log.append("open pools")
        await super()._open()

    async def aclose(self, grace: float | None = None) -> None:
        self.log.append("close pools")
        await super().aclose(grace)


class _RecordedCache(Cache):
    log: list[str]

    async def _open(self) -> None:
        self.log.append("open cache")
        await super()._open()

    async def _aclose(self) -> None:
        self.log.append("close cache")
        await super()._aclose()


class _RecordedQueue(Queue):
    log: list[str]

    async def _open(self) -> None:
        self.log.append("open queue")
        await super()._open()

    async def _aclose(self) -> None:
        self.log.append("close queue")
        await super()._aclose()


async def test_the_health_lifespan_opens_resources_in_order_and_closes_them_in_reverse(
    redis_url: str, postgres_dsn: str, key_prefix: str
) -> None:
    """Startup opens pools, cache, queue (the cache's L1 is coherent at once); shutdown reverses."""
    log: list[str] = []
    pools = _RecordedPools(postgres=postgres_dsn, redis=redis_url)
    cache = _RecordedCache(pools.redis, namespace=_namespace(key_prefix), local_max_size=10)
    queue = _RecordedQueue(pools.redis, name=_namespace(key_prefix))
    for resource in (pools, cache, queue):
        resource.log = log
    lifespan = Health().lifespan(resources=[pools, cache, queue])

    async with lifespan(object()):
        log.append("serving")
        assert cache.statistics().local_coherent  # the invalidation channel listens
        assert 1 == await pools.postgres.fetchval("SELECT 1")

    assert [
        "open pools",
        "open cache",
        "open queue",
        "serving",
        "close queue",
        "close cache",
        "close pools",
    ] == log


async def test_worker_hooks_give_tasks_a_postgres_pool(
    redis_url: str, postgres_dsn: str, key_prefix: str
) -> None:
    """The startup hook opens a PoolManager that tasks read (worker_state()); shutdown closes it."""
    app_name = unique_name()
    queue = Queue(redis_url, name=_namespace(key_prefix))
    calls: list[str] = []

    @queue.task
    async def add(a: int, b: int) -> int:
        pools = worker_state(PoolManager)
        total: int = await pools.postgres.fetchval("SELECT $1::int + $2::int", a, b)
        return total

    async def startup() -> PoolManager:
        calls.append("startup")
        pools = PoolManager(postgres=postgres_dsn, options=PoolOptions(application_name=app_name))
        await pools.open()
        return pools

    async def shutdown(pools: PoolManager) -> None:
        calls.append("shutdown")
        await pools.aclose()

    async with queue, Worker(queue, startup=startup, shutdown=shutdown, stats_interval=None):
        assert ["startup"] == calls  # open() returned after the hook
        job = await add.enqueue(2, 3)
        assert 5 == await job.result(timeout=10)

    assert ["startup", "shutdown"] == calls
    assert 0 == await wait_for_backends(postgres_dsn, app_name, 0)


async def test_a_failing_worker_startup_fails_open_and_claims_nothing(
    redis_url: str, key_prefix: str
) -> None:
    """open() raises what startup raised; the job stays queued."""
    queue = Queue(redis_url, name=_namespace(key_prefix))

    @queue.task
    async def noop() -> None: ...

    async def startup() -> None:
        raise ConnectionError("no database")

    async with queue:
        await noop.enqueue()
        worker = Worker(queue, startup=startup, stats_interval=None)
        with pytest.raises(ConnectionError, match="no database"):
            await worker.open()
        await worker.aclose()
        assert 1 == (await queue.stats()).queued


async def test_worker_state_outside_a_hooked_worker_is_a_lookup_error() -> None:
    """No startup hook, no state: NoWorkerState (a LookupError); the wrong type: UsageError.

    Both say what to do; the missing state raised a bare LookupError naming a ContextVar.
    """
    queue = Queue("memory://", name="lifecycle-state")
    seen: list[BaseException] = []

    @queue.task
    async def read() -> None:
        try:
            worker_state(PoolManager)
        except LookupError as exc:
            seen.append(exc)

    @queue.task
    async def misread() -> None:
        try:
            worker_state(PoolManager)
        except TypeError as exc:
            seen.append(exc)

    async with Worker(queue, stats_interval=None):
        await (await read.enqueue()).result(timeout=5)

    async def startup() -> str:
        return "not a pool manager"

    async with Worker(queue, startup=startup, stats_interval=None):
        await (await misread.enqueue()).result(timeout=5)

    assert [NoWorkerState, UsageError] == [type(exc) for exc in seen]
    assert (True, True) == (
        "worker_state() works inside a task run by a Worker given startup=" in str(seen[0]),
        "the worker's state is a str, not a PoolManager" in str(seen[1]),
    )


@pytest.mark.parametrize(
    ("kind", "verb"),
    [("cache", "start"), ("pool_manager", "close"), ("shared_breaker_state", "start")],
)
async def test_old_verbs_still_work_and_warn(
    kind: str, verb: str, redis_url: str, postgres_dsn: str, key_prefix: str
) -> None:
    """Cache.start, PoolManager.close and RedisSharedState.start warn and do the new verb."""
    resource = BUILDERS[kind](redis_url, postgres_dsn, key_prefix)

    with pytest.warns(DeprecationWarning, match="is deprecated, use"):
        await getattr(resource, verb)()
    await resource.aclose()


async def test_health_start_still_works_and_warns() -> None:
    """Health.start() (sync) warns and starts the lag monitor, like await health.open()."""
    health = Health()

    with pytest.warns(DeprecationWarning, match=r"Health.start\(\) is deprecated"):
        health.start()
    await health.aclose()


@pytest.mark.parametrize(
    "build", [Cache, RateLimiter, Queue, lambda: PoolManager(redis="redis://127.0.0.1:1")]
)
def test_with_instead_of_async_with_says_async_with(build: Any) -> None:
    """`with obj:` on a lifecycle object raises UsageError naming `async with` (not TypeError)."""
    resource = build()
    expected = f"a {type(resource).__name__} is entered with `async with`"
    with pytest.raises(UsageError, match=expected), resource:
        pass
