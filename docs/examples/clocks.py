"""Clocks: code that waits takes a `Clock`; tests pass a `FakeClock` and skip the waiting."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from scalepy.clock import MonotonicClock
from scalepy.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from scalepy.clock import Clock


async def retry(
    operation: Callable[[], Awaitable[str]], *, clock: Clock, delays: tuple[float, ...]
) -> str:
    """Call `operation`, sleeping `delays[i]` on `clock` after the i-th failure."""
    for delay in delays:
        try:
            return await operation()
        except ConnectionError:
            await clock.sleep(delay)
    return await operation()


async def main() -> None:
    """Test a back-off of 10 + 20 seconds in (almost) no real time."""
    attempts: list[float] = []
    clock = FakeClock()

    async def flaky() -> str:
        attempts.append(clock.now())
        if len(attempts) < 3:
            raise ConnectionError("not yet")
        return "done"

    started = time.monotonic()
    task = asyncio.create_task(retry(flaky, clock=clock, delays=(10, 20)))
    await clock.wait_for_sleepers(1)  # the first attempt failed, the task sleeps
    clock.advance(10)
    await clock.wait_for_sleepers(1)
    clock.advance(20)
    assert await task == "done"
    assert attempts == [0, 10, 30]  # fake time, exactly
    assert time.monotonic() - started < 1  # real time: next to nothing

    # Production code uses the real clock, the default of every primitive.
    assert await retry(flaky, clock=MonotonicClock(), delays=()) == "done"


if __name__ == "__main__":
    asyncio.run(main())
