"""Four primitives on one shared RedisClient against four clients: throughput and connections.

Run (services up, see scripts/services.sh):

    .venv/bin/python benchmarks/one_client.py [--url redis://127.0.0.1:6379/0]
        [--seconds 2] [--rounds 3]

One operation is what a request of a service might do: a cache read, a rate-limit
decision, an enqueue, all concurrently, inside a breaker that shares its state
through Redis. "one client" builds the cache, the limiter, the queue and the
breaker's shared state on one `RedisClient`; "four clients" gives each its own URL,
as before issue 13. Connections are counted with `CLIENT LIST` by client name:
every connection, then those subscribed (flag `P`: the shared breaker's
subscription, on a command connection since subscriptions share it over RESP3).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import TYPE_CHECKING, Any

from _harness import Operation, median_throughputs, redis_options
from scalepy.backends.redis import RedisClient
from scalepy.breaker import CircuitBreaker, RedisSharedState
from scalepy.cache import Cache
from scalepy.queue import Queue
from scalepy.ratelimit import RateLimiter, TokenBucket

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

HUGE = 1_000_000  # requests per second: never limited during the run


@contextlib.asynccontextmanager
async def primitives(url: str, name: str, *, shared: bool) -> AsyncIterator[Operation]:
    """The four primitives on one client (or one each), as one request's operation."""
    named = f"{url}{'&' if '?' in url else '?'}client_name={name}"
    client = RedisClient.from_url(named)
    backend: Any = client if shared else named
    cache = Cache(backend, namespace=name)
    limiter = RateLimiter(backend, namespace=name)
    queue = Queue(backend, name=name)
    state = RedisSharedState(backend, namespace=name)
    breaker = CircuitBreaker(f"{name}-db", shared=state)
    bucket = TokenBucket(capacity=HUGE, refill_rate=float(HUGE))

    @queue.task
    async def noop() -> None: ...

    await cache.set("hot", {"id": 1}, ttl=600)
    await state.open()

    async def operation() -> None:
        async with breaker:
            await asyncio.gather(
                cache.get("hot"), limiter.acquire("client", bucket), noop.enqueue()
            )

    try:
        yield operation
    finally:
        for resource in (breaker, queue, limiter, cache):
            await resource.aclose()
        async for key in client.redis.scan_iter(match=f"*{name}*", count=1000):
            await client.execute("DEL", key)
        await client.aclose()


async def connections(url: str, name: str) -> tuple[int, int]:
    """Connections named `name` on the server of `url`, and how many are subscribed."""
    async with RedisClient.from_url(url) as observer:
        entries = await observer.redis.client_list()
    named = [entry for entry in entries if entry["name"] == name]
    return len(named), sum(1 for entry in named if "P" in entry["flags"])


async def main() -> None:
    parser = redis_options(__doc__, seconds=2.0)
    options = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    one, four = f"bench-one-{run}", f"bench-four-{run}"
    async with (
        primitives(options.url, one, shared=True) as on_one,
        primitives(options.url, four, shared=False) as on_four,
    ):
        contenders = {"one client": on_one, "four clients": on_four}
        print(
            f"{'contender':<13} {'tasks':>5} {'requests/s':>11} {'conns':>6} {'subscribed':>10}"
            f" {'errors/fallbacks':>16}"
        )
        for tasks in (1, 50):
            medians = await median_throughputs(contenders, tasks, options.seconds, options.rounds)
            for label, name in (("one client", one), ("four clients", four)):
                held = await connections(options.url, name)
                value, errors = medians[label]
                print(
                    f"{label:<13} {tasks:>5} {value:>11,.0f} {held[0]:>6} {held[1]:>10}"
                    f" {errors:>16,}"
                )


if __name__ == "__main__":
    asyncio.run(main())
