"""A retry budget caps retries at a fraction of calls, whatever each call's policy allows."""

from __future__ import annotations

import asyncio
import contextlib

from scalepy.retry import RetryBudget, RetryPolicy, retry
from scalepy.testing import FakeClock


async def main() -> None:
    """During an outage, 10 calls of up to 3 attempts each make 12 attempts, not 30."""
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, min_retries_per_second=0.0, window=10.0, clock=clock)
    policy = RetryPolicy(
        attempts=3,
        retry_on=(ConnectionError,),
        rng=lambda: 0.0,  # full jitter drawn as 0: no waiting in this example
    )
    attempts = 0

    @retry(policy, budget=budget, clock=clock)
    async def fetch() -> bytes:
        nonlocal attempts
        attempts += 1
        raise ConnectionError("down")

    for _ in range(10):
        with contextlib.suppress(ConnectionError):  # the last attempt's own error
            await fetch()

    # Each call deposits 0.2 tokens and a retry needs a whole one: 2 retries in 10 calls.
    assert attempts == 12
    stats = budget.statistics()
    # Refused: the first retry of 8 calls, and the second retry of the 2 others.
    assert (stats.calls, stats.retries, stats.rejected) == (10, 2, 10)

    # Deposits and withdrawals expire after the window, so the budget follows the
    # recent traffic: 10 s later, this quiet process has nothing left to spend.
    clock.advance(10.0)
    assert budget.statistics().balance == 0.0


if __name__ == "__main__":
    asyncio.run(main())
