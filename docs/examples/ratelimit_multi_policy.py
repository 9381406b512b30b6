"""Several policies on one request, on Redis: decided all or nothing, in one round trip."""

from __future__ import annotations

import asyncio
import os
import uuid

from scalepy.backends.redis import RedisClient
from scalepy.ratelimit import RateLimiter, SlidingWindow, TokenBucket

REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CLUSTER_URL = os.environ.get("SCALEPY_TEST_CLUSTER_URL", "redis+cluster://127.0.0.1:7000")

BURST = TokenBucket(capacity=10, refill_rate=10.0, name="burst")  # 10/s, bursts of 10
HOURLY = SlidingWindow(limit=12, window=3600, name="hourly")  # 12 in any hour


async def scan(redis: RedisClient, pattern: str) -> list[bytes]:
    """Return every key matching `pattern` (a full SCAN: fine for a demo, not for production)."""
    cursor, names = b"0", []
    while True:
        cursor, batch = await redis.execute("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
        names += batch
        if cursor == b"0":
            return names


async def main() -> None:
    """Show that a request denied by one policy takes nothing from the others."""
    namespace = f"docs-{uuid.uuid4().hex}"  # keeps this run's keys apart
    key = "user:ada"
    async with RateLimiter(REDIS_URL, namespace=namespace) as limiter:
        try:
            # 15 concurrent requests: the burst policy admits 10 and denies 5.
            first = await asyncio.gather(*(limiter.acquire(key, BURST, HOURLY) for _ in range(15)))
            allowed = sum(decision.allowed for decision in first)
            assert allowed == 10, allowed
            denied = next(decision for decision in first if not decision.allowed)
            burst, hourly = denied.policies  # one PolicyDecision per policy, in order
            assert (burst.allowed, hourly.allowed) == (False, True)
            assert denied.retry_after == burst.retry_after > 0
            # The 5 denied requests took nothing from the hourly window: 12 - 10 = 2 left.
            assert (await limiter.peek(key, HOURLY)).remaining == 2

            # Once the bucket has refilled (1 s), the hourly window is the one that denies.
            await asyncio.sleep(BURST.window)
            second = [await limiter.acquire(key, BURST, HOURLY) for _ in range(5)]
            assert [decision.allowed for decision in second] == [True, True, False, False, False]
            burst, hourly = second[-1].policies
            assert (burst.allowed, hourly.allowed) == (True, False)
            assert second[-1].retry_after > 60  # the window needs time, not seconds
            # The 3 denied requests took nothing from the bucket: 10 - 2 (+ any refill).
            assert (await limiter.peek(key, BURST)).remaining >= 8

            # Every key carries the identity as its hash tag, and a TTL: idle keys vanish.
            async with RedisClient.from_url(REDIS_URL) as redis:
                names = await scan(redis, f"scalepy:rl:{namespace}:*")
                # One key per policy; the bucket's lives only until it would be full
                # again (0.2 s here), so on a slow machine it may already be gone.
                assert 1 <= len(names) <= 2, names
                for name in names:
                    assert b"{user:ada}" in name
                    ttl = await redis.execute("PTTL", name)  # -2: it expired meanwhile
                    assert ttl == -2 or 0 < ttl <= 2 * 3600 * 1000, ttl  # never -1 (no TTL)
        finally:
            await limiter.reset(key, BURST, HOURLY)

    # The same script runs on Redis Cluster: a call's keys share one slot.
    async with RateLimiter(CLUSTER_URL, namespace=namespace) as limiter:
        try:
            decision = await limiter.acquire(key, BURST, HOURLY)
            assert (decision.allowed, decision.remaining) == (True, 9)
        finally:
            await limiter.reset(key, BURST, HOURLY)


if __name__ == "__main__":
    asyncio.run(main())
