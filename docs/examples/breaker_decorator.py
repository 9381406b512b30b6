"""A circuit breaker as a decorator: it trips, rejects, probes and closes again."""

from __future__ import annotations

import asyncio
import contextlib

from scalepy.breaker import BreakerState, CircuitBreaker, CircuitOpenError, StateChange
from scalepy.testing import FakeClock

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class Payments:
    """A stand-in for a remote service that can be taken down and held up."""

    def __init__(self) -> None:
        self.down = False
        self.gate = asyncio.Event()  # calls finish once it is set
        self.gate.set()
        self.calls = 0

    async def charge(self, cents: int) -> str:
        """Charge `cents` once `gate` is open; raise while the service is down."""
        self.calls += 1
        await self.gate.wait()
        if self.down:
            raise ConnectionError("payments is down")
        return f"charged {cents}"


async def main() -> None:
    """Trip the breaker on failures, get rejected, then recover through HALF_OPEN."""
    clock = FakeClock()
    changes: list[StateChange] = []
    service = Payments()
    breaker = CircuitBreaker(
        "payments",
        failure_rate_threshold=0.5,  # open when half the calls in the window failed...
        minimum_calls=4,  # ...once the window holds at least 4 calls
        window_size=10,  # the window: the last 10 calls
        open_for=10.0,  # reject for 10 s before probing
        backoff=2.0,  # a failed probe doubles the wait...
        open_for_max=60.0,  # ...up to 60 s
        permitted_calls_in_half_open=2,
        clock=clock,
        listeners=[changes.append],
    )

    @breaker
    async def charge(cents: int) -> str:
        return await service.charge(cents)

    # CLOSED: calls run. 2 successes, then 2 failures: 4 calls, failure rate 0.5.
    assert await charge(100) == "charged 100"
    assert await charge(200) == "charged 200"
    service.down = True
    for _ in range(2):
        with contextlib.suppress(ConnectionError):  # the function's own error propagates
            await charge(300)
    assert breaker.state is OPEN

    # OPEN: calls are rejected without running, with how long to wait.
    calls_before = service.calls
    clock.advance(4.0)
    try:
        await charge(400)
    except CircuitOpenError as exc:
        assert (exc.name, exc.retry_after) == ("payments", 6.0)
    else:
        raise AssertionError("an open breaker must reject")
    assert service.calls == calls_before  # the function did not run
    stats = breaker.statistics()
    assert (stats.calls, stats.failures, stats.rejected, stats.retry_after) == (4, 2, 1, 6.0)

    # After open_for, the breaker lets 2 trial calls through (HALF_OPEN).
    clock.advance(6.0)
    assert breaker.state is HALF_OPEN
    service.gate.clear()  # hold the trials, so three callers arrive at once
    results = asyncio.gather(charge(1), charge(2), charge(3), return_exceptions=True)
    await asyncio.sleep(0)  # let them start
    service.gate.set()
    first, second, third = await results
    # Two trials ran (and failed: the service is still down); the extra caller was
    # rejected at once rather than let through, with no time to wait (retry_after 0).
    assert isinstance(first, ConnectionError)
    assert isinstance(second, ConnectionError)
    assert isinstance(third, CircuitOpenError)
    assert third.retry_after == 0.0
    # The failed trials reopen the breaker, for twice as long.
    assert breaker.state is OPEN
    assert breaker.statistics().retry_after == 20.0

    # The service recovers; after the longer wait, two good trials close the breaker.
    service.down = False
    clock.advance(20.0)
    assert await charge(5) == "charged 5"
    assert await charge(6) == "charged 6"
    assert breaker.state is CLOSED

    assert [(c.from_state, c.to_state) for c in changes] == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]
    assert [c.at for c in changes] == [0.0, 10.0, 10.0, 30.0, 30.0]


if __name__ == "__main__":
    asyncio.run(main())
