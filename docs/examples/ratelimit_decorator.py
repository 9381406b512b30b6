"""The @limiter.limit decorator, and limiter.wait() to queue instead of failing."""

from __future__ import annotations

import asyncio

from scalepy.errors import RateLimitExceeded
from scalepy.ratelimit import GCRA, RateLimiter
from scalepy.testing import FakeClock

PER_USER = GCRA(limit=2, period=1.0)  # 2 calls a second, one every 0.5 s on average


async def main() -> None:
    """Limit a function per user; then wait for a turn instead of raising."""
    clock = FakeClock()
    limiter = RateLimiter("memory://", clock=clock)

    @limiter.limit(PER_USER, key=lambda user_id: f"user:{user_id}")
    async def build_report(user_id: str) -> str:
        return f"report for {user_id}"

    assert await build_report("ada") == "report for ada"
    assert await build_report("ada") == "report for ada"
    try:
        await build_report("ada")  # the third call within the burst: refused, not run
    except RateLimitExceeded as exc:
        assert (exc.key, exc.retry_after) == ("user:ada", 0.5)
    else:
        raise AssertionError("the third call must raise RateLimitExceeded")
    assert await build_report("bob") == "report for bob"  # another key, its own quota

    # wait() sleeps (on the limiter's clock) until the request is allowed...
    task = asyncio.create_task(limiter.wait("user:ada", PER_USER, max_wait=2.0))
    await clock.wait_for_sleepers(1)
    clock.advance(0.5)
    decision = await task
    assert decision.allowed
    assert clock.now() == 0.5

    # ...unless that would take longer than max_wait: then it raises at once,
    # having consumed nothing.
    try:
        await limiter.wait("user:ada", PER_USER, cost=2, max_wait=0.5)
    except RateLimitExceeded as exc:
        assert exc.retry_after == 1.0
    else:
        raise AssertionError("a wait beyond max_wait must raise")
    assert clock.now() == 0.5  # no time passed


if __name__ == "__main__":
    asyncio.run(main())
