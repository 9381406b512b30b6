"""scalepy.retry: full-jitter backoff, stops, filters, the retry budget, decorator, telemetry."""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import math
import sys
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import pytest
import tenacity
from hypothesis import given
from hypothesis import strategies as st

# The internal helper every decorator uses to detect coroutine functions, tested directly.
from scalepy._callables import is_async_callable
from scalepy.errors import (
    BulkheadFull,
    CircuitOpenError,
    ConfigurationError,
    RateLimitExceeded,
    RequestShed,
    ScalepyError,
)
from scalepy.retry import (
    ATTEMPTS,
    RetryBudget,
    RetryBudgetStatistics,
    RetryPolicy,
    call,
    retry,
)
from scalepy.testing import FakeClock, RecordingInstrumentation

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

P = ParamSpec("P")
R = TypeVar("R")

NO_WAIT = RetryPolicy(attempts=5, initial_backoff=0.001, max_backoff=0.001)


class SkippingClock(FakeClock):
    """A FakeClock whose `sleep()` records the wait and jumps straight past it."""

    __slots__ = ("slept",)

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        """Record the wait and advance the clock by it."""
        self.slept.append(seconds)
        self.advance(seconds)


class Flaky:
    """Raises `errors` one per call, in order, then returns `"ok"`; counts calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def sync(self) -> str:
        """Fail with the next error, or succeed."""
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"

    async def __call__(self) -> str:
        """Fail with the next error, or succeed."""
        return self.sync()


class AlwaysFailing:
    """An async callable that always raises a fresh `ConnectionError`; counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> None:
        """Fail."""
        self.calls += 1
        raise ConnectionError(f"attempt {self.calls}")


# --- backoff ---------------------------------------------------------------------------------


@given(
    initial=st.floats(0.001, 10.0),
    multiplier=st.floats(1.0, 10.0),
    extra=st.floats(0.0, 100.0),
    retry_number=st.integers(0, 5_000),
    unit=st.floats(0.0, 1.0),
)
def test_full_jitter_stays_within_the_exponential_bound(
    initial: float, multiplier: float, extra: float, retry_number: int, unit: float
) -> None:
    """The wait is uniform(0, min(cap, base * mult**n)): rng() times that bound, never above it."""
    policy = RetryPolicy(
        initial_backoff=initial,
        max_backoff=initial + extra,
        multiplier=multiplier,
        rng=lambda: unit,
    )
    try:
        grown = initial * multiplier**retry_number
    except OverflowError:
        grown = math.inf
    bound = min(initial + extra, grown)

    assert bound == policy.backoff_bound(retry_number)
    assert unit * bound == policy.backoff(retry_number)
    assert 0.0 <= policy.backoff(retry_number) <= initial + extra


def test_backoff_without_jitter_is_the_bound() -> None:
    """With jitter off, the waits are exactly initial * multiplier**n, capped."""
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=5.0, multiplier=2.0, jitter=False)

    assert [1.0, 2.0, 4.0, 5.0, 5.0] == [policy.backoff(n) for n in range(5)]


def test_huge_retry_numbers_wait_the_maximum() -> None:
    """A bound that would overflow a float is the maximum backoff."""
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=30.0, multiplier=10.0, jitter=False)

    assert 30.0 == policy.backoff(10_000)


async def test_waits_follow_the_backoff_sequence() -> None:
    """Between attempts the policy waits backoff(0), backoff(1), ... on the injected clock."""
    clock = SkippingClock()
    policy = RetryPolicy(
        attempts=4, initial_backoff=1.0, max_backoff=3.0, multiplier=2.0, rng=lambda: 0.5
    )
    flaky = Flaky(ConnectionError(), ConnectionError(), ConnectionError())

    result = await call(flaky, policy, clock=clock)

    assert "ok" == result
    assert [0.5, 1.0, 1.5] == clock.slept
    assert 3.0 == clock.now()


# --- stops ----------------------------------------------------------------------------------


async def test_attempts_stop_and_the_last_error_is_raised() -> None:
    """After `attempts` failures the last attempt's own error propagates, not RetryError."""
    failing = AlwaysFailing()

    with pytest.raises(ConnectionError, match="attempt 3"):
        await call(failing, RetryPolicy(attempts=3), clock=SkippingClock())

    assert 3 == failing.calls


async def test_one_attempt_never_retries() -> None:
    """attempts=1 runs the function once."""
    failing = AlwaysFailing()

    with pytest.raises(ConnectionError):
        await call(failing, RetryPolicy(attempts=1), clock=SkippingClock())

    assert 1 == failing.calls


async def test_deadline_stops_before_a_wait_that_would_pass_it() -> None:
    """No retry starts if its wait would end after the deadline from the first attempt."""
    clock = SkippingClock()
    policy = RetryPolicy(attempts=None, deadline=5.0, initial_backoff=1.0, jitter=False)
    failing = AlwaysFailing()

    with pytest.raises(ConnectionError, match="attempt 3"):
        await call(failing, policy, clock=clock)

    assert [1.0, 2.0] == clock.slept  # the next wait, 4 s at t=3, would end at t=7 > 5
    assert 3 == failing.calls


async def test_deadline_is_measured_per_call() -> None:
    """Each call of a shared retrying object gets its own deadline."""
    clock = SkippingClock()
    policy = RetryPolicy(attempts=None, deadline=2.5, initial_backoff=1.0, jitter=False)
    retrying = policy.as_tenacity(clock=clock)
    first, second = AlwaysFailing(), AlwaysFailing()

    with pytest.raises(ConnectionError):
        await retrying(first)
    with pytest.raises(ConnectionError):
        await retrying(second)

    assert (2, 2) == (first.calls, second.calls)


def test_deadline_works_with_sync_tenacity() -> None:
    """The sync Retrying measures the deadline on the clock and waits with `sleep`."""
    clock = FakeClock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    policy = RetryPolicy(attempts=None, deadline=3.5, initial_backoff=1.0, jitter=False)
    retrying = policy.as_tenacity_sync(clock=clock, sleep=sleep)
    flaky = Flaky(*(ConnectionError() for _ in range(10)))

    with pytest.raises(ConnectionError):
        retrying(flaky.sync)

    assert [1.0, 2.0] == slept
    assert 3 == flaky.calls


# --- what is retried -------------------------------------------------------------------------


async def test_retry_on_types_filters_errors() -> None:
    """An error outside `retry_on` propagates after one attempt."""
    flaky = Flaky(ValueError("bad input"))

    with pytest.raises(ValueError, match="bad input"):
        await call(flaky, RetryPolicy(retry_on=(ConnectionError,)), clock=SkippingClock())

    assert 1 == flaky.calls


async def test_retry_on_predicate_decides() -> None:
    """A predicate sees each exception and decides."""
    policy = RetryPolicy(retry_on=lambda exc: "transient" in str(exc))
    flaky = Flaky(OSError("transient"), OSError("fatal"))

    with pytest.raises(OSError, match="fatal"):
        await call(flaky, policy, clock=SkippingClock())

    assert 2 == flaky.calls


REJECTIONS = [
    CircuitOpenError("db", 1.0),
    BulkheadFull("db", 10),
    RateLimitExceeded("client", 1.0),
    RequestShed("api", "normal", "timeout", 1.0),
]


@pytest.mark.parametrize("rejection", REJECTIONS, ids=lambda exc: type(exc).__name__)
@pytest.mark.parametrize(
    "retry_on",
    [(Exception,), (ScalepyError,), lambda exc: True],
    ids=["Exception", "ScalepyError", "predicate"],
)
async def test_rejections_are_not_retried_by_default(rejection: Exception, retry_on: Any) -> None:
    """Retrying a rejection adds load to what is protected, so broad filters skip them."""
    flaky = Flaky(rejection)

    with pytest.raises(type(rejection)):
        await call(flaky, RetryPolicy(retry_on=retry_on), clock=SkippingClock())

    assert 1 == flaky.calls


@pytest.mark.parametrize("rejection", REJECTIONS, ids=lambda exc: type(exc).__name__)
async def test_rejections_listed_explicitly_are_retried(rejection: Exception) -> None:
    """Naming a rejection class in `retry_on` opts in to retrying it."""
    flaky = Flaky(rejection)

    result = await call(flaky, RetryPolicy(retry_on=(type(rejection),)), clock=SkippingClock())

    assert ("ok", 2) == (result, flaky.calls)


def test_listing_one_rejection_does_not_retry_the_others() -> None:
    """retry_on=(CircuitOpenError,) still refuses BulkheadFull, RateLimitExceeded, RequestShed."""
    policy = RetryPolicy(retry_on=(CircuitOpenError, ConnectionError))

    assert [True, False, False, False, True] == [
        policy.should_retry(exc) for exc in [*REJECTIONS, ConnectionError()]
    ]


async def test_cancellation_is_never_retried() -> None:
    """CancelledError propagates at once and is not counted as a failed attempt."""
    instrumentation = RecordingInstrumentation()
    flaky = Flaky(asyncio.CancelledError())

    with pytest.raises(asyncio.CancelledError):
        await call(flaky, instrumentation=instrumentation, clock=SkippingClock())

    assert 1 == flaky.calls
    assert 0 == instrumentation.count(ATTEMPTS.name)


# --- the retry budget ------------------------------------------------------------------------


@pytest.mark.parametrize("concurrent", [False, True], ids=["sequential", "concurrent"])
async def test_budget_holds_under_a_sustained_failure_burst(concurrent: bool) -> None:
    """1,000 calls that all fail make at most ratio * calls + floor retries in one window."""
    budget = RetryBudget(ratio=0.2, min_retries_per_second=10, window=10.0, clock=FakeClock())
    instrumentation = RecordingInstrumentation()
    failing = AlwaysFailing()

    @retry(NO_WAIT, budget=budget, clock=SkippingClock(), instrumentation=instrumentation)
    async def request() -> None:
        await failing()

    async def one_call() -> None:
        with pytest.raises(ConnectionError):
            await request()

    if concurrent:
        await asyncio.gather(*(one_call() for _ in range(1_000)))
    else:
        for _ in range(1_000):
            await one_call()

    retries = failing.calls - 1_000
    stats = budget.statistics()
    assert retries <= 0.2 * 1_000 + 10 * 10.0
    assert 250 <= retries  # the budget was used, not just a per-call limit hit
    assert (1_000, retries) == (stats.calls, stats.retries)
    assert stats.rejected == instrumentation.value(
        ATTEMPTS.name, {"scalepy.retry.outcome": "budget_exhausted"}
    )
    assert retries == instrumentation.value(ATTEMPTS.name, {"scalepy.retry.outcome": "retry"})
    assert stats.balance < 1.0


def test_budget_allows_ratio_times_calls_exactly() -> None:
    """Five deposits of 0.2 add up to exactly one retry, with no floating-point shortfall."""
    budget = RetryBudget(ratio=0.2, min_retries_per_second=0, clock=FakeClock())
    for _ in range(5):
        budget.deposit()

    assert [True, False] == [budget.withdraw(), budget.withdraw()]
    assert RetryBudgetStatistics(calls=5, retries=1, rejected=1, balance=0.0) == (
        budget.statistics()
    )


def test_budget_refills_as_the_window_passes() -> None:
    """Withdrawals expire after the window, slice by slice, so the floor comes back."""
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, min_retries_per_second=1, window=10.0, clock=clock)

    assert [True] * 10 + [False] == [budget.withdraw() for _ in range(11)]
    clock.advance(9.999)
    assert False is budget.withdraw()  # still inside the window
    clock.advance(0.001)
    assert 10.0 == budget.statistics().balance  # the withdrawals at t=0 expired
    assert [True] * 5 == [budget.withdraw() for _ in range(5)]  # at t=10
    clock.advance(5.0)
    assert [True] * 5 + [False] == [budget.withdraw() for _ in range(6)]  # at t=15
    clock.advance(5.0)
    assert 5.0 == budget.statistics().balance  # those of t=10 expired, those of t=15 not yet


def test_budget_deposits_expire_too() -> None:
    """A quiet window ago's traffic no longer pays for retries."""
    clock = FakeClock()
    budget = RetryBudget(ratio=1.0, min_retries_per_second=0, window=1.0, clock=clock)
    budget.deposit()
    clock.advance(1.0)

    assert False is budget.withdraw()


def test_budget_repr_shows_its_state() -> None:
    """repr() shows the configuration, balance and counters."""
    budget = RetryBudget(ratio=0.5, min_retries_per_second=1, window=2.0, clock=FakeClock())
    budget.withdraw()

    assert (
        "RetryBudget(ratio=0.5, min_retries_per_second=1, window=2.0, balance=1.00, "
        "retries=1, rejected=0)"
    ) == repr(budget)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ratio": -0.1}, "ratio must be a finite number >= 0"),
        ({"ratio": math.nan}, "ratio must be"),
        ({"ratio": True}, "ratio must be"),
        ({"min_retries_per_second": math.inf}, "min_retries_per_second must be"),
        ({"window": 0}, "window must be a finite number > 0"),
    ],
)
def test_budget_rejects_invalid_options(kwargs: dict[str, Any], message: str) -> None:
    """Invalid budget options raise ConfigurationError saying what is allowed."""
    with pytest.raises(ConfigurationError, match=message):
        RetryBudget(**kwargs)


# --- policy validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attempts": None}, "set attempts, deadline or both"),
        ({"attempts": 0}, "attempts must be an int >= 1"),
        ({"attempts": 2.5}, "attempts must be an int"),
        ({"attempts": True}, "attempts must be an int"),
        ({"deadline": 0.0}, "deadline must be a finite number > 0"),
        ({"deadline": math.inf}, "deadline must be"),
        ({"initial_backoff": 0.0}, "initial_backoff must be a finite number > 0"),
        ({"initial_backoff": 2.0, "max_backoff": 1.0}, "max_backoff must be a finite number >= 2"),
        ({"multiplier": 0.5}, "multiplier must be a finite number >= 1"),
        ({"retry_on": ()}, "non-empty tuple of Exception subclasses"),
        ({"retry_on": (KeyboardInterrupt,)}, "non-empty tuple of Exception subclasses"),
        ({"retry_on": ("ValueError",)}, "non-empty tuple of Exception subclasses"),
        ({"retry_on": ConnectionError}, r"e\.g\. \(ConnectionError,\)"),
        ({"retry_on": 42}, "or a predicate"),
        ({"rng": 0.5}, "rng must be a callable"),
    ],
)
def test_policy_rejects_invalid_options(kwargs: dict[str, Any], message: str) -> None:
    """Invalid policy options raise ConfigurationError saying what is allowed."""
    with pytest.raises(ConfigurationError, match=message):
        RetryPolicy(**kwargs)


def test_policy_is_frozen_data() -> None:
    """Policies are immutable values that compare by content."""
    policy = RetryPolicy(attempts=2)

    with pytest.raises(AttributeError):
        policy.attempts = 3  # type: ignore[misc]
    assert RetryPolicy(attempts=2) == policy


# --- decorator, helper and tenacity objects --------------------------------------------------


async def test_decorator_retries_an_async_function_and_keeps_its_signature() -> None:
    """@retry(policy) retries a coroutine function; name, docstring and signature survive."""
    flaky = Flaky(ConnectionError(), ConnectionError())

    @retry(NO_WAIT, clock=SkippingClock())
    async def fetch(path: str, *, retries_seen: int = 0) -> str:
        """Fetch a path."""
        return f"{path}: {await flaky()}"

    assert "/x: ok" == await fetch("/x")
    assert 3 == flaky.calls
    assert ("fetch", "Fetch a path.") == (fetch.__name__, fetch.__doc__)
    assert "(path: 'str', *, retries_seen: 'int' = 0) -> 'str'" == str(inspect.signature(fetch))
    assert inspect.iscoroutinefunction(fetch)


def test_decorator_retries_a_sync_function_with_the_given_sleep() -> None:
    """@retry on a plain function retries it, waiting with `sleep`."""
    slept: list[float] = []
    flaky = Flaky(ConnectionError(), ConnectionError())
    policy = RetryPolicy(initial_backoff=1.0, jitter=False)

    @retry(policy, sleep=slept.append)
    def compute(x: int) -> str:
        return f"{x}: {flaky.sync()}"

    assert "7: ok" == compute(7)
    assert [1.0, 2.0] == slept


def test_bare_decorator_wraps_the_function() -> None:
    """@retry without parentheses decorates directly, with the default policy."""
    flaky = Flaky()

    @retry
    def compute() -> str:
        """Compute."""
        return flaky.sync()

    assert ("ok", "compute") == (compute(), compute.__name__)
    assert 1 == flaky.calls


def test_decorator_without_a_policy_uses_the_default() -> None:
    """@retry() with only options applies RetryPolicy(): three attempts."""
    flaky = Flaky(*(ConnectionError() for _ in range(5)))

    @retry(sleep=lambda seconds: None)
    def compute() -> str:
        return flaky.sync()

    with pytest.raises(ConnectionError):
        compute()
    assert 3 == flaky.calls


async def test_decorated_async_calls_do_not_share_state() -> None:
    """Concurrent calls of one decorated function each get their own attempts."""
    clock = SkippingClock()
    counts: dict[str, int] = {}

    @retry(RetryPolicy(attempts=3, initial_backoff=0.01, max_backoff=0.01), clock=clock)
    async def fetch(key: str) -> str:
        counts[key] = counts.get(key, 0) + 1
        await asyncio.sleep(0)  # interleave the calls
        if counts[key] < 3:
            raise ConnectionError(key)
        return key

    assert ["a", "b", "c"] == list(await asyncio.gather(fetch("a"), fetch("b"), fetch("c")))
    assert {"a": 3, "b": 3, "c": 3} == counts


async def test_tenacity_kwargs_work_with_tenacity_directly() -> None:
    """The kwargs plug into tenacity's own AsyncRetrying and its `async for` form."""
    clock = SkippingClock()
    kwargs = NO_WAIT.tenacity_kwargs(clock=clock)
    flaky = Flaky(ConnectionError())
    results = []

    async for attempt in tenacity.AsyncRetrying(sleep=clock.sleep, **kwargs):
        with attempt:
            results.append(await flaky())

    assert ["ok"] == results
    assert True is kwargs["reraise"]


def test_is_async_callable_sees_through_partials_and_callable_objects() -> None:
    """Coroutine functions are detected behind functools.partial and async __call__."""

    async def coro(x: int) -> int:
        return x

    assert [True, True, True, False] == [
        is_async_callable(functools.partial(functools.partial(coro, 1))),
        is_async_callable(Flaky()),
        is_async_callable(coro),
        is_async_callable(Flaky().sync),
    ]


# --- telemetry -------------------------------------------------------------------------------


async def test_attempts_are_counted_by_outcome() -> None:
    """Each attempt is counted once: success, retry, exhausted, budget_exhausted or failure."""
    instrumentation = RecordingInstrumentation()
    clock = SkippingClock()
    budget = RetryBudget(ratio=0.0, min_retries_per_second=0.1, window=10.0, clock=FakeClock())

    await call(Flaky(ConnectionError()), NO_WAIT, clock=clock, instrumentation=instrumentation)
    with pytest.raises(ConnectionError):
        await call(
            AlwaysFailing(), RetryPolicy(attempts=2), clock=clock, instrumentation=instrumentation
        )
    with pytest.raises(ValueError, match="no"):
        await call(
            Flaky(ValueError("no")),
            RetryPolicy(retry_on=(OSError,)),
            clock=clock,
            instrumentation=instrumentation,
        )
    with pytest.raises(ConnectionError):
        await call(
            AlwaysFailing(), NO_WAIT, budget=budget, clock=clock, instrumentation=instrumentation
        )

    assert ATTEMPTS == instrumentation.metrics[ATTEMPTS.name]
    assert {
        "success": 1.0,
        "retry": 3.0,
        "exhausted": 1.0,
        "budget_exhausted": 1.0,
        "failure": 1.0,
    } == {
        outcome: instrumentation.value(ATTEMPTS.name, {"scalepy.retry.outcome": outcome})
        for outcome in ("success", "retry", "exhausted", "budget_exhausted", "failure")
    }


# --- composition with a circuit breaker ------------------------------------------------------


def tiny_breaker(
    failures_to_open: int, state: dict[str, int]
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """A minimal stand-in breaker: opens after `failures_to_open` failures, counting in `state`."""

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(func)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            state["attempts"] += 1
            if state["failures"] >= failures_to_open:
                raise CircuitOpenError("dependency", 30.0)
            try:
                return await func(*args, **kwargs)
            except Exception:
                state["failures"] += 1
                raise

        return guarded

    return decorate


async def test_retry_outside_the_breaker_stops_once_it_opens() -> None:
    """The breaker sees every attempt, and its CircuitOpenError ends the retries at once."""
    failing = AlwaysFailing()
    state = {"failures": 0, "attempts": 0}
    breaker = tiny_breaker(2, state)

    @retry(RetryPolicy(attempts=10, initial_backoff=0.01), clock=SkippingClock())
    @breaker
    async def fetch() -> None:
        await failing()

    with pytest.raises(CircuitOpenError):
        await fetch()

    assert 2 == failing.calls
    assert {"failures": 2, "attempts": 3} == state


# --- the optional dependency -----------------------------------------------------------------


def test_import_without_tenacity_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Importing scalepy.retry without tenacity names the extra, chaining the cause."""
    monkeypatch.setitem(sys.modules, "tenacity", None)
    monkeypatch.delitem(sys.modules, "scalepy.retry")

    with pytest.raises(ImportError, match=r"pip install 'scalepy-toolkit\[retry\]'") as raised:
        importlib.import_module("scalepy.retry")

    assert isinstance(raised.value.__cause__, ImportError)


def test_retry_refuses_what_is_not_a_policy() -> None:
    """`@retry(3)` raises ConfigurationError showing `RetryPolicy(attempts=3)`."""
    with pytest.raises(ConfigurationError, match=r"RetryPolicy\(attempts=3\)"):
        retry(3)  # type: ignore[call-overload]  # the misuse under test


async def test_call_refuses_a_coroutine_and_closes_it() -> None:
    """`call(fetch())` raises ConfigurationError showing the lambda form; closes the coroutine."""

    async def fetch() -> int:
        return 1

    attempt = fetch()
    with pytest.raises(ConfigurationError, match=r"call\(lambda: fetch\(url\)\)"):
        await call(attempt)  # type: ignore[arg-type]  # the misuse under test
    assert inspect.getcoroutinestate(attempt) == inspect.CORO_CLOSED  # no "never awaited"
