"""One toolkit, one wiring: every primitive takes a shared `RedisClient`, resolved in one place."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest
from redis.asyncio import Redis

from scalepy.backends import MemoryConfig, RedisClusterConfig, parse_backend_url
from scalepy.backends.redis import RedisClient
from scalepy.breaker import CircuitBreaker, RedisSharedState
from scalepy.cache import Cache, MemoryCacheStore, RedisCacheStore
from scalepy.errors import BackendTimeout, BackendUnavailable, ConfigurationError
from scalepy.pools import PoolManager
from scalepy.queue import MemoryQueueStore, Queue, RedisQueueStore, Worker
from scalepy.ratelimit import MemoryRateLimitStore, RateLimiter, RedisRateLimitStore, TokenBucket
from scalepy.testing import RecordingInstrumentation

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable


@pytest.fixture(params=["standalone", "cluster"])
def server_url(request: pytest.FixtureRequest, redis_url: str, cluster_url: str) -> str:
    """The shared test server's URL, then the cluster's."""
    return redis_url if request.param == "standalone" else cluster_url


@pytest.fixture
async def named_client(server_url: str) -> AsyncIterator[RedisClient]:
    """A client whose connections carry a name no other test uses (see `CLIENT LIST`)."""
    name = f"scalepy-wiring-{uuid.uuid4().hex[:12]}"
    async with RedisClient.from_url(f"{server_url}?client_name={name}") as client:
        yield client


async def _connections(
    client: RedisClient, *, suffix: str = ""
) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """`CLIENT LIST` entries named like `client`'s (plus `suffix`), per server holding any.

    Every cluster primary is asked; one holding none of them is left out.
    """
    config = client.config
    if isinstance(config, RedisClusterConfig):
        host, port = config.nodes[0]
        async with RedisClient.from_url(f"redis://{host}:{port}/0") as seed:
            slots: list[Any] = await seed.execute("CLUSTER", "SLOTS")
        servers = {(entry[2][0].decode() or host, int(entry[2][1])) for entry in slots}
    else:
        servers = {(config.host, config.port)}
    seen: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for host, port in sorted(servers):
        async with Redis(host=host, port=port) as observer:
            entries = await observer.client_list()
        name = f"{config.client_name}{suffix}"
        named = [entry for entry in entries if entry["name"] == name]
        if named:
            seen[host, port] = named
    return seen


async def test_every_primitive_runs_on_one_connection_per_server(
    named_client: RedisClient, key_prefix: str
) -> None:
    """Cache (L1 + bus), limiter, queue (worker, result waiter), shared breaker: one connection.

    Commands and subscriptions (the cache's invalidation bus, the breaker's events,
    the queue's wake-ups and settled jobs) share the client's one RESP3 connection
    per server it talks to (on a cluster: the nodes owning the keys and channels
    used). The worker's heartbeat thread runs its own event loop, so that a job
    blocking the worker's loop cannot lose its lease: it holds the one other
    connection (once it has leases to renew), named apart.
    """
    namespace = key_prefix.replace(":", "-")
    cache = Cache(named_client, namespace=namespace, local_max_size=100)
    limiter = RateLimiter(named_client, namespace=namespace)
    queue = Queue(named_client, name=namespace)
    shared = RedisSharedState(named_client, namespace=namespace, flush_interval=0.05)
    breaker = CircuitBreaker(f"{namespace}-db", shared=shared)

    @queue.task
    async def double(number: int) -> int:
        return 2 * number

    await shared.open()
    await cache.set("answer", 42)
    assert 42 == await cache.get("answer")
    assert 42 == await cache.get("answer")  # from L1, kept coherent by the bus
    assert (await limiter.acquire("client", TokenBucket(10, 1.0))).allowed
    job = await double.enqueue(21)
    async with Worker(queue, concurrency=1, stats_interval=None):
        assert 42 == await job.result(timeout=10)
        await shared.sync()
        async with breaker:
            pass
        servers = await _connections(named_client)
        heartbeats = await _connections(named_client, suffix=":heartbeat")
        subscribed = [e for entries in servers.values() for e in entries if "P" in e["flags"]]
    assert [] == [server for server, entries in servers.items() if len(entries) != 1]
    assert [] == [server for server, entries in heartbeats.items() if len(entries) > 1]
    assert 1 <= len(subscribed)  # the subscriptions ride the command connections
    assert {"3"} == {e["resp"] for entries in servers.values() for e in entries}
    for resource in (breaker, queue, limiter, cache):
        await resource.aclose()
    assert await named_client.ping()  # none of them closed the shared client


async def test_a_view_keeps_its_own_timeout_over_the_parents_connection(
    named_client: RedisClient,
) -> None:
    """`with_timeout` bounds the view's commands only; closing the view leaves the parent open."""
    view = named_client.with_timeout(0.05)
    assert 0.05 == view.config.timeout
    assert 1.0 == named_client.config.timeout
    with pytest.raises(BackendTimeout):
        await view.execute("BLPOP", f"scalepy-test:{uuid.uuid4().hex}:empty", 0.3)
    await view.aclose()
    assert await named_client.ping()
    assert await view.ping()  # a closed view released nothing: it still works
    servers = await _connections(named_client)
    assert [] == [server for server, entries in servers.items() if len(entries) > 1]
    commands = named_client.statistics().pipeline.commands
    assert commands == view.statistics().pipeline.commands  # one pipeline, one set of counters


async def test_a_view_made_to_close_its_parent_closes_it(redis_url: str) -> None:
    """`with_timeout(..., close_parent=True)`: what a primitive given `owns_client=True` holds."""
    client = RedisClient.from_url(redis_url)
    await client.with_timeout(0.5, close_parent=True).aclose()
    with pytest.raises(BackendUnavailable):
        await client.ping()


@pytest.mark.parametrize("owns_client", [False, True])
@pytest.mark.parametrize(
    "build",
    [
        lambda client, owns: Cache(client, namespace="wiring", owns_client=owns),
        lambda client, owns: RateLimiter(client, namespace="wiring", owns_client=owns),
        lambda client, owns: Queue(client, name="wiring", owns_client=owns),
        lambda client, owns: RedisSharedState(client, namespace="wiring", owns_client=owns),
    ],
    ids=["cache", "limiter", "queue", "shared-breaker"],
)
async def test_a_primitive_closes_a_given_client_only_when_it_owns_it(
    redis_url: str, build: Callable[[RedisClient, bool], Any], owns_client: bool
) -> None:
    """A given client outlives its primitive unless the primitive was told it owns it."""
    client = RedisClient.from_url(redis_url)
    primitive = build(client, owns_client)
    assert await client.ping()
    await primitive.aclose()
    if owns_client:
        with pytest.raises(BackendUnavailable):
            await client.ping()
    else:
        assert await client.ping()
        await client.aclose()


async def test_a_pool_manager_shares_a_given_client(redis_url: str) -> None:
    """`PoolManager(redis=client)` opens and checks it, and leaves it open when closing."""
    async with RedisClient.from_url(redis_url) as client:
        async with PoolManager(redis=client) as pools:
            assert client is pools.redis
        assert await client.ping()


async def test_a_limiter_built_from_a_url_reports_its_client_to_the_instrumentation(
    redis_url: str, key_prefix: str
) -> None:
    """The limiter's Redis client sends its pipeline metrics where the limiter sends its own."""
    instrumentation = RecordingInstrumentation()
    namespace = key_prefix.replace(":", "-")
    async with RateLimiter(redis_url, namespace=namespace, instrumentation=instrumentation) as lim:
        await lim.acquire("client", TokenBucket(10, 1.0))
    assert 1 <= instrumentation.count("scalepy.redis.pipeline.size")


@pytest.mark.parametrize(
    "build",
    [
        lambda namespace: Cache("memory://", namespace=namespace),
        lambda namespace: RateLimiter("memory://", namespace=namespace),
        lambda namespace: RedisSharedState("redis://127.0.0.1:1/0", namespace=namespace),
    ],
    ids=["cache", "limiter", "shared-breaker"],
)
@pytest.mark.parametrize("namespace", ["{x}", "a}b", ""])
def test_every_primitive_refuses_the_same_namespaces_at_once(
    build: Callable[[str], object], namespace: str
) -> None:
    """A namespace with a brace, or an empty one, fails in the constructor on any backend."""
    with pytest.raises(ConfigurationError, match="namespace must be a non-empty string without"):
        build(namespace)


async def test_every_primitive_defaults_to_memory() -> None:
    """Without a backend, the cache, the limiter and the queue live in this process."""
    cache, limiter, queue = Cache(), RateLimiter(), Queue()
    assert isinstance(cache.store, MemoryCacheStore)
    assert isinstance(limiter.store, MemoryRateLimitStore)
    assert MemoryConfig() == queue.config
    for resource in (cache, limiter, queue):
        await resource.aclose()


async def test_the_redis_stores_are_public_names(redis_url: str) -> None:
    """The stores a URL builds are the classes their primitive's package exports."""
    async with Cache(redis_url) as cache, RateLimiter(redis_url) as limiter:
        assert isinstance(cache.store, RedisCacheStore)
        assert isinstance(limiter.store, RedisRateLimitStore)
    async with Queue(redis_url) as queue, Queue() as memory_queue:
        assert isinstance(queue.store, RedisQueueStore)
        assert isinstance(memory_queue.store, MemoryQueueStore)


@pytest.mark.parametrize(
    ("build", "user"),
    [
        (lambda: RedisSharedState(parse_backend_url("memory://")), "RedisSharedState"),
        (lambda: PoolManager(redis="memory://"), "PoolManager redis 'default'"),
        (lambda: PoolManager(redis={"jobs": "memory://"}), "PoolManager redis 'jobs'"),
    ],
)
def test_what_needs_redis_refuses_memory_alike(build: Callable[[], object], user: str) -> None:
    """Shared breaker state and pooled Redis fail at once on `memory://`, in the same words."""
    with pytest.raises(ConfigurationError) as refused:
        build()
    expected = f"{user} needs Redis: give a Redis URL or a RedisClient, not memory://"
    assert expected == str(refused.value)


@pytest.mark.parametrize(
    ("build", "protocol"),
    [(Cache, "CacheStore"), (RateLimiter, "RateLimitStore"), (Queue, "QueueStore")],
)
async def test_a_redis_py_client_as_backend_is_refused_with_the_way_in(
    build: Callable[[Any], object], protocol: str, redis_url: str
) -> None:
    """A redis-py client where a backend goes raises ConfigurationError naming what is accepted.

    It used to be taken for a store: the cache then failed open on every call (the
    function ran each time, silently), the limiter and the queue failed on first use.
    """
    client = Redis.from_url(redis_url)
    try:
        with pytest.raises(ConfigurationError) as raised:
            build(client)
    finally:
        await client.aclose()
    message = str(raised.value)
    assert (True, True, True) == (
        f"a scalepy RedisClient or a {protocol}" in message,
        "got a redis.asyncio.client.Redis" in message,
        "RedisClient.from_url(url)" in message,
    )


def test_an_object_that_is_no_store_is_refused() -> None:
    """Any other object where a backend goes is refused too, not kept as a store."""
    with pytest.raises(ConfigurationError, match=r"got a builtins\.dict$"):
        Cache({"url": "redis://127.0.0.1:6379/0"})  # type: ignore[arg-type]  # the misuse


def test_a_none_backend_hints_at_an_unset_environment_variable() -> None:
    """`Cache(os.environ.get("REDIS_URL"))` with the variable unset names the likely cause."""
    with pytest.raises(ConfigurationError, match=r"NoneType \(None: is the environment variable"):
        Cache(None)  # type: ignore[arg-type]  # the misuse under test
