"""`CircuitBreaker`: the async shell around the pure state machine, with telemetry.

The shell reads the clock around each call, classifies the outcome and hands it
to `BreakerCore`; every decision is the core's. The hot path of a CLOSED breaker
is one state check, two clock reads and one `record()` call: no lock (asyncio
runs one task at a time and the core never awaits), no allocation, and no
telemetry call unless a real instrumentation is configured.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeAlias, TypeVar, overload

from scalepy._callables import is_async_callable
from scalepy._lifecycle import AsyncOnly
from scalepy._validation import check_finite, check_name, check_object
from scalepy.breaker._events import BreakerStatistics, StateChange
from scalepy.breaker._metrics import (
    BREAKER_NAME,
    BREAKER_STATE,
    CALL_DURATION,
    CALL_OUTCOME,
    CALLS,
    STATE,
    TRANSITION_FROM,
    TRANSITION_TO,
    TRANSITIONS,
)
from scalepy.breaker._state import BreakerConfig, BreakerCore, BreakerState, WindowType
from scalepy.errors import CircuitOpenError, ConfigurationError
from scalepy.telemetry import NoopInstrumentation, get_default

if TYPE_CHECKING:
    from collections.abc import Awaitable, Coroutine, Iterable
    from types import TracebackType

    from scalepy.breaker._shared import SharedState
    from scalepy.clock import Clock
    from scalepy.telemetry import Instrumentation

__all__ = ("CircuitBreaker", "ExceptionFilter")

P = ParamSpec("P")
R = TypeVar("R")

ExceptionFilter: TypeAlias = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[Exception], bool]
)
"""Exception types (matched with `isinstance`), or a predicate on the exception."""

_OUTCOMES = ("success", "failure", "slow", "rejected", "ignored")
_CLOSED = BreakerState.CLOSED
_logger = logging.getLogger("scalepy.breaker")


@dataclass(slots=True)
class _Entry:
    """One `async with breaker:` block in progress; a stack per task via `_ENTRY`."""

    breaker: CircuitBreaker
    generation: int
    started: float
    timeout: asyncio.Timeout | None
    parent: _Entry | None


_ENTRY: ContextVar[_Entry | None] = ContextVar("scalepy.breaker.entry", default=None)


class _CallTimeout(TimeoutError):
    """A call ran past the breaker's `timeout`; always counted as a failure."""


def _with_timeout(
    func: Callable[P, Awaitable[R]], timeout: float
) -> Callable[P, Coroutine[Any, Any, R]]:
    async def timed(*args: P.args, **kwargs: P.kwargs) -> R:
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                return await func(*args, **kwargs)
        except TimeoutError:
            if deadline.expired():  # our deadline, not a TimeoutError of the call's own
                raise _CallTimeout(f"call took longer than {timeout} s") from None
            raise

    return timed


async def _call_fallback(fallback: Callable[[Exception], Any], exc: Exception) -> Any:
    result = fallback(exc)
    if inspect.isawaitable(result):
        return await result
    return result


def _matcher(spec: object, option: str) -> Callable[[Exception], bool]:
    if isinstance(spec, type) and issubclass(spec, BaseException):
        spec = (spec,)
    if isinstance(spec, tuple):
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in spec):
            raise ConfigurationError(
                f"{option} must be exception types or a predicate, got {spec!r}"
            )
        types: tuple[type[BaseException], ...] = spec
        return lambda exc: isinstance(exc, types)
    if callable(spec):
        predicate: Callable[[Exception], bool] = spec
        return predicate
    raise ConfigurationError(f"{option} must be exception types or a predicate, got {spec!r}")


class CircuitBreaker(AsyncOnly):
    """Stops calling a failing dependency, then probes it until it recovers.

    Use it as a decorator on async or sync functions, or around a block with
    `async with breaker:`. Outcomes are judged over a sliding window (the last
    `window_size` calls, or the calls of the last `window_size` seconds): once
    it holds `minimum_calls` calls and the failure rate or the slow-call rate
    reaches its threshold, the breaker opens and rejects calls with
    `CircuitOpenError` for `open_for` seconds; then it lets
    `permitted_calls_in_half_open` trial calls through, which close it again
    or reopen it (for longer, with `backoff` > 1).

    An exception matching `ignore`, and any `BaseException` that is not an
    `Exception` (cancellation), is not counted; one matching `record` is a
    failure; any other exception counts as a success. Exceptions always
    propagate unless `fallback` handles them.

    Args:
        name: Names the breaker in errors, metrics and events.
        failure_rate_threshold: Failure rate that opens the breaker, in (0, 1].
        slow_call_rate_threshold: Slow-call rate that opens the breaker, in (0, 1].
        slow_call_duration: Seconds above which a call is slow.
        minimum_calls: Calls the window must hold before it is judged.
        window: `"count"` (the last `window_size` calls) or `"time"` (the
            calls of the last `window_size` seconds).
        window_size: Calls or seconds in the window.
        open_for: Seconds the breaker stays open before trial calls.
        open_for_max: Longest wait in OPEN once it grows; needed if `backoff` > 1.
        backoff: Factor the wait in OPEN grows by after each failed trial.
        permitted_calls_in_half_open: Trial calls admitted in HALF_OPEN; extra
            concurrent callers are rejected.
        max_wait_in_half_open: Seconds HALF_OPEN waits for its trials before
            reopening; `None` waits forever.
        record: Exceptions that count as failures: types or a predicate.
        ignore: Exceptions that are not counted at all: types or a predicate.
        failure_result: Predicate on a decorated call's result that makes it a
            failure (the result is still returned).
        fallback: Called with the `CircuitOpenError` of a rejected call, or the
            exception of a failed call, of a decorated function; its result (awaited
            if need be) is returned instead. Must be sync for sync functions.
        timeout: Seconds an async call (or `async with` block) may take; one that
            takes longer is cancelled, counted as a failure and raises `TimeoutError`.
        clock: Time source; `time.monotonic` if `None`. Timeouts use the event loop.
        instrumentation: Where metrics and events go; the process default if `None`.
        listeners: Called with a `StateChange` after every transition.
        shared: Shares the state with the breakers of the same name in other
            replicas, e.g. `RedisSharedState(url)`; the hot path is unchanged.
            `aclose()` stops the sharing.

    Raises:
        ConfigurationError: An option holds a value that is not allowed, or `shared`
            is not a `SharedState` (a URL, say).

    Example:
        ```python
        breaker = CircuitBreaker("postgres", failure_rate_threshold=0.5, open_for=10)

        @breaker
        async def fetch_user(user_id: int) -> User: ...

        async with breaker:
            await conn.execute("SELECT 1")
        ```
    """

    __slots__ = (
        "_calls",
        "_core",
        "_duration",
        "_failure_result",
        "_fallback",
        "_ignore",
        "_instrumentation",
        "_listeners",
        "_name_labels",
        "_now",
        "_observed",
        "_outcome_labels",
        "_record",
        "_settings",
        "_shared",
        "_state_gauge",
        "_state_labels",
        "_timeout",
        "_transition_labels",
        "_transitions",
        "config",
        "name",
    )

    def __init__(
        self,
        name: str,
        *,
        failure_rate_threshold: float = 0.5,
        slow_call_rate_threshold: float = 1.0,
        slow_call_duration: float = 60.0,
        minimum_calls: int = 20,
        window: WindowType = "count",
        window_size: int = 100,
        open_for: float = 30.0,
        open_for_max: float | None = None,
        backoff: float = 1.0,
        permitted_calls_in_half_open: int = 5,
        max_wait_in_half_open: float | None = None,
        record: ExceptionFilter = (Exception,),
        ignore: ExceptionFilter = (),
        failure_result: Callable[[Any], bool] | None = None,
        fallback: Callable[[Exception], Any] | None = None,
        timeout: float | None = None,
        clock: Clock | None = None,
        instrumentation: Instrumentation | None = None,
        listeners: Iterable[Callable[[StateChange], object]] = (),
        shared: SharedState | None = None,
    ) -> None:
        check_name("CircuitBreaker", name)
        if timeout is not None:
            check_finite("timeout", timeout)
        self.name = name
        self.config = BreakerConfig(
            failure_rate_threshold=failure_rate_threshold,
            slow_call_rate_threshold=slow_call_rate_threshold,
            slow_call_duration=slow_call_duration,
            minimum_calls=minimum_calls,
            window_type=window,
            window_size=window_size,
            open_for=open_for,
            open_for_max=open_for_max,
            backoff=backoff,
            permitted_calls_in_half_open=permitted_calls_in_half_open,
            max_wait_in_half_open=max_wait_in_half_open,
        )
        self._record = _matcher(record, "record")
        self._ignore = _matcher(ignore, "ignore")
        self._failure_result = failure_result
        self._fallback = fallback
        self._timeout = timeout
        self._listeners = tuple(listeners)
        # What the registry compares to detect a conflicting configuration.
        self._settings = (
            self.config,
            record,
            ignore,
            failure_result,
            fallback,
            timeout,
            self._listeners,
        )
        self._now: Callable[[], float] = time.monotonic if clock is None else clock.now
        self._core = BreakerCore(self.config, on_transition=self._on_transition)
        self._shared = shared
        if shared is not None:
            check_object(
                "CircuitBreaker(shared=...) takes",
                shared,
                "attach",
                "a SharedState",
                "e.g. shared=RedisSharedState(url), one per breaker",
            )
            self._listeners += (shared.attach(name, self._core, self._now),)
        self._init_telemetry(instrumentation or get_default())

    def _init_telemetry(self, instrumentation: Instrumentation) -> None:
        self._instrumentation = instrumentation
        self._observed = not isinstance(instrumentation, NoopInstrumentation)
        self._state_gauge = instrumentation.metric(STATE)
        self._calls = instrumentation.metric(CALLS)
        self._transitions = instrumentation.metric(TRANSITIONS)
        self._duration = instrumentation.metric(CALL_DURATION)
        # Built once: one labels dict per outcome and per transition, none per call.
        name = self.name
        self._name_labels = {BREAKER_NAME: name}
        self._state_labels = {s: {BREAKER_NAME: name, BREAKER_STATE: s.label} for s in BreakerState}
        self._outcome_labels = {o: {BREAKER_NAME: name, CALL_OUTCOME: o} for o in _OUTCOMES}
        self._transition_labels = {
            (a, b): {BREAKER_NAME: name, TRANSITION_FROM: a.label, TRANSITION_TO: b.label}
            for a in BreakerState
            for b in BreakerState
            if a is not b
        }
        # Exported from the start, so a breaker that never trips still shows CLOSED.
        self._record_state(self._core.state)

    def _record_state(self, current: BreakerState) -> None:
        """Set the state set: 1 for `current`, 0 for every other state."""
        for state, labels in self._state_labels.items():
            self._state_gauge.record(1.0 if state is current else 0.0, labels)

    # -- state -----------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The current state; an OPEN breaker whose wait has passed reports HALF_OPEN."""
        return self._core.update(self._now())

    def statistics(self) -> BreakerStatistics:
        """Return a snapshot of the state and the window.

        Returns:
            A frozen `BreakerStatistics`.
        """
        now = self._now()
        core = self._core
        state = core.update(now)
        window = core.window
        window.advance(now)
        return BreakerStatistics(
            name=self.name,
            state=state,
            window=self.config.window_type,
            calls=window.calls,
            failures=window.failures,
            slow_calls=window.slow_calls,
            failure_rate=window.failure_rate,
            slow_call_rate=window.slow_call_rate,
            rejected=core.rejected,
            transitions=core.transitions,
            retry_after=core.retry_after(now),
        )

    def force_open(self) -> None:
        """Reject every call until `reset()` (or `disable()`) is called."""
        self._core.transition_to(BreakerState.FORCED_OPEN, self._now())

    def disable(self) -> None:
        """Let every call through, recording nothing, until `reset()` is called."""
        self._core.transition_to(BreakerState.DISABLED, self._now())

    def reset(self) -> None:
        """Return to CLOSED with an empty window and the initial wait in OPEN."""
        self._core.reset(self._now())

    async def aclose(self) -> None:
        """Stop sharing the state (see `shared`); the breaker keeps working locally."""
        if self._shared is not None:
            await self._shared.aclose()

    # -- decorator -------------------------------------------------------------

    @overload
    def __call__(
        self, func: Callable[P, Coroutine[Any, Any, R]], /
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(self, func: Callable[P, R], /) -> Callable[P, R]: ...

    def __call__(self, func: Callable[P, Any], /) -> Callable[P, Any]:
        """Wrap a function so every call goes through the breaker.

        Args:
            func: An async or sync function; the wrapper keeps its signature,
                name and docstring.

        Returns:
            The wrapped function, async if `func` is.

        Raises:
            ConfigurationError: A sync function with a `timeout` or an async `fallback`.
        """
        if is_async_callable(func):
            return self._wrap_async(func)
        if self._timeout is not None:
            raise ConfigurationError(
                f"breaker {self.name!r} has a timeout, which applies only to async functions; "
                f"{func!r} is sync"
            )
        if self._fallback is not None and is_async_callable(self._fallback):
            raise ConfigurationError(
                f"breaker {self.name!r} has an async fallback, which a sync function "
                f"({func!r}) cannot await"
            )
        return self._wrap_sync(func)

    def _wrap_async(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        # The timeout is a layer under the breaker's wrapper, so a breaker without
        # one pays nothing for it.
        run = func if self._timeout is None else _with_timeout(func, self._timeout)
        core = self._core
        now = self._now
        failure_result = self._failure_result
        observed = self._observed
        fallback = self._fallback

        @functools.wraps(func)
        async def call(*args: P.args, **kwargs: P.kwargs) -> R:
            if core.state is not _CLOSED and not core.acquire(at := now()):
                if fallback is None:
                    raise self._reject(at)
                rejected: R = await _call_fallback(fallback, self._reject(at))
                return rejected
            generation = core.generation
            started = now()
            try:
                result = await run(*args, **kwargs)
            except Exception as exc:
                if self._failed(exc, started, generation) and fallback:
                    substitute: R = await _call_fallback(fallback, exc)
                    return substitute
                raise
            except BaseException:
                self._ignored(started, generation)
                raise
            ended = now()
            failed = failure_result is not None and failure_result(result)
            core.record(ended, ended - started, failed, generation)
            if observed:
                self._observe(ended - started, failed)
            return result

        return call

    def _wrap_sync(self, func: Callable[P, R]) -> Callable[P, R]:
        core = self._core
        now = self._now
        failure_result = self._failure_result
        observed = self._observed
        fallback = self._fallback

        @functools.wraps(func)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            if core.state is not _CLOSED and not core.acquire(at := now()):
                if fallback is None:
                    # Raised straight away: a local would tie the error and this frame
                    # into a reference cycle on every rejection.
                    raise self._reject(at)
                result: R = fallback(self._reject(at))
                return result
            generation = core.generation
            started = now()
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                if self._failed(exc, started, generation) and fallback:
                    substitute: R = fallback(exc)
                    return substitute
                raise
            except BaseException:
                self._ignored(started, generation)
                raise
            ended = now()
            failed = failure_result is not None and failure_result(result)
            core.record(ended, ended - started, failed, generation)
            if observed:
                self._observe(ended - started, failed)
            return result

        return call

    # -- async with ------------------------------------------------------------

    async def __aenter__(self) -> Self:
        core = self._core
        if core.state is not _CLOSED and not core.acquire(at := self._now()):
            raise self._reject(at)
        deadline = None
        if self._timeout is not None:
            deadline = asyncio.timeout(self._timeout)
            await deadline.__aenter__()
        _ENTRY.set(_Entry(self, core.generation, self._now(), deadline, _ENTRY.get()))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        entry = _ENTRY.get()
        if entry is None or entry.breaker is not self:
            raise RuntimeError(f"breaker {self.name!r} exited a block it did not enter")
        _ENTRY.set(entry.parent)
        if entry.timeout is not None:
            try:
                await entry.timeout.__aexit__(exc_type, exc, traceback)
            except TimeoutError:
                error = _CallTimeout(f"block took longer than {self._timeout} s")
                self._failed(error, entry.started, entry.generation)
                raise error from None
        if exc is None:
            ended = self._now()
            self._core.record(ended, ended - entry.started, False, entry.generation)
            if self._observed:
                self._observe(ended - entry.started, False)
        elif isinstance(exc, Exception):
            self._failed(exc, entry.started, entry.generation)
        else:
            self._ignored(entry.started, entry.generation)

    # -- outcomes --------------------------------------------------------------

    def _failed(self, exc: Exception, started: float, generation: int) -> bool:
        """Record a call that raised; return whether it counted as a failure."""
        timed_out = isinstance(exc, _CallTimeout)
        if not timed_out and self._ignore(exc):
            self._ignored(started, generation)
            return False
        ended = self._now()
        failed = timed_out or self._record(exc)
        self._core.record(ended, ended - started, failed, generation)
        if self._observed:
            self._observe(ended - started, failed)
        return failed

    def _ignored(self, started: float, generation: int) -> None:
        self._core.release(generation)
        if self._observed:
            self._duration.record(self._now() - started, self._name_labels)
            self._calls.record(1, self._outcome_labels["ignored"])

    def _observe(self, duration: float, failed: bool) -> None:
        if failed:
            outcome = "failure"
        elif duration > self.config.slow_call_duration:
            outcome = "slow"
        else:
            outcome = "success"
        self._duration.record(duration, self._name_labels)
        self._calls.record(1, self._outcome_labels[outcome])

    def _reject(self, now: float) -> CircuitOpenError:
        retry_after = self._core.retry_after(now)
        if self._observed:
            self._calls.record(1, self._outcome_labels["rejected"])
            self._instrumentation.event(
                "scalepy.breaker.rejected",
                {BREAKER_NAME: self.name, "scalepy.breaker.retry_after": retry_after},
            )
        return CircuitOpenError(self.name, retry_after)

    def _on_transition(self, previous: BreakerState, state: BreakerState, now: float) -> None:
        if self._observed:
            self._record_state(state)
            self._transitions.record(1, self._transition_labels[previous, state])
            self._instrumentation.event(
                "scalepy.breaker.state_change",
                self._transition_labels[previous, state],
            )
        change = StateChange(name=self.name, from_state=previous, to_state=state, at=now)
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:
                _logger.exception("listener %r of circuit breaker %r failed", listener, self.name)

    def __repr__(self) -> str:
        core = self._core
        window = core.window
        return (
            f"CircuitBreaker(name={self.name!r}, state={core.state.label!r}, "
            f"window={self.config.window_type!r}, calls={window.calls}, "
            f"failures={window.failures}, slow_calls={window.slow_calls})"
        )
