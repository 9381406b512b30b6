"""Retry outside the breaker, with a retry budget: the breaker sees every attempt."""

from __future__ import annotations

import asyncio
import contextlib

from scalepy.breaker import BreakerState, CircuitBreaker, CircuitOpenError
from scalepy.retry import RetryBudget, RetryPolicy, retry
from scalepy.testing import FakeClock, RecordingInstrumentation


class Inventory:
    """A stand-in for a remote service: counts the attempts that reach it."""

    def __init__(self) -> None:
        self.failures_left = 0  # the next this-many attempts fail
        self.attempts = 0

    async def reserve(self, sku: str) -> str:
        """Reserve one unit of `sku`, unless this attempt is one of those set to fail."""
        self.attempts += 1
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("inventory unreachable")
        return f"reserved {sku}"


async def main() -> None:
    """Retry a blip; then watch the retries stop as soon as the breaker opens."""
    clock = FakeClock()
    telemetry = RecordingInstrumentation()
    service = Inventory()
    breaker = CircuitBreaker(
        "inventory",
        minimum_calls=4,
        window_size=10,
        open_for=30.0,
        permitted_calls_in_half_open=1,
        clock=clock,
        instrumentation=telemetry,
    )
    policy = RetryPolicy(
        attempts=5,
        retry_on=(ConnectionError,),
        rng=lambda: 0.0,  # full jitter drawn as 0: no waiting in this example
    )
    # One budget per dependency, shared by every call to it: retries may add at most
    # 20% to the calls, plus a reserve of 0.5/s * 10 s = 5 retries for quiet periods.
    budget = RetryBudget(ratio=0.2, min_retries_per_second=0.5, window=10.0, clock=clock)

    @retry(policy, budget=budget, clock=clock, instrumentation=telemetry)  # outer
    @breaker  # inner: every attempt goes through the breaker
    async def reserve(sku: str) -> str:
        return await service.reserve(sku)

    # A blip: the first attempt fails, the retry succeeds. The breaker saw both.
    service.failures_left = 1
    assert await reserve("sku-1") == "reserved sku-1"
    assert (breaker.statistics().calls, breaker.statistics().failures) == (2, 1)

    # An outage: attempts fail until the breaker's window holds 4 calls with a
    # failure rate >= 0.5 (here after the 2nd attempt). The 3rd attempt is rejected by
    # the breaker without reaching the service, and CircuitOpenError is not retried:
    # the call ends there, 2 attempts short of its 5.
    service.failures_left = 1_000
    service.attempts = 0
    try:
        await reserve("sku-2")
    except CircuitOpenError as exc:
        assert exc.retry_after == 30.0
    else:
        raise AssertionError("the breaker must stop the retries")
    assert service.attempts == 2
    assert breaker.state is BreakerState.OPEN

    # While it is open, calls fail fast: one rejected attempt each, no retry, and
    # the service sees nothing.
    for _ in range(3):
        with contextlib.suppress(CircuitOpenError):
            await reserve("sku-3")
    assert service.attempts == 2
    assert breaker.statistics().rejected == 4

    # The budget counted 5 calls and allowed 3 retries (1 for the blip, 2 in the
    # outage), within its reserve; none was refused.
    stats = budget.statistics()
    assert (stats.calls, stats.retries, stats.rejected) == (5, 3, 0)
    assert telemetry.value("scalepy.retry.attempts", {"scalepy.retry.outcome": "retry"}) == 3
    assert telemetry.value("scalepy.retry.attempts", {"scalepy.retry.outcome": "success"}) == 1
    assert (
        telemetry.value("scalepy.retry.attempts", {"scalepy.retry.outcome": "failure"}) == 4
    )  # rejections
    assert (
        telemetry.value("scalepy.breaker.calls", {"scalepy.breaker.call.outcome": "rejected"}) == 4
    )

    # The service recovers; after open_for, the trial call closes the breaker.
    service.failures_left = 0
    clock.advance(30.0)
    assert await reserve("sku-4") == "reserved sku-4"
    assert breaker.statistics().state is BreakerState.CLOSED


if __name__ == "__main__":
    asyncio.run(main())
