"""`async with breaker:`, what counts as a failure, fallbacks, timeouts and sync functions."""

from __future__ import annotations

import asyncio
import contextlib

from scalepy.breaker import BreakerState, CircuitBreaker, CircuitOpenError
from scalepy.testing import FakeClock


class HTTPStatusError(Exception):
    """An HTTP error answer (4xx) from a service that is up and answering."""


async def main() -> None:
    """Guard a block, choose which errors count, and fall back instead of failing."""
    clock = FakeClock()

    # Only connection problems count as failures; a 4xx answer means the service
    # works (it counts as a success), and a LookupError is not counted at all.
    inventory = CircuitBreaker(
        "inventory",
        minimum_calls=2,
        window_size=2,
        record=(ConnectionError, TimeoutError),
        ignore=LookupError,
        clock=clock,
    )

    async with inventory:  # a block: its outcome is the call's outcome
        await asyncio.sleep(0)
    for error in (HTTPStatusError("404"), KeyError("sku-1")):
        try:
            async with inventory:
                raise error
        except (HTTPStatusError, KeyError):
            pass  # exceptions always propagate out of the block
    stats = inventory.statistics()
    assert (stats.calls, stats.failures) == (2, 0)  # the KeyError was not counted

    try:
        async with inventory:
            raise ConnectionError("connection refused")
    except ConnectionError:
        pass
    assert inventory.state is BreakerState.OPEN  # 1 failure in 2 calls: rate 0.5
    try:
        async with inventory:
            raise AssertionError("an open breaker does not run the block")
    except CircuitOpenError as exc:
        assert exc.retry_after == 30.0  # open_for defaults to 30 s

    # A decorated function can fall back: the fallback gets the CircuitOpenError of
    # a rejected call, or the exception of a failed one, and its result is returned.
    # failure_result makes a returned value count as a failure (it is still returned).
    prices = CircuitBreaker(
        "prices",
        minimum_calls=2,
        window_size=2,
        failure_result=lambda status: status >= 500,
        fallback=lambda exc: -1,
        clock=clock,
    )

    @prices
    async def price_status(sku: str) -> int:
        return 503 if sku == "bad" else 200

    assert await price_status("ok") == 200
    assert await price_status("bad") == 503  # returned, but counted as a failure
    assert prices.state is BreakerState.OPEN
    assert await price_status("ok") == -1  # rejected: the fallback answers instead

    # timeout: an async call (or block) running longer is cancelled, counted as a
    # failure and raises TimeoutError. It runs on the event loop's clock.
    search = CircuitBreaker("search", minimum_calls=1, window_size=1, timeout=0.01)

    @search
    async def slow_search(query: str) -> list[str]:
        await asyncio.sleep(10)
        return [query]

    try:
        await slow_search("breaker")
    except TimeoutError:
        pass
    else:
        raise AssertionError("the call must time out")
    assert search.state is BreakerState.OPEN

    # Sync functions work too (without timeout; a fallback must then be sync).
    config = CircuitBreaker("config", minimum_calls=1, window_size=1, clock=clock)

    @config
    def read_setting(name: str) -> str:
        raise OSError(f"cannot read {name}")

    with contextlib.suppress(OSError):
        read_setting("region")
    try:
        read_setting("region")
    except CircuitOpenError:
        pass
    else:
        raise AssertionError("the sync function's breaker must be open")


if __name__ == "__main__":
    asyncio.run(main())
