"""`CircuitBreaker`: decorator, context manager, options, telemetry and concurrency."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import pytest

from scalepy.breaker import (
    BreakerState,
    BreakerStatistics,
    CircuitBreaker,
    CircuitOpenError,
    StateChange,
)
from scalepy.errors import ConfigurationError, UsageError
from scalepy.testing import FakeClock, RecordingInstrumentation

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN


def make(clock: FakeClock, **options: Any) -> CircuitBreaker:
    """A breaker that opens after two failures of two calls, for ten seconds."""
    settings: dict[str, Any] = {
        "failure_rate_threshold": 1.0,
        "minimum_calls": 2,
        "window_size": 2,
        "open_for": 10.0,
        "permitted_calls_in_half_open": 1,
        "slow_call_duration": 1.0,
        "clock": clock,
    }
    settings.update(options)
    return CircuitBreaker("db", **settings)


async def fail(exc: BaseException) -> str:
    """Raise `exc` (an async function to protect)."""
    raise exc


async def trip(breaker: CircuitBreaker) -> None:
    """Open the breaker with two recorded failures."""
    guarded = breaker(fail)
    for _ in range(2):
        with pytest.raises(ValueError, match="boom"):
            await guarded(ValueError("boom"))
    assert OPEN == breaker.state


async def test_async_decorator_keeps_behaviour_and_metadata() -> None:
    """A decorated coroutine function returns its result and keeps its name and docstring."""

    async def add(a: int, b: int = 0) -> int:
        """Add two numbers."""
        return a + b

    guarded = CircuitBreaker("math")(add)
    assert 5 == await guarded(2, b=3)
    assert "add" == guarded.__name__
    assert "Add two numbers." == guarded.__doc__
    assert asyncio.iscoroutinefunction(guarded)


def test_sync_decorator_keeps_behaviour_and_metadata() -> None:
    """A decorated plain function stays sync, returns its result and keeps its name."""

    def add(a: int, b: int = 0) -> int:
        return a + b

    guarded = CircuitBreaker("math")(add)
    assert 5 == guarded(2, b=3)
    assert "add" == guarded.__name__
    assert not asyncio.iscoroutinefunction(guarded)


async def test_partial_and_callable_objects_are_detected_as_async() -> None:
    """Coroutine functions behind `functools.partial` or `__call__` get the async wrapper."""

    async def add(a: int, b: int) -> int:
        return a + b

    class Adder:
        async def __call__(self, a: int) -> int:
            return a + 1

    breaker = CircuitBreaker("math")
    assert 3 == await breaker(functools.partial(functools.partial(add, 1), 2))()
    assert 2 == await breaker(Adder())(1)


async def test_failures_open_then_trial_closes() -> None:
    """Failures open the breaker; after the wait a successful trial closes it."""
    clock = FakeClock()
    breaker = make(clock)
    await trip(breaker)

    async def ok() -> str:
        return "ok"

    guarded = breaker(ok)
    clock.advance(4.0)
    with pytest.raises(CircuitOpenError) as caught:
        await guarded()
    assert ("db", 6.0) == (caught.value.name, caught.value.retry_after)
    clock.advance(6.0)
    assert HALF_OPEN == breaker.state
    assert "ok" == await guarded()
    assert CLOSED == breaker.state


def test_sync_function_is_rejected_when_open() -> None:
    """A sync function behind an open breaker raises `CircuitOpenError` without running."""
    clock = FakeClock()
    breaker = make(clock)
    calls: list[int] = []

    @breaker
    def work(fail: bool) -> int:
        calls.append(1)
        if fail:
            raise ValueError("boom")
        return 1

    assert 1 == work(False)
    with pytest.raises(ValueError, match="boom"):
        work(True)
    with pytest.raises(ValueError, match="boom"):
        work(True)
    with pytest.raises(CircuitOpenError):
        work(False)
    assert 3 == len(calls)


async def test_context_manager_records_the_block() -> None:
    """`async with` counts a block's exception as a failure and rejects when open."""
    clock = FakeClock()
    breaker = make(clock)
    async with breaker:
        pass
    for _ in range(2):
        with pytest.raises(ValueError, match="boom"):
            async with breaker:
                raise ValueError("boom")
    assert OPEN == breaker.state
    with pytest.raises(CircuitOpenError):
        async with breaker:
            pytest.fail("an open breaker ran the block")


async def test_context_managers_nest_and_ignore_cancellation() -> None:
    """Nested blocks each record their own outcome; cancellation is not counted."""
    clock = FakeClock()
    outer = make(clock)
    inner = make(clock, minimum_calls=1, window_size=1)
    with pytest.raises(ValueError, match="inner"):
        async with outer, inner:
            raise ValueError("inner")
    assert (1, 1) == (outer.statistics().failures, inner.statistics().failures)
    with pytest.raises(asyncio.CancelledError):
        async with outer:
            raise asyncio.CancelledError
    assert 1 == outer.statistics().calls


async def test_exit_without_enter_is_an_error() -> None:
    """Exiting a breaker that was not entered raises `RuntimeError`."""
    with pytest.raises(RuntimeError, match="did not enter"):
        await CircuitBreaker("x").__aexit__(None, None, None)


async def test_fallback_handles_rejections_and_recorded_failures() -> None:
    """A fallback replaces rejections and recorded failures, not other exceptions."""
    clock = FakeClock()
    seen: list[str] = []

    async def fallback(exc: Exception) -> str:
        seen.append(type(exc).__name__)
        return "fallback"

    breaker = make(clock, fallback=fallback, record=ValueError, ignore=KeyError)
    guarded = breaker(fail)
    with pytest.raises(KeyError):
        await guarded(KeyError("ignored"))
    with pytest.raises(TypeError):
        await guarded(TypeError("not recorded: a success"))
    assert "fallback" == await guarded(ValueError("1"))
    assert "fallback" == await guarded(ValueError("2"))
    assert "fallback" == await guarded(ValueError("rejected"))
    assert ["ValueError", "ValueError", "CircuitOpenError"] == seen


def test_sync_fallback_for_sync_function() -> None:
    """A sync function takes a sync fallback, for failures and rejections."""
    clock = FakeClock()
    breaker = make(clock, fallback=lambda exc: type(exc).__name__)

    @breaker
    def work() -> str:
        raise ValueError("boom")

    assert ["ValueError", "ValueError", "CircuitOpenError"] == [work(), work(), work()]


async def test_async_function_takes_a_sync_fallback() -> None:
    """An async function may have a sync fallback; its result is returned as is."""
    breaker = make(FakeClock(), fallback=lambda exc: "plain")
    assert "plain" == await breaker(fail)(ValueError("boom"))


def test_invalid_options_are_refused() -> None:
    """Bad names, timeouts and exception filters raise `ConfigurationError`."""
    with pytest.raises(ConfigurationError, match="name must be a non-empty string"):
        CircuitBreaker("")
    with pytest.raises(ConfigurationError, match="timeout must be"):
        CircuitBreaker("x", timeout=0)
    with pytest.raises(ConfigurationError, match="record must be exception types"):
        CircuitBreaker("x", record=(ValueError, "oops"))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ignore must be exception types"):
        CircuitBreaker("x", ignore=42)  # type: ignore[arg-type]


def test_sync_function_with_timeout_or_async_fallback_is_refused() -> None:
    """A sync function cannot honour a timeout or await a fallback."""

    async def fallback(exc: Exception) -> None:
        return None

    def work() -> None:
        return None

    with pytest.raises(ConfigurationError, match="applies only to async functions"):
        CircuitBreaker("x", timeout=1.0)(work)
    with pytest.raises(ConfigurationError, match="async fallback"):
        CircuitBreaker("x", fallback=fallback)(work)


async def test_timeout_counts_as_failure() -> None:
    """A call over its timeout is cancelled, raises `TimeoutError` and counts as failed."""
    never = asyncio.Event()
    breaker = make(FakeClock(), timeout=0.001, record=ValueError)

    @breaker
    async def hang() -> None:
        await never.wait()

    with pytest.raises(TimeoutError):
        await hang()
    with pytest.raises(TimeoutError):
        async with breaker:
            await never.wait()
    assert OPEN == breaker.state


async def test_own_timeout_error_follows_the_record_filter() -> None:
    """A `TimeoutError` raised by the function itself is judged like any exception."""
    breaker = make(
        FakeClock(),
        timeout=10.0,
        record=ValueError,
        fallback=lambda exc: "fb",
        window_size=10,
        minimum_calls=10,
    )
    guarded = breaker(fail)
    for _ in range(3):
        with pytest.raises(TimeoutError):
            await guarded(TimeoutError("mine"))
    assert "fb" == await guarded(ValueError("boom"))
    assert "ok" == await breaker(asyncio.sleep)(0, "ok")
    async with breaker:
        pass
    with pytest.raises(asyncio.CancelledError):
        await guarded(asyncio.CancelledError())
    statistics = breaker.statistics()
    assert (1, 6) == (statistics.failures, statistics.calls)


async def test_record_and_ignore_predicates() -> None:
    """Predicates decide which exceptions are failures and which are not counted."""
    breaker = make(
        FakeClock(),
        record=lambda exc: "fatal" in str(exc),
        ignore=lambda exc: "skip" in str(exc),
    )
    guarded = breaker(fail)
    for message in ("skip fatal", "minor", "fatal"):
        with pytest.raises(ValueError, match=message):
            await guarded(ValueError(message))
    statistics = breaker.statistics()
    assert (2, 1) == (statistics.calls, statistics.failures)


async def test_failure_result_counts_results_as_failures() -> None:
    """A result matching `failure_result` is a failure, and still returned."""
    breaker = make(FakeClock(), failure_result=lambda result: result is None)

    @breaker
    async def lookup(key: str) -> str | None:
        return None if key == "missing" else key

    @breaker
    def lookup_sync(key: str) -> str | None:
        return None if key == "missing" else key

    assert "a" == await lookup("a")
    assert None is await lookup("missing")
    assert None is lookup_sync("missing")
    assert OPEN == breaker.state


async def test_listeners_receive_state_changes(caplog: pytest.LogCaptureFixture) -> None:
    """Listeners get a `StateChange` per transition; a failing listener is logged."""
    clock = FakeClock(5.0)
    changes: list[StateChange] = []

    def broken(change: StateChange) -> None:
        raise RuntimeError("listener bug")

    breaker = make(clock, listeners=[broken, changes.append])
    with caplog.at_level(logging.ERROR, logger="scalepy.breaker"):
        await trip(breaker)
    assert [StateChange(name="db", from_state=CLOSED, to_state=OPEN, at=5.0)] == changes
    assert ["listener <function"] == [r.getMessage()[:18] for r in caplog.records]


async def test_statistics_and_manual_control() -> None:
    """`statistics()` is a frozen snapshot; force_open, disable and reset act at once."""
    clock = FakeClock()
    breaker = make(clock, window_size=4, minimum_calls=4)

    @breaker
    async def work(duration: float, error: bool) -> None:
        clock.advance(duration)
        if error:
            raise ValueError("boom")

    await work(2.0, False)
    with pytest.raises(ValueError, match="boom"):
        await work(0.0, True)
    assert (
        BreakerStatistics(
            name="db",
            state=CLOSED,
            window="count",
            calls=2,
            failures=1,
            slow_calls=1,
            failure_rate=0.5,
            slow_call_rate=0.5,
            rejected=0,
            transitions=0,
            retry_after=0.0,
        )
        == breaker.statistics()
    )
    assert (
        "CircuitBreaker(name='db', state='closed', window='count', calls=2, failures=1, "
        "slow_calls=1)"
    ) == repr(breaker)
    breaker.force_open()
    with pytest.raises(CircuitOpenError) as caught:
        await work(0.0, False)
    assert 0.0 == caught.value.retry_after
    breaker.disable()
    for _ in range(5):
        with pytest.raises(ValueError, match="boom"):
            await work(0.0, True)
    assert BreakerState.DISABLED == breaker.state
    breaker.reset()
    statistics = breaker.statistics()
    assert (CLOSED, 0, 1, 3) == (
        statistics.state,
        statistics.calls,
        statistics.rejected,
        statistics.transitions,
    )


async def test_time_window_breaker() -> None:
    """A time-window breaker forgets failures older than its window."""
    clock = FakeClock()
    breaker = make(clock, window="time", window_size=10, minimum_calls=2)
    guarded = breaker(fail)
    with pytest.raises(ValueError, match="old"):
        await guarded(ValueError("old"))
    clock.advance(10.0)
    with pytest.raises(ValueError, match="new"):
        await guarded(ValueError("new"))
    assert (CLOSED, 1) == (breaker.state, breaker.statistics().calls)


async def test_telemetry() -> None:
    """Calls by outcome, durations, state gauge, transitions and span events are reported."""
    clock = FakeClock()
    instrumentation = RecordingInstrumentation()
    breaker = make(
        clock,
        instrumentation=instrumentation,
        ignore=KeyError,
        failure_rate_threshold=0.3,
        window_size=3,
        minimum_calls=3,
        timeout=5.0,
    )

    @breaker
    async def work(duration: float, exc: BaseException | None = None) -> None:
        clock.advance(duration)
        if exc is not None:
            raise exc

    await work(0.5)
    await work(1.5)
    with pytest.raises(KeyError):
        await work(0.25, KeyError("k"))
    with pytest.raises(asyncio.CancelledError):
        await work(0.0, asyncio.CancelledError())
    with pytest.raises(ValueError, match="boom"):
        await work(0.0, ValueError("boom"))
    with pytest.raises(CircuitOpenError):
        await work(0.0)
    with pytest.raises(CircuitOpenError):
        async with breaker:
            pass
    assert OPEN == breaker.state
    name = "scalepy.breaker.calls"
    assert {"success": 1, "slow": 1, "failure": 1, "ignored": 2, "rejected": 2} == {
        outcome: int(instrumentation.value(name, {"scalepy.breaker.call.outcome": outcome}))
        for outcome in ("success", "slow", "failure", "ignored", "rejected")
    }
    db = {"scalepy.breaker.name": "db"}
    assert 5 == instrumentation.count("scalepy.breaker.call.duration", db)
    assert 2.25 == instrumentation.value("scalepy.breaker.call.duration")
    assert [0.0, 1.0] == [
        instrumentation.value("scalepy.breaker.state", {**db, "scalepy.breaker.state": state})
        for state in ("closed", "open")
    ]
    transitions = {
        "scalepy.breaker.transition.from": "closed",
        "scalepy.breaker.transition.to": "open",
    }
    assert 1.0 == instrumentation.value("scalepy.breaker.transitions", transitions)
    assert [
        ("scalepy.breaker.state_change", {**db, **transitions}),
        ("scalepy.breaker.rejected", {**db, "scalepy.breaker.retry_after": 10.0}),
        ("scalepy.breaker.rejected", {**db, "scalepy.breaker.retry_after": 10.0}),
    ] == [(event.name, event.attributes) for event in instrumentation.events]


class Interrupt(BaseException):
    """A `BaseException` that is not an `Exception`, like `KeyboardInterrupt`."""


async def test_telemetry_for_sync_functions_and_blocks() -> None:
    """Sync calls, plain async calls and blocks report their outcomes too."""
    instrumentation = RecordingInstrumentation()
    breaker = make(FakeClock(), instrumentation=instrumentation)

    @breaker
    def work(interrupt: bool) -> int:
        if interrupt:
            raise Interrupt
        return 1

    assert 1 == work(False)
    with pytest.raises(Interrupt):
        work(True)
    assert "ok" == await breaker(asyncio.sleep)(0, "ok")
    async with breaker:
        pass
    name = "scalepy.breaker.calls"
    assert (3, 1) == (
        instrumentation.value(name, {"scalepy.breaker.call.outcome": "success"}),
        instrumentation.value(name, {"scalepy.breaker.call.outcome": "ignored"}),
    )


async def test_timeout_breaker_rejection_uses_the_fallback() -> None:
    """A breaker with a timeout hands its rejections to the fallback as well."""
    breaker = make(FakeClock(), timeout=1.0, fallback=lambda exc: type(exc).__name__)
    breaker.force_open()
    assert "CircuitOpenError" == await breaker(fail)(ValueError("never raised"))


async def test_half_open_admits_exactly_the_permitted_concurrent_callers() -> None:
    """In HALF_OPEN with N permits, 1,000 concurrent callers let exactly N through."""
    clock = FakeClock()
    permitted = 5
    breaker = make(clock, permitted_calls_in_half_open=permitted)
    await trip(breaker)
    clock.advance(10.0)
    release = asyncio.Event()
    all_started = asyncio.Event()
    started = 0
    running = 0
    most_running = 0

    @breaker
    async def trial() -> str:
        nonlocal running, most_running
        running += 1
        most_running = max(most_running, running)
        await release.wait()
        running -= 1
        return "ok"

    async def caller() -> str:
        nonlocal started
        started += 1
        if started == 1000:
            all_started.set()
        return await trial()

    tasks = [asyncio.create_task(caller()) for _ in range(1000)]
    await all_started.wait()
    assert HALF_OPEN == breaker.state
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert permitted == results.count("ok")
    assert 1000 - permitted == sum(isinstance(r, CircuitOpenError) for r in results)
    assert permitted == most_running
    assert CLOSED == breaker.state


async def test_cancelled_trial_frees_its_permit() -> None:
    """A trial cancelled in HALF_OPEN is not counted and lets another caller in."""
    clock = FakeClock()
    breaker = make(clock)
    await trip(breaker)
    clock.advance(10.0)
    gate = asyncio.Event()
    entered = asyncio.Event()

    @breaker
    async def trial() -> str:
        entered.set()
        await gate.wait()
        return "ok"

    task = asyncio.create_task(trial())
    await entered.wait()
    with pytest.raises(CircuitOpenError):
        await trial()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gate.set()
    assert "ok" == await trial()
    assert CLOSED == breaker.state


def test_the_state_gauge_is_exported_from_the_start() -> None:
    """A breaker that never trips still reports CLOSED on the state set, and no other state."""
    recording = RecordingInstrumentation()
    CircuitBreaker("quiet", instrumentation=recording)
    assert {"closed": 1.0, "open": 0.0, "half_open": 0.0, "disabled": 0.0, "forced_open": 0.0} == {
        labels["scalepy.breaker.state"]: value
        for name, value, labels in recording.records
        if name == "scalepy.breaker.state" and labels["scalepy.breaker.name"] == "quiet"
    }
    assert 5 == recording.count("scalepy.breaker.state")


def test_a_bare_class_decorator_says_to_give_a_name() -> None:
    """`@CircuitBreaker` without a name raises ConfigurationError showing the named form.

    It used to build a breaker named by the function, and the function vanished.
    """

    async def load() -> int:
        return 1

    with pytest.raises(ConfigurationError, match=r'write @CircuitBreaker\("name", \.\.\.\)'):
        CircuitBreaker(load)  # type: ignore[arg-type]  # the misuse under test


async def test_with_instead_of_async_with_says_async_with() -> None:
    """`with breaker:` raises UsageError (a TypeError) naming `async with`."""
    breaker = CircuitBreaker("db")
    with pytest.raises(UsageError, match="entered with `async with`, not `with`"), breaker:
        pass
    assert issubclass(UsageError, TypeError)


def test_a_url_as_shared_state_says_to_build_one() -> None:
    """`shared="redis://…"` raises ConfigurationError showing `RedisSharedState(url)`.

    It used to fail with AttributeError ('str' object has no attribute 'attach').
    """
    with pytest.raises(ConfigurationError, match=r"takes a SharedState, not a URL") as raised:
        CircuitBreaker("db", shared="redis://127.0.0.1:6379/0")  # type: ignore[arg-type]
    assert "shared=RedisSharedState(url)" in str(raised.value)
