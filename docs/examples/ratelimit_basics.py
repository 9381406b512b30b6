"""RateLimiter basics: acquire, peek and reset on the memory backend, with a fake clock."""

from __future__ import annotations

import asyncio

from scalepy.ratelimit import Outcome, RateLimiter, TokenBucket
from scalepy.testing import FakeClock


async def main() -> None:
    """Drain a bucket of 5 refilled at 1 token/s, watch it refill, then reset it."""
    clock = FakeClock()  # time moves only when advance() says so
    bucket = TokenBucket(capacity=5, refill_rate=1.0)
    async with RateLimiter("memory://", clock=clock) as limiter:
        # A full bucket allows a burst of `capacity` requests at once.
        remaining = [(await limiter.acquire("user:ada", bucket)).remaining for _ in range(5)]
        assert remaining == [4, 3, 2, 1, 0]

        # The sixth is denied, and told how long to wait for one token.
        denied = await limiter.acquire("user:ada", bucket)
        assert not denied.allowed
        assert denied.outcome is Outcome.LIMITED
        assert (denied.limit, denied.remaining, denied.retry_after) == (5, 0, 1.0)
        assert denied.reset_after == 5.0  # until the bucket is full again

        # Other keys have quotas of their own.
        assert (await limiter.acquire("user:bob", bucket)).remaining == 4

        # Two seconds later two tokens are back; a request may cost several.
        clock.advance(2)
        assert (await limiter.peek("user:ada", bucket)).remaining == 2  # consumes nothing
        costly = await limiter.acquire("user:ada", bucket, cost=2)
        assert (costly.allowed, costly.remaining) == (True, 0)

        # reset() makes the quota whole again, on every replica sharing the backend.
        await limiter.reset("user:ada", bucket)
        assert (await limiter.peek("user:ada", bucket)).remaining == 5


if __name__ == "__main__":
    asyncio.run(main())
