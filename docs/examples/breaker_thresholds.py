"""Slow calls trip a breaker; a time window, minimum_calls and reaction time, simulated."""

from __future__ import annotations

import asyncio
import contextlib

from scalepy.breaker import BreakerState, CircuitBreaker
from scalepy.testing import FakeClock


async def slow_calls() -> None:
    """A dependency that answers, but too slowly, trips the slow-call threshold."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        "search",
        slow_call_duration=0.6,  # slower than this is slow: 2x a 300 ms p99 SLO
        slow_call_rate_threshold=0.5,  # open when half the calls are slow
        minimum_calls=4,
        window_size=10,
        clock=clock,
    )

    @breaker
    async def search(seconds: float) -> str:
        clock.advance(seconds)  # the fake clock stands in for a call taking `seconds`
        return "results"

    for seconds in (0.1, 0.2, 0.9, 1.5):  # every call succeeds; two of them are slow
        assert await search(seconds) == "results"
    stats = breaker.statistics()
    assert stats.state is BreakerState.OPEN
    assert (stats.calls, stats.failures, stats.slow_calls, stats.slow_call_rate) == (4, 0, 2, 0.5)


def recommendations_breaker(clock: FakeClock) -> CircuitBreaker:
    """The worked example of "Choosing thresholds" on the docs page."""
    return CircuitBreaker(
        "recommendations",
        window="time",
        window_size=10,  # judge the last 10 s: 400 calls at the 40/s peak
        minimum_calls=20,  # judge only with >= 2 calls/s; fewer is noise
        failure_rate_threshold=0.5,
        slow_call_duration=0.6,
        slow_call_rate_threshold=0.5,
        open_for=20.0,  # about how long the service takes to restart
        backoff=2.0,
        open_for_max=120.0,
        permitted_calls_in_half_open=5,
        clock=clock,
    )


async def traffic(
    breaker: CircuitBreaker, clock: FakeClock, *, per_second: int, seconds: int, fail: bool
) -> None:
    """Make `per_second` calls a second for `seconds` s, all failing or all succeeding."""

    @breaker
    async def recommend() -> list[str]:
        if fail:
            raise ConnectionError("recommendations is down")
        return ["book"]

    for _ in range(per_second * seconds):
        if breaker.state is BreakerState.OPEN:
            return
        with contextlib.suppress(ConnectionError):
            await recommend()
        clock.advance(1 / per_second)


async def time_window() -> None:
    """At 40 calls/s a full outage opens it after about half the window, 5 s."""
    clock = FakeClock()
    breaker = recommendations_breaker(clock)
    await traffic(breaker, clock, per_second=40, seconds=10, fail=False)
    outage_began = clock.now()
    await traffic(breaker, clock, per_second=40, seconds=10, fail=True)
    assert breaker.state is BreakerState.OPEN
    reaction = clock.now() - outage_began
    assert 4.5 <= reaction <= 5.1, reaction  # the failures must outnumber the successes

    # At night, 1 call/s: the 10 s window never holds minimum_calls (20) calls, so
    # this replica's breaker does not judge, and does not open, even though every
    # call fails. Low-traffic callers need a smaller minimum_calls or a longer window.
    clock = FakeClock()
    quiet = recommendations_breaker(clock)
    await traffic(quiet, clock, per_second=1, seconds=60, fail=True)
    stats = quiet.statistics()
    assert stats.state is BreakerState.CLOSED
    assert stats.calls == 9  # the calls of the last 10 whole seconds
    assert stats.failure_rate == 1.0


async def main() -> None:
    """Run both scenarios."""
    await slow_calls()
    await time_window()


if __name__ == "__main__":
    asyncio.run(main())
