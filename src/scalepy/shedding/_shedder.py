"""`LoadShedder`: an adaptive concurrency limit with a short, prioritised line in front.

Who does what, in call order:

1. `slot(priority)` / the decorator: a `CRITICAL` call runs at once, uncounted.
2. Under the limit, a call takes a slot at once (the fast path: no await, no lock).
3. Over it, the call waits in the `WaitLine` (bounded; adaptive LIFO + CoDel target
   once a standing queue forms) at most `max_wait` seconds, or is shed at once with
   `RequestShed` when the line is full of calls at least as important.
4. When a call ends, its duration goes into the `SampleWindow` (a waiter's from when
   its slot was handed over, not from when its task next ran: see `_wait`); each
   closed window is one `Sample` for the limit algorithm's core, which may move the limit.
5. Its slot goes to the next waiter the line picks; stale waiters are shed.

The waits race `clock.sleep(max_wait)`, so `scalepy.testing.FakeClock` decides
exactly when waiters time out; durations are read from the same clock.
"""

from __future__ import annotations

import asyncio
import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn, ParamSpec, TypeVar

from scalepy._validation import check_finite, check_int
from scalepy.clock import MonotonicClock
from scalepy.errors import ConfigurationError, RequestShed
from scalepy.shedding import _metrics as m
from scalepy.shedding._gradient import Gradient
from scalepy.shedding._line import WaitLine
from scalepy.shedding._priority import Priority
from scalepy.shedding._window import SampleWindow
from scalepy.telemetry import get_default

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from types import TracebackType

    from scalepy.clock import Clock
    from scalepy.shedding._limit import LimitPolicy, Sample
    from scalepy.telemetry import Instrumentation

__all__ = ("LoadShedder", "Permit", "ShedderStatistics")

P = ParamSpec("P")
R = TypeVar("R")

_NORMAL = Priority.NORMAL
_CRITICAL = Priority.CRITICAL
# Resolved with the time its slot was handed over (served), or with a reason (shed).
_Waiter = asyncio.Future[float | str]


@dataclass(frozen=True, slots=True, kw_only=True)
class ShedderStatistics:
    """A snapshot of a `LoadShedder`."""

    limit: float
    """The concurrency limit the algorithm settled on; `int(limit)` calls run at once."""
    in_flight: int
    """Calls running inside the limit now."""
    queued: int
    """Calls waiting for a slot now."""
    overloaded: bool
    """Whether a standing queue formed and the line has not emptied since (LIFO, CoDel target)."""
    shed: Mapping[str, int]
    """Calls shed since the shedder was created, by priority class label."""


class LoadShedder:
    """Runs at most an adaptive number of calls at once; sheds the rest fast.

    Args:
        name: Identifies the shedder in errors, metrics and `repr()`.
        limit: The limit algorithm: `Gradient()` (the default) or `AIMD()`.
        max_queue: The most calls waiting for a slot, >= 0 (0: shed at once).
        max_wait: Seconds a call waits for a slot before it is shed, > 0 and finite.
        target: The wait past which a line that stayed non-empty for `interval` is
            overloaded; then the longest a call may wait, or the calls' mean
            duration if shorter; > 0.
        interval: Seconds the line must stay non-empty before it can count as
            overloaded (then LIFO, and waiters older than `target` are shed); > 0.
        sample_window: The shortest sampling window in seconds, > 0.
        min_samples: The fewest calls a sampling window holds, >= 1.
        drop_on: Exceptions that signal overload downstream (a timeout): a sample
            holding one tells `AIMD` to back off.
        clock: Times waits and calls; the monotonic clock if `None`.
        instrumentation: Where metrics and events go; the process default if `None`.

    Raises:
        ConfigurationError: An empty name, or a value out of the range above.
    """

    __slots__ = (
        "_active",
        "_capacity",
        "_clock",
        "_core",
        "_drop_on",
        "_expiry",
        "_in_flight",
        "_instrumentation",
        "_labels",
        "_limit_gauge",
        "_line",
        "_max_wait",
        "_now",
        "_queued",
        "_rtt",
        "_shed",
        "_shed_counter",
        "_target",
        "_window",
        "name",
    )

    def __init__(
        self,
        name: str,
        *,
        limit: LimitPolicy | None = None,
        max_queue: int = 100,
        max_wait: float = 1.0,
        target: float = 0.02,
        interval: float = 0.1,
        sample_window: float = 0.1,
        min_samples: int = 10,
        drop_on: tuple[type[BaseException], ...] = (TimeoutError,),
        clock: Clock | None = None,
        instrumentation: Instrumentation | None = None,
    ) -> None:
        given_name: object = name  # checked as given, whatever the annotation says
        if not isinstance(given_name, str) or not given_name:
            raise ConfigurationError(f"name must be a non-empty string, got {name!r}")
        check_int("max_queue", max_queue, minimum=0)
        for option, value in (
            ("max_wait", max_wait),
            ("target", target),
            ("interval", interval),
            ("sample_window", sample_window),
        ):
            check_finite(option, value)
        check_int("min_samples", min_samples)
        self.name = name
        self._core = (limit or Gradient()).start()
        self._capacity = int(self._core.limit)
        self._line: WaitLine[_Waiter] = WaitLine(max_queue, interval, target)
        self._window = SampleWindow(sample_window, min_samples)
        self._max_wait = max_wait
        self._target = target
        self._drop_on = drop_on
        self._clock = clock or MonotonicClock()
        self._now = self._clock.now
        self._in_flight = 0
        self._expiry: asyncio.Task[None] | None = None  # sheds waiters past `max_wait`
        self._rtt = 0.0  # the last sample's mean, for Retry-After estimates
        self._shed = dict.fromkeys((p.label for p in Priority if p is not _CRITICAL), 0)
        self._instrumentation = instrumentation or get_default()
        self._labels = {m.SHEDDER_NAME: name}
        self._limit_gauge = self._instrumentation.metric(m.LIMIT)
        self._active = self._instrumentation.metric(m.ACTIVE)
        self._queued = self._instrumentation.metric(m.QUEUED)
        self._shed_counter = self._instrumentation.metric(m.SHED)
        self._limit_gauge.record(self._core.limit, self._labels)

    def slot(self, priority: Priority = _NORMAL) -> Permit:
        """Return a context manager that holds a slot while its block runs.

        Args:
            priority: The call's class; `CRITICAL` bypasses the limit.

        Returns:
            A `Permit`; `async with` it, or the call is not limited.
        """
        return Permit(self, priority)

    def __call__(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        """Decorate an async function so every call runs inside the limit (as `NORMAL`).

        Args:
            func: The function; its signature is kept.

        Returns:
            The wrapped function, raising `RequestShed` when shed.
        """

        @functools.wraps(func)
        async def limited(*args: P.args, **kwargs: P.kwargs) -> R:
            # The body of `Permit` inlined: this path runs on every call.
            started = self._now() if self._admit() else await self._wait(_NORMAL)
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                self._leave(started, exc)
                raise
            self._exit(started, dropped=False)
            return result

        return limited

    @property
    def limit(self) -> float:
        """The current concurrency limit."""
        return self._core.limit

    def statistics(self) -> ShedderStatistics:
        """Return what the shedder holds now.

        Returns:
            A frozen snapshot.
        """
        return ShedderStatistics(
            limit=self._core.limit,
            in_flight=self._in_flight,
            queued=len(self._line),
            overloaded=self._line.overloaded(self._clock.now()),
            shed=dict(self._shed),
        )

    def _admit(self) -> bool:
        """Take a free slot if there is one (the fast path: no await)."""
        if self._in_flight < self._capacity:
            # Free slots imply nobody waits: every release and raise serves waiters first.
            self._in_flight += 1
            self._active.record(self._in_flight, self._labels)
            return True
        return False

    def _leave(self, started: float, exc: BaseException) -> None:
        """End a call that raised: a cancelled one measures nothing, a timeout is a drop."""
        if isinstance(exc, asyncio.CancelledError):
            self._release(self._now())
        else:
            self._exit(started, dropped=isinstance(exc, self._drop_on))

    def _exit(self, started: float, *, dropped: bool) -> None:
        """Measure the call, learn from a closed window, and pass the slot on."""
        now = self._now()
        sample = self._window.add(now, now - started, self._in_flight, dropped)
        if sample is not None:
            self._learn(sample)
        if self._line.size:
            self._release(now)
        else:  # `_release` inlined for the common case: nobody waits
            self._in_flight -= 1
            self._active.record(self._in_flight, self._labels)

    def _learn(self, sample: Sample) -> None:
        """Feed one sample to the algorithm; admit waiters if the limit grew."""
        self._rtt = sample.rtt
        # Under overload a waiter is served only if it waited less than a call takes, so
        # a served call's latency stays within twice the calls' duration.
        self._line.stale_after = min(self._target, sample.rtt)
        old = self._capacity
        limit = self._core.update(sample)
        self._limit_gauge.record(limit, self._labels)
        new = self._capacity = max(1, int(limit))
        if new == old:
            return
        self._instrumentation.event(
            m.LIMIT_CHANGED,
            {
                m.SHEDDER_NAME: self.name,
                "scalepy.shedding.limit.old": old,
                "scalepy.shedding.limit.new": new,
            },
        )
        while self._in_flight < new and self._hand_over(self._clock.now()):
            self._in_flight += 1
        self._active.record(self._in_flight, self._labels)

    def _release(self, now: float) -> None:
        """Give the slot to the next waiter, or free it."""
        if self._in_flight > self._capacity or not self._hand_over(now):
            self._in_flight -= 1
            self._active.record(self._in_flight, self._labels)

    def _hand_over(self, now: float) -> bool:
        """Serve the next live waiter, shedding stale ones; whether one was served."""
        line = self._line
        while line:
            stale: list[_Waiter] = []
            waiter = line.pop(now, stale)
            for old in stale:
                if not old.done():
                    old.set_result("stale")
            if waiter is not None and not waiter.done():
                waiter.set_result(now)
                self._queued.record(len(line), self._labels)
                return True
        self._queued.record(0, self._labels)
        return False

    async def _wait(self, priority: Priority) -> float:
        """Queue for a slot; raise `RequestShed` if shed instead of served.

        Returns:
            When the slot was handed over: the call's duration counts from then,
            not from when its task next ran. The slot is taken from that moment, and
            the wait for the event loop in between is queueing the running calls
            cause (their CPU work), the signal the limit learns from.
        """
        loop = asyncio.get_running_loop()
        waiter: _Waiter = loop.create_future()
        line = self._line
        now = self._clock.now()
        refused = line.push(now, priority, waiter)
        if refused is waiter:
            self._reject(priority, "queue_full")
        if refused is not None and not refused.done():
            refused.set_result("evicted")
        self._queued.record(len(line), self._labels)
        if self._expiry is None and not math.isinf(self._max_wait):
            self._expiry = loop.create_task(self._expire())
        try:
            outcome = await waiter
        except BaseException:  # cancelled while waiting, or just as a slot was handed over
            if waiter.cancelled():
                line.remove(self._clock.now(), priority, waiter)
            elif not isinstance(waiter.result(), str):
                self._release(self._clock.now())  # a slot we will never use: pass it on
            raise
        if isinstance(outcome, str):
            self._reject(priority, outcome)
        return outcome

    async def _expire(self) -> None:
        """While calls wait, take out those that waited `max_wait`, unserved.

        One task for the whole line, not a timer per waiter: waiters leave in the
        order they came (`max_wait` is the same for all), so it sleeps until the
        oldest one's deadline. Waiting then costs a future and a place in line.
        """
        line, clock, max_wait = self._line, self._clock, self._max_wait
        try:
            while line.size:
                now = clock.now()
                due = line.oldest() + max_wait
                if now < due:
                    await clock.sleep(due - now)
                    continue
                expired: list[_Waiter] = []
                line.expire(now, max_wait, expired)
                for waiter in expired:
                    if not waiter.done():
                        waiter.set_result("timeout")
                self._queued.record(len(line), self._labels)
        finally:
            self._expiry = None

    def _reject(self, priority: Priority, reason: str) -> NoReturn:
        label = priority.label
        self._shed[label] += 1
        self._shed_counter.record(
            1, {m.SHEDDER_NAME: self.name, m.PRIORITY: label, m.REASON: reason}
        )
        # The line ahead drains at about `capacity` calls per mean call duration.
        retry_after = self._rtt * (len(self._line) + 1) / self._capacity
        raise RequestShed(self.name, label, reason, retry_after)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} in_flight={self._in_flight}/"
            f"{self._capacity} queued={len(self._line)} shed={sum(self._shed.values())}>"
        )


class Permit:
    """One call's hold on a `LoadShedder` slot; from `LoadShedder.slot()`.

    Args:
        shedder: The shedder to take the slot from.
        priority: The call's class.
    """

    __slots__ = ("_priority", "_shedder", "_started", "dropped")

    def __init__(self, shedder: LoadShedder, priority: Priority) -> None:
        self._shedder = shedder
        self._priority = priority
        self._started = math.nan  # NaN: not holding a slot (CRITICAL, or not entered)
        self.dropped = False
        """Set to mark the call as failed from overload even though it raised nothing."""

    async def __aenter__(self) -> Permit:
        if self._priority is not _CRITICAL:
            shedder = self._shedder
            self._started = (
                shedder._now() if shedder._admit() else await shedder._wait(self._priority)
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        started, self._started = self._started, math.nan
        if started != started:  # NaN: no slot held
            return
        if exc is not None:
            self._shedder._leave(started, exc)
        else:
            self._shedder._exit(started, dropped=self.dropped)
