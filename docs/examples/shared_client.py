"""One RedisClient for the cache, the rate limiter, the queue and a shared breaker."""

from __future__ import annotations

import asyncio
import os
import uuid

from scalepy.backends.redis import RedisClient
from scalepy.breaker import CircuitBreaker, RedisSharedState
from scalepy.cache import Cache
from scalepy.queue import Queue
from scalepy.ratelimit import RateLimiter, TokenBucket

REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def main() -> None:
    """Build every primitive on one client, use them, close them, then the client."""
    namespace = f"docs-{uuid.uuid4().hex[:8]}"
    async with RedisClient.from_url(REDIS_URL) as redis:  # the one client of the process
        cache = Cache(redis, namespace=namespace, timeout=0.1)  # a 0.1 s view of `redis`
        limiter = RateLimiter(redis, namespace=namespace, timeout=0.05)
        queue = Queue(redis, name=namespace)  # the client's own timeout (1 s)
        shared = RedisSharedState(redis, namespace=namespace)
        breaker = CircuitBreaker("postgres", shared=shared)

        @queue.task
        async def send_email(to: str) -> None: ...

        await cache.set("greeting", "hello", ttl=60)
        assert await cache.get("greeting") == "hello"
        assert (await limiter.acquire("client:1.2.3.4", TokenBucket(20, 10.0))).allowed
        await send_email.enqueue("a@example.com")
        async with breaker:
            pass

        # Every command went through the one client: one connection per server.
        assert redis.statistics().pipeline.commands >= 4

        # Closing a primitive given a client leaves the client open for the others.
        for resource in (breaker, limiter, cache):
            await resource.aclose()
        await queue.aclose()
        assert await redis.ping()
        async for key in redis.redis.scan_iter(match=f"*{namespace}*"):  # clean up
            await redis.execute("DEL", key)


if __name__ == "__main__":
    asyncio.run(main())
