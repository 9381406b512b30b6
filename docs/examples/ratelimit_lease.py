"""Leases: a key hot on this replica is decided from batches of tokens, no round trip each."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter

from scalepy.ratelimit import Lease, Outcome, RateLimiter, TokenBucket

REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

PER_CLIENT = TokenBucket(capacity=100_000, refill_rate=100_000.0)  # far above this loop


async def main() -> None:
    """Send one client's requests for 0.3 s and count how each was decided."""
    namespace = f"docs-{uuid.uuid4().hex}"  # keeps this run's keys apart
    lease = Lease(duration=0.05, max_share=0.1)  # batches of up to 10,000 tokens, for 50 ms
    async with RateLimiter(REDIS_URL, namespace=namespace, lease=lease) as limiter:
        try:
            outcomes: Counter[Outcome] = Counter()
            deadline = time.monotonic() + 0.3
            while time.monotonic() < deadline:
                decision = await limiter.acquire("client:1.2.3.4", PER_CLIENT)
                outcomes[decision.outcome] += 1
            # The first 50 ms measure the key's demand, one round trip each; then a
            # round trip takes a batch and most requests are decided from it.
            assert outcomes[Outcome.LEASED] > outcomes[Outcome.ALLOWED], outcomes
            assert outcomes[Outcome.LIMITED] == 0, outcomes
        finally:
            await limiter.reset("client:1.2.3.4", PER_CLIENT)


if __name__ == "__main__":
    asyncio.run(main())
