"""A fixed window: windows aligned to the clock, shared by every replica through Redis."""

from __future__ import annotations

import asyncio
import os
import uuid

from scalepy.backends.redis import RedisClient
from scalepy.ratelimit import FixedWindow, RateLimiter, SlidingWindow
from scalepy.testing import FakeClock

REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

PER_MINUTE = FixedWindow(limit=5, window=60, name="minute")  # 5 per clock minute


async def server_time(redis: RedisClient) -> float:
    """Redis TIME in seconds: the only clock the decisions use."""
    seconds, micros = await redis.execute("TIME")
    return int(seconds) + int(micros) / 1e6


async def edge() -> None:
    """At a window's edge a fixed window admits twice its limit; a sliding one does not."""
    for policy, expected in ((PER_MINUTE, 10), (SlidingWindow(limit=5, window=60), 5)):
        clock = FakeClock(59.0)  # one second before a minute ends
        async with RateLimiter(clock=clock) as limiter:  # memory://, on a fake clock
            first = [(await limiter.acquire("ada", policy)).allowed for _ in range(5)]
            clock.advance(1.0)  # the next minute starts
            second = [(await limiter.acquire("ada", policy)).allowed for _ in range(5)]
            assert sum(first) + sum(second) == expected, (policy, first, second)


async def replicas() -> None:
    """Two limiters (two replicas) on one Redis count in the same clock-aligned window."""
    namespace = f"docs-{uuid.uuid4().hex}"  # keeps this run's keys apart
    async with (
        RedisClient.from_url(REDIS_URL) as redis,
        RateLimiter(REDIS_URL, namespace=namespace) as one,
        RateLimiter(REDIS_URL, namespace=namespace) as two,
    ):
        now = await server_time(redis)
        if 60 - now % 60 < 2:  # a minute ends during the demo: start with the next one
            await asyncio.sleep(60 - now % 60)
        try:
            decisions = [await (one, two)[i % 2].acquire("user:ada", PER_MINUTE) for i in range(7)]
            assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
            assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0, 0]
            # The window ends on the minute of the server's clock, for both replicas alike.
            denied = decisions[-1]
            ends = await server_time(redis) + denied.retry_after
            assert min(ends % 60, 60 - ends % 60) < 0.5, ends
            assert denied.retry_after == denied.reset_after
        finally:
            await one.reset("user:ada", PER_MINUTE)


async def main() -> None:
    """Run both parts."""
    await edge()
    await replicas()


if __name__ == "__main__":
    asyncio.run(main())
