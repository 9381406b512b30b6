"""Module-level scalepy objects used from several event loops in a row, in a subprocess.

`python -m tests.support.loop_scenarios SCENARIO URL TOKEN` builds the scenario's objects
once, outside any loop (as a module would at import), then runs its step in three
`asyncio.run()` calls in a row and closes the objects in a fourth. Each step is
bounded by `STEP_BOUND` seconds; the caller also bounds the whole process, so a
regression fails instead of hanging. Exit status 0 means every step passed. Every
key the scenario writes holds TOKEN, so the caller can delete them afterwards.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from scalepy.backends.redis import RedisClient
from scalepy.breaker import CircuitBreaker, RedisSharedState
from scalepy.cache import Cache
from scalepy.queue import Queue, Worker
from scalepy.ratelimit import RateLimiter, TokenBucket
from scalepy.ratelimit.asgi import RateLimitMiddleware

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.requests import Request

STEP_BOUND = 10.0
STEPS = 3


class Scenario:
    """Objects made once, a step run in each loop, and how to close them."""

    def __init__(
        self,
        step: Callable[[int], Awaitable[None]],
        close: Callable[[], Awaitable[None]],
    ) -> None:
        self.step = step
        self.close = close


def redis_client(url: str, token: str) -> Scenario:
    """A RedisClient: pipelined commands and its redis-py client, in every loop."""
    client = RedisClient.from_url(url)
    key = f"scalepy-test:{token}:{{loops}}"

    async def step(number: int) -> None:
        assert b"OK" == await client.execute("SET", key, number, "PX", 60_000)
        assert str(number).encode() == await client.execute("GET", key)
        assert await client.redis.ping()

    return Scenario(step, client.aclose)


def cache(url: str, token: str) -> Scenario:
    """A Cache with L1 and Redis: values, and a coherent L1 (a live bus) in every loop."""
    shared = Cache(url, namespace=f"loops-{token}", local_max_size=100, heartbeat=0.1)
    loads: list[int] = []

    @shared.cached(ttl=60)
    async def double(number: int) -> int:
        loads.append(number)
        return 2 * number

    async def step(number: int) -> None:
        await shared.open()
        statistics = shared.statistics()
        assert (True, True) == (statistics.backend_available, statistics.local_coherent)
        assert [2 * number, 2 * number] == [await double(number), await double(number)]
        assert list(range(number + 1)) == loads  # the second call was a hit
        await shared.set("greeting", f"hello {number}")
        assert f"hello {number}" == await shared.get("greeting")

    return Scenario(step, shared.aclose)


def rate_limiter(url: str, token: str) -> Scenario:
    """A RateLimiter on Redis: the third acquire is denied, so Redis decided (not fail-open)."""
    limiter = RateLimiter(url, namespace=f"loops-{token}")
    policy = TokenBucket(capacity=2, refill_rate=0.001)

    async def step(number: int) -> None:
        decision = await limiter.acquire("client", policy)
        assert (number < 2) == decision.allowed

    return Scenario(step, limiter.aclose)


def queue(url: str, token: str) -> Scenario:
    """A Queue: a job enqueued and run by a worker started in every loop."""
    jobs = Queue(url, name=f"loops-{token}")

    @jobs.task()
    async def triple(number: int) -> int:
        return 3 * number

    async def step(number: int) -> None:
        job = await triple.enqueue(number)
        async with Worker(jobs, concurrency=2):
            assert 3 * number == await job.result(timeout=STEP_BOUND / 2)

    return Scenario(step, jobs.aclose)


def breaker(url: str, token: str) -> Scenario:
    """A circuit breaker sharing its state through Redis: syncs succeed in every loop."""
    shared = RedisSharedState(url, namespace=f"loops-{token}", flush_interval=0.1)
    guarded = CircuitBreaker("dependency", minimum_calls=4, shared=shared)

    @guarded
    async def call(number: int) -> int:
        return number

    async def step(number: int) -> None:
        await shared.open()
        assert number == await call(number)
        await shared.sync()
        assert shared.statistics().syncs >= 1

    return Scenario(step, guarded.aclose)


def middleware(url: str, token: str) -> Scenario:
    """Starlette's TestClient without `with`: each request runs in an event loop of its own."""
    limiter = RateLimiter(url, namespace=f"loops-{token}")

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/", home)])
    app.add_middleware(
        RateLimitMiddleware, limiter=limiter, policy=TokenBucket(capacity=2, refill_rate=0.001)
    )
    client = TestClient(app)

    async def step(number: int) -> None:
        # The request runs in the TestClient's own loop (a thread); this loop just waits.
        response = await asyncio.to_thread(client.get, "/")
        assert (200 if number < 2 else 429) == response.status_code

    return Scenario(step, limiter.aclose)


SCENARIOS: dict[str, Callable[[str, str], Scenario]] = {
    "redis_client": redis_client,
    "cache": cache,
    "rate_limiter": rate_limiter,
    "queue": queue,
    "breaker": breaker,
    "middleware": middleware,
}


async def bounded(awaitable: Awaitable[Any]) -> None:
    """Await `awaitable` for at most STEP_BOUND seconds."""
    async with asyncio.timeout(STEP_BOUND):
        await awaitable


def main(name: str, url: str, token: str) -> None:
    """Build the scenario outside any loop, run its step in STEPS loops, close it in one more."""
    scenario = SCENARIOS[name](url, token)
    for number in range(STEPS):
        asyncio.run(bounded(scenario.step(number)))
    asyncio.run(bounded(scenario.close()))


if __name__ == "__main__":
    main(*sys.argv[1:4])
