"""A guard that stops a primitive from waiting on a backend that keeps failing.

While a backend (Redis) is down, every call would wait for its timeout before the
primitive's failure policy applies. The guard opens after a few consecutive
failures: calls skip the backend at once and take the failure path. After a delay
one call is let through as a probe; success closes the guard, failure reopens it
for twice as long (capped). Recovery is therefore automatic and costs one call.

It is deliberately small: the cache, the rate limiter and the queue consult it on
every call, so `available()` is a couple of comparisons.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scalepy.clock import MonotonicClock
from scalepy.errors import ConfigurationError

if TYPE_CHECKING:
    from scalepy.clock import Clock

__all__ = ("BackendGuard",)


class BackendGuard:
    """Opens after `failure_threshold` consecutive failures; probes after a growing delay.

    Args:
        failure_threshold: Consecutive failures that open the guard.
        initial_delay: Seconds the guard stays open after it first opens.
        max_delay: Cap of the delay, which doubles after each failed probe.
        clock: Time source; the monotonic clock by default.

    Raises:
        ConfigurationError: A threshold below 1 or delays that are not positive.

    Example:
        ```python
        if guard.available():
            try:
                reply = await redis.execute("GET", key)
            except BackendError:
                guard.record_failure()
            else:
                guard.record_success()
        ```
    """

    __slots__ = (
        "_clock",
        "_delay",
        "_failures",
        "_initial_delay",
        "_max_delay",
        "_probing",
        "_retry_at",
        "_threshold",
    )

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        initial_delay: float = 0.5,
        max_delay: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ConfigurationError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if not 0 < initial_delay <= max_delay:
            raise ConfigurationError(
                f"delays must satisfy 0 < initial_delay <= max_delay, "
                f"got {initial_delay} and {max_delay}"
            )
        self._threshold = failure_threshold
        self._initial_delay = initial_delay
        self._max_delay = max_delay
        self._clock = clock or MonotonicClock()
        self._failures = 0
        self._delay = initial_delay
        self._retry_at: float | None = None  # set while open
        self._probing = False

    @property
    def is_open(self) -> bool:
        """Whether calls currently skip the backend (a probe may be under way)."""
        return self._retry_at is not None

    @property
    def retry_after(self) -> float:
        """Seconds until the next probe may run; 0 when the guard is closed."""
        if self._retry_at is None:
            return 0.0
        return max(0.0, self._retry_at - self._clock.now())

    def available(self) -> bool:
        """Return whether this call may use the backend.

        When the guard is open and its delay has passed, the first caller is told
        `True` (it is the probe) and everyone else `False` until the probe reports.
        """
        if self._retry_at is None:
            return True
        if self._probing or self._clock.now() < self._retry_at:
            return False
        self._probing = True
        return True

    def record_success(self) -> None:
        """Report a call that reached the backend: the guard closes."""
        if not self._failures and self._retry_at is None:
            return  # already closed: the common case costs two comparisons
        self._failures = 0
        self._delay = self._initial_delay
        self._retry_at = None
        self._probing = False

    def record_failure(self) -> None:
        """Report a call the backend failed; opens (or reopens) the guard when due."""
        self._failures += 1
        if self._probing:
            self._probing = False
            self._delay = min(self._delay * 2, self._max_delay)
        elif self._failures < self._threshold or self._retry_at is not None:
            return
        self._retry_at = self._clock.now() + self._delay

    def __repr__(self) -> str:
        state = "closed" if self._retry_at is None else "probing" if self._probing else "open"
        return f"<BackendGuard {state} failures={self._failures} delay={self._delay}>"
