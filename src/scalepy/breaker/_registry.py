"""`BreakerRegistry`: one circuit breaker per name, shared by everything that asks for it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from scalepy.breaker._breaker import CircuitBreaker, ExceptionFilter
from scalepy.errors import ConfigurationError
from scalepy.telemetry import NOOP

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from scalepy.breaker._events import BreakerStatistics, StateChange
    from scalepy.breaker._state import WindowType
    from scalepy.clock import Clock
    from scalepy.telemetry import Instrumentation

__all__ = ("BreakerOptions", "BreakerRegistry")


class BreakerOptions(TypedDict, total=False):
    """The `CircuitBreaker` options a registry passes through; see `CircuitBreaker`."""

    failure_rate_threshold: float
    slow_call_rate_threshold: float
    slow_call_duration: float
    minimum_calls: int
    window: WindowType
    window_size: int
    open_for: float
    open_for_max: float | None
    backoff: float
    permitted_calls_in_half_open: int
    max_wait_in_half_open: float | None
    record: ExceptionFilter
    ignore: ExceptionFilter
    failure_result: Callable[[Any], bool] | None
    fallback: Callable[[Exception], Any] | None
    timeout: float | None
    listeners: Iterable[Callable[[StateChange], object]]


class BreakerRegistry:
    """Named circuit breakers, created on first use with one clock and instrumentation.

    Every part of an application that protects the same dependency should ask
    the registry for its breaker by name, so they all trip together.

    Args:
        clock: Time source given to every breaker; `time.monotonic` if `None`.
        instrumentation: Given to every breaker; the process default if `None`.

    Example:
        ```python
        breakers = BreakerRegistry()
        db = breakers.get_or_create("postgres", failure_rate_threshold=0.3)
        assert breakers.get("postgres") is db
        ```
    """

    __slots__ = ("_breakers", "_clock", "_instrumentation")

    def __init__(
        self, *, clock: Clock | None = None, instrumentation: Instrumentation | None = None
    ) -> None:
        self._clock = clock
        self._instrumentation = instrumentation
        self._breakers: dict[str, CircuitBreaker] = {}

    def get_or_create(self, name: str, **options: Unpack[BreakerOptions]) -> CircuitBreaker:
        """Return the breaker called `name`, creating it with `options` the first time.

        Args:
            name: The breaker's name.
            **options: `CircuitBreaker` options. For an existing breaker they may
                be omitted; if given, they must describe the same configuration.

        Returns:
            The one breaker of that name.

        Raises:
            ConfigurationError: An option is invalid, or differs from the
                configuration of the existing breaker of that name.
        """
        existing = self._breakers.get(name)
        if existing is None:
            breaker = CircuitBreaker(
                name, clock=self._clock, instrumentation=self._instrumentation, **options
            )
            self._breakers[name] = breaker
            return breaker
        if options:
            wanted = CircuitBreaker(name, instrumentation=NOOP, **options)
            if wanted._settings != existing._settings:
                raise ConfigurationError(
                    f"circuit breaker {name!r} already exists with {existing.config!r}; "
                    f"ask for it without options, or with the same ones"
                )
        return existing

    def get(self, name: str) -> CircuitBreaker:
        """Return an existing breaker.

        Args:
            name: The breaker's name.

        Returns:
            The breaker.

        Raises:
            KeyError: If no breaker of that name was created.
        """
        try:
            return self._breakers[name]
        except KeyError:
            raise KeyError(
                f"no circuit breaker {name!r}; known: {sorted(self._breakers)!r}"
            ) from None

    def statistics(self) -> dict[str, BreakerStatistics]:
        """Return a snapshot of every breaker.

        Returns:
            `CircuitBreaker.statistics()` of each breaker, by name.
        """
        return {name: breaker.statistics() for name, breaker in self._breakers.items()}

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(tuple(self._breakers.values()))

    def __len__(self) -> int:
        return len(self._breakers)

    def __repr__(self) -> str:
        return f"BreakerRegistry(breakers={sorted(self._breakers)!r})"
