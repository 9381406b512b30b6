"""`RetryPolicy` and the tenacity callbacks that carry it out."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict, cast
from weakref import WeakKeyDictionary

import tenacity

from scalepy._validation import check_finite, check_int
from scalepy.clock import MonotonicClock
from scalepy.errors import (
    BulkheadFull,
    CircuitOpenError,
    ConfigurationError,
    RateLimitExceeded,
    RequestShed,
)
from scalepy.retry._metrics import ATTEMPTS, OUTCOME
from scalepy.telemetry import get_default

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from scalepy.clock import Clock
    from scalepy.retry._budget import RetryBudget
    from scalepy.telemetry import Instrumentation, Recorder

__all__ = ("RetryPolicy", "TenacityKwargs")

_REJECTIONS: tuple[type[Exception], ...] = (
    CircuitOpenError,
    BulkheadFull,
    RateLimitExceeded,
    RequestShed,
)
_OUTCOME_LABELS = {
    outcome: {OUTCOME: outcome}
    for outcome in ("success", "retry", "exhausted", "budget_exhausted", "failure")
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When to retry, how long to wait in between, and when to give up.

    Raises:
        ConfigurationError: If a field holds a value that is not allowed; the
            message says what is.
    """

    attempts: int | None = 3
    """Total attempts including the first (1 means never retry), or `None` for no limit."""
    deadline: float | None = None
    """Seconds from the first attempt after which no retry starts, or `None` for no limit.

    A retry whose wait would end past the deadline is not started. At least one
    of `attempts` and `deadline` must be set.
    """
    initial_backoff: float = 0.1
    """Upper bound, in seconds, of the wait before the first retry."""
    max_backoff: float = 10.0
    """Upper bound, in seconds, of any wait; the exponential growth stops here."""
    multiplier: float = 2.0
    """How much the upper bound grows per retry, >= 1."""
    jitter: bool = True
    """Wait a uniformly random time up to the bound (full jitter); `False` waits the bound."""
    retry_on: tuple[type[Exception], ...] | Callable[[Exception], bool] = (Exception,)
    """Exception classes to retry, or a predicate deciding for each exception.

    Rejections (`CircuitOpenError`, `BulkheadFull`, `RateLimitExceeded`, `RequestShed`) are retried
    only if this is a tuple naming their class (or a subclass of it); a broader
    class such as `Exception` or a predicate never retries them.
    """
    rng: Callable[[], float] = field(default=random.random, repr=False)
    """Source of uniform random numbers in [0, 1] for the jitter; replace it in tests."""

    def __post_init__(self) -> None:
        if self.attempts is None and self.deadline is None:
            raise ConfigurationError("set attempts, deadline or both; both are None")
        if self.attempts is not None:
            check_int("attempts", self.attempts)
        if self.deadline is not None:
            check_finite("deadline", self.deadline, minimum=0, inclusive=False)
        check_finite("initial_backoff", self.initial_backoff, minimum=0, inclusive=False)
        check_finite("max_backoff", self.max_backoff, minimum=self.initial_backoff, inclusive=True)
        check_finite("multiplier", self.multiplier, minimum=1, inclusive=True)
        retry_on: object = self.retry_on
        if isinstance(retry_on, tuple):
            if not retry_on or not all(
                isinstance(kind, type) and issubclass(kind, Exception) for kind in retry_on
            ):
                raise ConfigurationError(
                    f"retry_on must be a non-empty tuple of Exception subclasses, got {retry_on!r}"
                )
        elif isinstance(retry_on, type) or not callable(retry_on):
            raise ConfigurationError(
                "retry_on must be a tuple of Exception subclasses, e.g. (ConnectionError,), "
                f"or a predicate taking the exception; got {retry_on!r}"
            )
        if not callable(self.rng):
            raise ConfigurationError(f"rng must be a callable returning [0, 1], got {self.rng!r}")

    def backoff_bound(self, retry: int) -> float:
        """Return the upper bound of the wait before retry number `retry`.

        Args:
            retry: 0 for the first retry, 1 for the second, and so on.

        Returns:
            `min(max_backoff, initial_backoff * multiplier**retry)` in seconds.
        """
        try:
            grown = self.initial_backoff * self.multiplier**retry
        except OverflowError:
            return self.max_backoff
        return min(self.max_backoff, grown)

    def backoff(self, retry: int) -> float:
        """Return the wait before retry number `retry`: full jitter below `backoff_bound()`.

        Args:
            retry: 0 for the first retry, 1 for the second, and so on.

        Returns:
            Seconds to wait; `rng() * bound` with jitter, else the bound itself.
        """
        bound = self.backoff_bound(retry)
        return self.rng() * bound if self.jitter else bound

    def should_retry(self, exc: BaseException) -> bool:
        """Decide whether an attempt that raised `exc` may be retried.

        Args:
            exc: What the attempt raised.

        Returns:
            Whether `retry_on` covers it, as the field describes; always `False`
            for exceptions that are not `Exception`s, such as cancellation.
        """
        if not isinstance(exc, Exception):
            return False
        retry_on = self.retry_on
        if isinstance(exc, _REJECTIONS):
            return isinstance(retry_on, tuple) and any(
                issubclass(kind, _REJECTIONS) and isinstance(exc, kind) for kind in retry_on
            )
        if isinstance(retry_on, tuple):
            return isinstance(exc, retry_on)
        return retry_on(exc)

    def tenacity_kwargs(
        self,
        *,
        budget: RetryBudget | None = None,
        clock: Clock | None = None,
        instrumentation: Instrumentation | None = None,
    ) -> TenacityKwargs:
        """Return tenacity arguments implementing this policy, for any tenacity API.

        `tenacity.AsyncRetrying(sleep=..., **policy.tenacity_kwargs())` and
        `@tenacity.retry(**policy.tenacity_kwargs())` both work.

        Args:
            budget: A budget shared with other calls, or `None` for no budget.
            clock: Where the deadline is measured; the monotonic clock if `None`.
            instrumentation: Where attempts are counted; the process default if `None`.

        Returns:
            `stop`, `wait`, `retry`, `before` and `reraise` for tenacity.
        """
        controller = _Controller(
            self,
            budget,
            clock or MonotonicClock(),
            (instrumentation or get_default()).metric(ATTEMPTS),
        )
        return TenacityKwargs(
            stop=controller.stop,
            wait=controller.wait,
            retry=controller.retry,
            before=controller.before,
            reraise=True,
        )

    def as_tenacity(
        self,
        *,
        budget: RetryBudget | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        instrumentation: Instrumentation | None = None,
    ) -> tenacity.AsyncRetrying:
        """Return a `tenacity.AsyncRetrying` implementing this policy.

        Args:
            budget: A budget shared with other calls, or `None` for no budget.
            clock: Where the deadline is measured; the monotonic clock if `None`.
            sleep: How to wait between attempts; `clock.sleep` if `None`.
            instrumentation: Where attempts are counted; the process default if `None`.

        Returns:
            A retrying object; `await retrying(fn, *args)` or `async for attempt in retrying`.
        """
        clock = clock or MonotonicClock()
        kwargs = self.tenacity_kwargs(budget=budget, clock=clock, instrumentation=instrumentation)
        return tenacity.AsyncRetrying(sleep=sleep or clock.sleep, **kwargs)

    def as_tenacity_sync(
        self,
        *,
        budget: RetryBudget | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        instrumentation: Instrumentation | None = None,
    ) -> tenacity.Retrying:
        """Return a `tenacity.Retrying` implementing this policy for sync code.

        Args:
            budget: A budget shared with other calls, or `None` for no budget.
            clock: Where the deadline is measured; the monotonic clock if `None`.
            sleep: How to wait between attempts; `time.sleep` by default.
            instrumentation: Where attempts are counted; the process default if `None`.

        Returns:
            A retrying object; `retrying(fn, *args)` or `for attempt in retrying`.
        """
        kwargs = self.tenacity_kwargs(budget=budget, clock=clock, instrumentation=instrumentation)
        return tenacity.Retrying(sleep=sleep, **kwargs)


class TenacityKwargs(TypedDict):
    """Keyword arguments for `tenacity.Retrying`, `AsyncRetrying` and `tenacity.retry`."""

    stop: Callable[[tenacity.RetryCallState], bool]
    wait: Callable[[tenacity.RetryCallState], float]
    retry: Callable[[tenacity.RetryCallState], bool]
    before: Callable[[tenacity.RetryCallState], None]
    reraise: bool


class _Controller:
    """Tenacity's callbacks for one policy, budget, clock and recorder.

    One controller may serve many concurrent calls, so per-call state (the
    deadline's start) is keyed by tenacity's `RetryCallState`.
    """

    __slots__ = ("_budget", "_clock", "_policy", "_record", "_started")

    def __init__(
        self, policy: RetryPolicy, budget: RetryBudget | None, clock: Clock, recorder: Recorder
    ) -> None:
        self._policy = policy
        self._budget = budget
        self._clock = clock
        self._record = recorder.record
        self._started: WeakKeyDictionary[tenacity.RetryCallState, float] = WeakKeyDictionary()

    def before(self, state: tenacity.RetryCallState) -> None:
        """On a call's first attempt, pay into the budget and start the deadline."""
        if state.attempt_number == 1:
            if self._budget is not None:
                self._budget.deposit()
            if self._policy.deadline is not None:
                self._started[state] = self._clock.now()

    def retry(self, state: tenacity.RetryCallState) -> bool:
        """Decide from the attempt's outcome whether a retry is wanted at all."""
        outcome = cast("tenacity.Future", state.outcome)
        exc = outcome.exception()
        if exc is None:
            self._record(1, _OUTCOME_LABELS["success"])
        elif self._policy.should_retry(exc):
            return True
        elif isinstance(exc, Exception):
            self._record(1, _OUTCOME_LABELS["failure"])
        return False

    def wait(self, state: tenacity.RetryCallState) -> float:
        """Return the wait before the next attempt."""
        return self._policy.backoff(state.attempt_number - 1)

    def stop(self, state: tenacity.RetryCallState) -> bool:
        """Decide whether the wanted retry happens, counting the attempt either way."""
        outcome = self._verdict(state)
        self._record(1, _OUTCOME_LABELS[outcome])
        return outcome != "retry"

    def _verdict(self, state: tenacity.RetryCallState) -> str:
        policy = self._policy
        if policy.attempts is not None and state.attempt_number >= policy.attempts:
            return "exhausted"
        if policy.deadline is not None:
            elapsed = self._clock.now() - self._started[state]
            if elapsed + state.upcoming_sleep > policy.deadline:
                return "exhausted"
        if self._budget is not None and not self._budget.withdraw():
            return "budget_exhausted"
        return "retry"
