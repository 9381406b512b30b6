"""A guard that stops a primitive from waiting on a backend that keeps failing.

While a backend (Redis) is down, every call would wait for its timeout before the
primitive's failure policy applies. The guard opens after a few consecutive
failures: calls skip the backend at once and take the failure path. After a delay
one call is let through as a probe; success closes the guard, failure reopens it
for twice as long (capped). Recovery is therefore automatic and costs one call.

It is deliberately small: the cache, the rate limiter and the queue consult it on
every call, so `available()` is a couple of comparisons.

A guard given a `name` also says when its primitive changes mode, on the
`scalepy.backends` logger: one WARNING when a call first fails (the primitive now
serves by its failure policy: loaders, fail-open, a local limiter), naming the
backend's masked URL and the cause, and one INFO when a call succeeds again. At
most one WARNING per `log_interval` seconds, so a flapping backend does not flood
the log; an outage that begins within that spell is reported once it is over.
`ping()` is the startup check: it asks the backend now and raises.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from scalepy._validation import check_finite
from scalepy.backends._masking import redact
from scalepy.clock import MonotonicClock
from scalepy.errors import BackendError, BackendUnavailable, ConfigurationError

if TYPE_CHECKING:
    from scalepy.clock import Clock

__all__ = ("BackendGuard", "SupportsPing")

_logger = logging.getLogger("scalepy.backends")


@runtime_checkable
class SupportsPing(Protocol):
    """A store that can ask its backend whether it answers (the Redis stores).

    An optional ability: a store without it (memory) has nothing to fail, and
    `BackendGuard.ping()` passes at once.
    """

    async def ping(self) -> object:
        """Ask the backend for an answer, logging in and selecting the database.

        Raises:
            BackendError: The backend cannot be reached or refused us.
        """
        ...


class BackendGuard:
    """Opens after `failure_threshold` consecutive failures; probes after a growing delay.

    Args:
        failure_threshold: Consecutive failures that open the guard.
        initial_delay: Seconds the guard stays open after it first opens.
        max_delay: Cap of the delay, which doubles after each failed probe.
        clock: Time source; the monotonic clock by default.
        name: What the logs and `ping()` errors call the primitive, e.g.
            `"cache 'todo'"`; without one the guard logs nothing.
        log_interval: Least seconds between two "degraded" WARNINGs.

    Raises:
        ConfigurationError: A threshold below 1, delays that are not positive, or a
            log interval that is not a finite number >= 0.

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
        "_log_interval",
        "_max_delay",
        "_name",
        "_probing",
        "_quiet_until",
        "_retry_at",
        "_threshold",
        "_warned",
    )

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        initial_delay: float = 0.5,
        max_delay: float = 30.0,
        clock: Clock | None = None,
        name: str | None = None,
        log_interval: float = 60.0,
    ) -> None:
        if failure_threshold < 1:
            raise ConfigurationError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if not 0 < initial_delay <= max_delay:
            raise ConfigurationError(
                f"delays must satisfy 0 < initial_delay <= max_delay, "
                f"got {initial_delay} and {max_delay}"
            )
        check_finite("log_interval", log_interval, inclusive=True)
        self._threshold = failure_threshold
        self._initial_delay = initial_delay
        self._max_delay = max_delay
        self._clock = clock or MonotonicClock()
        self._failures = 0
        self._delay = initial_delay
        self._retry_at: float | None = None  # set while open
        self._probing = False
        self._name = name
        self._log_interval = log_interval
        self._warned: str | None = None  # the backend named in an unanswered WARNING
        self._quiet_until = -float("inf")

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
        if self._warned is not None:
            _logger.info("%s recovered: %s answers again", self._name, self._warned)
            self._warned = None

    def record_failure(self, error: BackendError | None = None) -> None:
        """Report a call the backend failed; opens (or reopens) the guard when due.

        Args:
            error: What failed, named in the "degraded" WARNING of a named guard.
        """
        self._failures += 1
        if self._warned is None and self._name is not None:
            self._warn(error)  # also later in an outage that began within a quiet spell
        if self._probing:
            self._probing = False
            self._delay = min(self._delay * 2, self._max_delay)
        elif self._failures < self._threshold or self._retry_at is not None:
            return
        self._retry_at = self._clock.now() + self._delay

    async def ping(self, store: object) -> None:
        """Ask `store`'s backend for an answer now, whatever the guard's state.

        The outcome counts as a call: a failure logs the WARNING (once), a success
        after failures the INFO. A store without `ping()` (memory) passes at once.

        Args:
            store: The primitive's store.

        Raises:
            BackendUnavailable: The backend cannot be reached, or refused us (a wrong
                password or database index); `BackendTimeout` if it did not answer
                in time. The message names the primitive and the cause, `backend`
                is the masked URL, and the driver's error is chained.
        """
        if not isinstance(store, SupportsPing):
            return
        try:
            await store.ping()
        except BackendError as exc:
            self.record_failure(exc)
            error = type(exc) if isinstance(exc, BackendUnavailable) else BackendUnavailable
            name = self._name or "the primitive"
            raise error(
                f"{name} cannot use its backend: {_cause(exc)}", backend=exc.backend
            ) from exc
        self.record_success()

    def _warn(self, error: BackendError | None) -> None:
        now = self._clock.now()
        if now < self._quiet_until:
            return
        self._quiet_until = now + self._log_interval
        self._warned = error.backend if error is not None else "its backend"
        _logger.warning(
            "%s is degraded: %s failed (%s); it follows its failure policy until the "
            "backend answers again",
            self._name,
            self._warned,
            _cause(error) if error is not None else "unknown cause",
        )

    def __repr__(self) -> str:
        state = "closed" if self._retry_at is None else "probing" if self._probing else "open"
        return f"<BackendGuard {state} failures={self._failures} delay={self._delay}>"


def _cause(error: BackendError) -> str:
    """The error's class and its message (ours or the server's), secrets masked."""
    return f"{type(error).__name__}: {redact(error.message)}"
