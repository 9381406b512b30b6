"""The clock every scalepy primitive reads time from.

Anything that waits, expires or measures takes a `Clock`, so tests can swap in
`scalepy.testing.FakeClock` and jump forward instantly instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ("Clock", "MonotonicClock")


class Clock(Protocol):
    """A source of monotonic time that can also wait.

    `now()` and `sleep()` must agree: after `await clock.sleep(s)` returns,
    `clock.now()` has advanced by at least `s`.
    """

    def now(self) -> float:
        """Return the current time.

        Returns:
            Seconds on a monotonic scale. Only differences between two readings
            are meaningful; the origin is arbitrary.
        """
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait until `seconds` have passed on this clock.

        Args:
            seconds: How long to wait. Zero or less yields control once and returns.
        """
        ...


class MonotonicClock:
    """The real clock: `time.monotonic()` and `asyncio.sleep()`.

    It holds no state, so one instance can be shared freely; every primitive
    uses one by default.
    """

    __slots__ = ()

    # `time.monotonic` itself, not a method calling it: primitives read the clock
    # several times per operation, and the wrapper's call cost as much as the reading.
    now = staticmethod(time.monotonic)
    """Return `time.monotonic()`: seconds since an arbitrary, fixed point in the past."""

    async def sleep(self, seconds: float) -> None:
        """Wait with `asyncio.sleep()`.

        Args:
            seconds: How long to wait. Zero or less yields control once and returns.
        """
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
