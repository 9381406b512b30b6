"""`LoopLagMonitor`: how late the event loop runs what is due, measured in the background.

A task sleeps for `interval` again and again and notes how much later than asked
it woke up: the time callbacks wait for the loop, because something blocks it
(CPU-bound code, a synchronous driver call) or it has too much to do. A stalled
loop cannot run the monitor, so `lag()` also counts how overdue the monitor's
current wake-up is: a probe served right after a 20 s stall sees 20 s, not the
sample taken before it.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

from scalepy._lifecycle import AsyncCloseable
from scalepy._validation import check_finite
from scalepy.clock import MonotonicClock
from scalepy.health._metrics import LOOP_LAG
from scalepy.telemetry import get_default

if TYPE_CHECKING:
    from scalepy.clock import Clock
    from scalepy.telemetry import Instrumentation

__all__ = ("LoopLagMonitor",)


class LoopLagMonitor(AsyncCloseable):
    """Measures event-loop lag with a background task; `Health` starts and stops its own.

    Args:
        interval: Seconds between samples, > 0.
        clock: What the monitor sleeps on and reads; the monotonic clock if `None`.
        instrumentation: Where the lag gauge goes; the process default if `None`.

    Raises:
        ConfigurationError: If `interval` is not a finite number > 0.
    """

    __slots__ = ("_clock", "_due", "_gauge", "_interval", "_last", "_max", "_samples", "_task")

    def __init__(
        self,
        *,
        interval: float = 0.5,
        clock: Clock | None = None,
        instrumentation: Instrumentation | None = None,
    ) -> None:
        check_finite("interval", interval)
        self._interval = interval
        self._clock = clock or MonotonicClock()
        self._gauge = (instrumentation or get_default()).metric(LOOP_LAG)
        self._task: asyncio.Task[None] | None = None
        self._due = math.inf
        self._last = 0.0
        self._max = 0.0
        self._samples = 0

    @property
    def running(self) -> bool:
        """Whether the sampling task runs."""
        return self._task is not None and not self._task.done()

    @property
    def samples(self) -> int:
        """How many samples were taken since the monitor was created."""
        return self._samples

    @property
    def max_lag(self) -> float:
        """The largest lag sampled so far, in seconds."""
        return self._max

    def start(self) -> None:
        """Start sampling on the running loop; does nothing if already running.

        Raises:
            RuntimeError: If no event loop is running.
        """
        if not self.running:
            loop = asyncio.get_running_loop()
            self._due = self._clock.now() + self._interval  # overdue counts from now on
            self._task = loop.create_task(self._sample(), name="scalepy.health.LoopLagMonitor")

    def lag(self) -> float:
        """Return the current lag in seconds: the last sample, or more if a wake-up is overdue.

        Returns:
            0.0 before the first sample and while not running.
        """
        if not self.running:
            return 0.0
        return max(self._last, self._clock.now() - self._due)

    async def aclose(self) -> None:
        """Stop sampling."""
        task, self._task = self._task, None
        self._due = math.inf
        if task is not None:
            task.cancel()
            await asyncio.wait((task,))

    async def _sample(self) -> None:
        clock, interval = self._clock, self._interval
        while True:
            self._due = clock.now() + interval
            await clock.sleep(interval)
            lag = max(0.0, clock.now() - self._due)
            self._last = lag
            self._max = max(self._max, lag)
            self._samples += 1
            self._gauge.record(lag)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} running={self.running} lag={self.lag():.3f}s "
            f"max={self._max:.3f}s samples={self._samples}>"
        )
