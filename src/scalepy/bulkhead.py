"""`Bulkhead`: at most `max_concurrent` calls at once; the rest wait in line, briefly.

```python
from scalepy.bulkhead import Bulkhead

payments = Bulkhead("payments", max_concurrent=10, max_wait=0.5)


@payments
async def charge(order: Order) -> Receipt: ...


async with payments:  # or as a context manager
    ...
```

A slow dependency then ties up at most `max_concurrent` tasks instead of every
task in the process. Callers beyond the limit wait first-in, first-out for at
most `max_wait` seconds (0 rejects at once, `math.inf` waits as long as it
takes) and then get `BulkheadFull`. A freed slot is handed straight to the
longest waiter, so newcomers cannot overtake the line.

Waiting uses one future per waiter, never polling. The `max_wait` deadline is a
`clock.sleep(max_wait)` racing the waiter's future, so with
`scalepy.testing.FakeClock` a test decides exactly when waiters time out.
Cancelling a task while it waits or runs never leaks a slot: a slot handed to a
waiter that is cancelled at that moment is passed on to the next one.

Telemetry: `scalepy.bulkhead.call.active` (gauge, calls running) and
`scalepy.bulkhead.calls.rejected` (counter), both by `scalepy.bulkhead.name`,
plus a `scalepy.bulkhead.rejected` event on the current span.

This module imports only the standard library.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from scalepy._callables import is_async_callable
from scalepy._lifecycle import AsyncOnly
from scalepy._validation import check_int, check_name
from scalepy.clock import MonotonicClock
from scalepy.errors import BulkheadFull, ConfigurationError
from scalepy.telemetry import Metric, MetricKind, get_default

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from scalepy.clock import Clock
    from scalepy.telemetry import AttributeValue, Instrumentation

__all__ = ("ACTIVE", "REJECTED", "Bulkhead", "BulkheadStatistics")

P = ParamSpec("P")
R = TypeVar("R")

# The bulkhead's metric catalogue: every instrument a bulkhead emits.
NAMESPACE = "scalepy.bulkhead"
BULKHEAD_NAME = "scalepy.bulkhead.name"
"""The attribute naming the bulkhead."""

ACTIVE = Metric(
    name="scalepy.bulkhead.call.active",
    kind=MetricKind.GAUGE,
    unit="{call}",
    description="Calls currently running inside the bulkhead.",
    labels=(BULKHEAD_NAME,),
)
REJECTED = Metric(
    name="scalepy.bulkhead.calls.rejected",
    kind=MetricKind.COUNTER,
    unit="{call}",
    description="Calls rejected because no slot freed up within the maximum wait.",
    labels=(BULKHEAD_NAME,),
)
METRICS = (ACTIVE, REJECTED)
"""Every metric a bulkhead emits."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkheadStatistics:
    """A snapshot of a `Bulkhead`."""

    running: int
    """Calls holding a slot now."""
    waiting: int
    """Calls waiting for a slot now."""
    max_concurrent: int
    """How many calls may hold a slot at once."""
    rejected: int
    """Calls rejected with `BulkheadFull` since the bulkhead was created."""


class Bulkhead(AsyncOnly):
    """Limits how many calls run at once; usable as `async with` and as a decorator.

    Args:
        name: Identifies the bulkhead in errors, metrics and `repr()`.
        max_concurrent: How many calls may run at once, >= 1.
        max_wait: Seconds a call waits for a slot before `BulkheadFull`; 0 rejects
            at once when full, `math.inf` waits without limit.
        clock: Times the wait; the monotonic clock if `None`.
        instrumentation: Where metrics and events go; the process default if `None`.

    Raises:
        ConfigurationError: An empty name, a `max_concurrent` that is not an int
            >= 1, or a negative or NaN `max_wait`.
    """

    __slots__ = (
        "_attributes",
        "_clock",
        "_instrumentation",
        "_labels",
        "_max_concurrent",
        "_max_wait",
        "_rejected",
        "_rejected_metric",
        "_running",
        "_running_metric",
        "_waiters",
        "name",
    )

    def __init__(
        self,
        name: str,
        *,
        max_concurrent: int,
        max_wait: float = 0.0,
        clock: Clock | None = None,
        instrumentation: Instrumentation | None = None,
    ) -> None:
        check_name("Bulkhead", name)
        check_int("max_concurrent", max_concurrent)
        if isinstance(max_wait, bool) or not max_wait >= 0:
            raise ConfigurationError(
                f"max_wait must be a number of seconds >= 0 (math.inf: no limit), got {max_wait!r}"
            )
        self.name = name
        self._max_concurrent = max_concurrent
        self._max_wait = max_wait
        self._clock = clock or MonotonicClock()
        self._running = 0
        self._rejected = 0
        self._waiters: deque[asyncio.Future[bool]] = deque()
        self._instrumentation = instrumentation or get_default()
        self._running_metric = self._instrumentation.metric(ACTIVE)
        self._rejected_metric = self._instrumentation.metric(REJECTED)
        self._labels = {BULKHEAD_NAME: name}
        self._attributes: dict[str, AttributeValue] = {
            BULKHEAD_NAME: name,
            "scalepy.bulkhead.max_concurrent": max_concurrent,
        }

    async def __aenter__(self) -> None:
        if self._running < self._max_concurrent:
            # Free slots imply nobody waits: every release hands its slot to a waiter first.
            self._running += 1
            self._running_metric.record(self._running, self._labels)
            return
        if self._max_wait <= 0:
            self._reject()
        await self._wait()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._release()

    def __call__(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        """Decorate an async function so every call runs inside the bulkhead.

        Args:
            func: The function; its signature is kept.

        Returns:
            The wrapped function, raising `BulkheadFull` when rejected.

        Raises:
            ConfigurationError: `func` is not an async function.
        """
        if not is_async_callable(func):
            raise ConfigurationError(
                f"bulkhead {self.name!r} decorates async functions (async def); {func!r} is not one"
            )

        @functools.wraps(func)
        async def bulkheaded(*args: P.args, **kwargs: P.kwargs) -> R:
            async with self:
                return await func(*args, **kwargs)

        return bulkheaded

    def statistics(self) -> BulkheadStatistics:
        """Return what the bulkhead holds now.

        Returns:
            A frozen snapshot.
        """
        return BulkheadStatistics(
            running=self._running,
            waiting=len(self._waiters),
            max_concurrent=self._max_concurrent,
            rejected=self._rejected,
        )

    async def _wait(self) -> None:
        """Queue for a slot; the future's result says whether one was handed over."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(waiter)
        timer = None if math.isinf(self._max_wait) else loop.create_task(self._expire(waiter))
        try:
            granted = await waiter
        except BaseException:  # cancelled while waiting, or just as a slot was handed over
            if waiter.cancelled():
                # Usually still in line; a release may already have skipped it.
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            elif waiter.result():
                self._release()  # a slot we will never use: pass it on
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if not granted:
            self._reject()

    async def _expire(self, waiter: asyncio.Future[bool]) -> None:
        """After `max_wait`, take a still-waiting call out of the line, unserved."""
        await self._clock.sleep(self._max_wait)
        if not waiter.done():
            self._waiters.remove(waiter)
            waiter.set_result(False)

    def _release(self) -> None:
        """Hand the slot to the longest waiter, or free it if nobody waits."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # done: cancelled, its task not yet resumed to leave the line
                waiter.set_result(True)
                return
        self._running -= 1
        self._running_metric.record(self._running, self._labels)

    def _reject(self) -> None:
        self._rejected += 1
        self._rejected_metric.record(1, self._labels)
        self._instrumentation.event("scalepy.bulkhead.rejected", self._attributes)
        raise BulkheadFull(self.name, self._max_concurrent)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} running={self._running}/"
            f"{self._max_concurrent} waiting={len(self._waiters)} rejected={self._rejected}>"
        )
