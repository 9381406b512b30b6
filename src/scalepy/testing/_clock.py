"""`FakeClock`: a `scalepy.clock.Clock` whose time only moves when a test says so."""

from __future__ import annotations

import asyncio
import math

__all__ = ("FakeClock",)


class FakeClock:
    """A clock for tests: time stands still until `advance()` moves it.

    `sleep()` never waits in real time. A sleeping task stays asleep until the
    test advances the clock to or past its deadline, so timeouts, expiries and
    back-offs can be tested instantly and deterministically:

    ```python
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(30))
    await clock.wait_for_sleepers(1)
    clock.advance(30)
    await task
    ```

    Args:
        start: The time `now()` returns until the clock is first advanced.

    Raises:
        ValueError: If `start` is not a finite number.
    """

    __slots__ = ("_now", "_sleepers", "_waiters")

    def __init__(self, start: float = 0.0) -> None:
        if not math.isfinite(start):
            raise ValueError(f"start must be a finite number, got {start!r}")
        self._now = start
        # Pending sleeps: future -> deadline. Dicts keep insertion order, so equal
        # deadlines wake first-come, first-served.
        self._sleepers: dict[asyncio.Future[None], float] = {}
        # Pending wait_for_sleepers() calls: future -> number of sleepers awaited.
        self._waiters: dict[asyncio.Future[None], int] = {}

    def now(self) -> float:
        """Return the fake time.

        Returns:
            `start` plus everything passed to `advance()` so far.
        """
        return self._now

    @property
    def sleepers(self) -> int:
        """The number of tasks currently blocked in `sleep()`."""
        return len(self._sleepers)

    def advance(self, seconds: float) -> None:
        """Move the clock forward and wake every sleeper whose deadline is reached.

        Sleepers are woken in deadline order (first-come, first-served on equal
        deadlines). The clock jumps straight to the new time, so a woken sleeper
        sees `now()` at the end of the advance, not at its own deadline. Woken
        tasks run once the caller next yields to the event loop.

        Args:
            seconds: How far to move the clock.

        Raises:
            ValueError: If `seconds` is negative, infinite or NaN.
        """
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
        self._now += seconds
        due = sorted(
            (future for future, deadline in self._sleepers.items() if deadline <= self._now),
            key=self._sleepers.__getitem__,
        )
        for future in due:
            del self._sleepers[future]
            if not future.done():  # a cancelled sleeper may not have cleaned up yet
                future.set_result(None)

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced by `seconds`.

        A deadline that is already reached (including `seconds <= 0`) yields to
        the event loop once and returns. A cancelled sleep leaves nothing behind.

        Args:
            seconds: How long to wait in fake time; `math.inf` waits until cancelled.

        Raises:
            ValueError: If `seconds` is NaN.
        """
        if math.isnan(seconds):
            raise ValueError("seconds must be a number, got nan")
        deadline = self._now + seconds
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers[future] = deadline
        if self._waiters:
            self._wake_waiters()
        try:
            await future
        finally:
            self._sleepers.pop(future, None)

    async def wait_for_sleepers(self, n: int = 1) -> None:
        """Wait until at least `n` tasks are blocked in `sleep()`.

        Use it to know that the code under test has reached its sleep before
        calling `advance()`. It does not poll: each new sleeper wakes it.

        Args:
            n: How many sleeping tasks to wait for.
        """
        if self.sleepers >= n:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[future] = n
        try:
            await future
        finally:
            del self._waiters[future]

    def _wake_waiters(self) -> None:
        sleepers = self.sleepers
        for future, n in self._waiters.items():
            if n <= sleepers and not future.done():
                future.set_result(None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(now={self._now!r}, sleepers={self.sleepers})"
