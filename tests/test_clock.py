"""Tests for `scalepy.clock` and the `FakeClock` test double."""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scalepy.clock import Clock, MonotonicClock
from scalepy.testing import FakeClock
from tests.support.calls import scalepy_calls

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine


async def test_both_clocks_satisfy_the_protocol() -> None:
    """MonotonicClock and FakeClock are both usable wherever a Clock is expected."""
    clocks: list[Clock] = [MonotonicClock(), FakeClock()]
    for clock in clocks:
        before = clock.now()
        await clock.sleep(0)
        assert clock.now() >= before


def test_monotonic_clock_reads_time_monotonic() -> None:
    """MonotonicClock.now() returns time.monotonic()."""
    before = time.monotonic()
    now = MonotonicClock().now()
    after = time.monotonic()
    assert before <= now <= after


def test_monotonic_clock_reads_without_a_python_call() -> None:
    """MonotonicClock.now() is `time.monotonic` itself: no frame of scalepy's code per reading."""
    assert 0 == scalepy_calls(MonotonicClock().now)


async def test_monotonic_clock_sleeps_with_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    """MonotonicClock.sleep() delegates to asyncio.sleep() with the same duration."""
    calls: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        calls.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    await MonotonicClock().sleep(2.5)
    assert [2.5] == calls


async def test_monotonic_clock_sleep_zero_yields_to_the_loop() -> None:
    """MonotonicClock.sleep(0) lets already scheduled callbacks run."""
    ran: list[int] = []
    asyncio.get_running_loop().call_soon(ran.append, 1)
    await MonotonicClock().sleep(0)
    assert [1] == ran


def test_monotonic_clock_is_slotted_and_has_a_repr() -> None:
    """MonotonicClock holds no per-instance state and reprs as its constructor call."""
    clock = MonotonicClock()
    assert not hasattr(clock, "__dict__")
    assert "MonotonicClock()" == repr(clock)


def test_fake_clock_starts_where_told() -> None:
    """FakeClock starts at 0.0 by default, or at `start`."""
    assert 0.0 == FakeClock().now()
    assert 100.5 == FakeClock(100.5).now()


@pytest.mark.parametrize("start", [math.inf, -math.inf, math.nan])
def test_fake_clock_rejects_non_finite_start(start: float) -> None:
    """FakeClock refuses a start time that is not a finite number."""
    with pytest.raises(ValueError, match="finite"):
        FakeClock(start)


def test_advance_moves_time_forward() -> None:
    """advance() adds to the current time, and advancing by zero is allowed."""
    clock = FakeClock(1.0)
    clock.advance(1.5)
    clock.advance(0)
    clock.advance(2)
    assert 4.5 == clock.now()


@pytest.mark.parametrize("seconds", [-1.0, -1e-9, math.inf, math.nan])
def test_advance_rejects_negative_or_non_finite(seconds: float) -> None:
    """advance() raises ValueError for negative, infinite or NaN durations and keeps the time."""
    clock = FakeClock(3.0)
    with pytest.raises(ValueError, match=">= 0"):
        clock.advance(seconds)
    assert 3.0 == clock.now()


@pytest.mark.parametrize("seconds", [0, 0.0, -5.0])
async def test_sleep_with_deadline_reached_yields_once(seconds: float) -> None:
    """sleep() for zero or less yields to the loop once and returns without registering."""
    clock = FakeClock()
    ran: list[int] = []
    asyncio.get_running_loop().call_soon(ran.append, 1)
    await clock.sleep(seconds)
    assert [1] == ran
    assert 0 == clock.sleepers
    assert 0.0 == clock.now()


async def test_sleep_rejects_nan() -> None:
    """sleep(nan) raises ValueError instead of sleeping forever."""
    with pytest.raises(ValueError, match="nan"):
        await FakeClock().sleep(math.nan)


async def test_sleep_waits_for_advance_past_deadline() -> None:
    """A sleeper stays asleep until the fake time reaches its deadline."""
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(10))
    await clock.wait_for_sleepers(1)

    clock.advance(7.5)
    await asyncio.sleep(0)
    assert not task.done()
    assert 1 == clock.sleepers

    clock.advance(2.5)
    await task
    assert 0 == clock.sleepers
    assert 10.0 == clock.now()


async def test_woken_sleeper_sees_time_at_end_of_advance() -> None:
    """advance() jumps straight to the new time; a sleeper woken by it sees that time."""
    clock = FakeClock()

    async def sleep_then_read() -> float:
        await clock.sleep(1)
        return clock.now()

    task = asyncio.create_task(sleep_then_read())
    await clock.wait_for_sleepers(1)
    clock.advance(5)
    assert 5.0 == await task


async def test_advance_wakes_only_due_sleepers() -> None:
    """advance() wakes sleepers whose deadline is reached and leaves the others asleep."""
    clock = FakeClock()
    tasks = [asyncio.create_task(clock.sleep(s)) for s in (1, 2, 3)]
    await clock.wait_for_sleepers(3)

    clock.advance(2)
    await asyncio.gather(*tasks[:2])
    assert not tasks[2].done()
    assert 1 == clock.sleepers

    clock.advance(1)
    await tasks[2]
    assert 0 == clock.sleepers


@given(durations=st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=30))
async def test_sleepers_wake_in_deadline_order(durations: list[int]) -> None:
    """One advance past many deadlines wakes sleepers by deadline, ties first-come first-served."""
    clock = FakeClock()
    woken: list[tuple[int, int]] = []

    async def sleeper(order: int, seconds: int) -> None:
        await clock.sleep(seconds)
        woken.append((seconds, order))

    tasks = [asyncio.create_task(sleeper(i, s)) for i, s in enumerate(durations)]
    await clock.wait_for_sleepers(len(durations))
    clock.advance(max(durations))
    await asyncio.gather(*tasks)
    assert sorted((s, i) for i, s in enumerate(durations)) == woken


async def test_infinite_sleep_lasts_until_cancelled() -> None:
    """sleep(inf) is never woken by advance() and ends only by cancellation."""
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(math.inf))
    await clock.wait_for_sleepers(1)
    clock.advance(1e300)
    await asyncio.sleep(0)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 0 == clock.sleepers


async def test_cancelled_sleeper_leaves_nothing_behind() -> None:
    """Cancelling a sleeping task removes it, and a later advance() is unaffected."""
    clock = FakeClock()
    cancelled = asyncio.create_task(clock.sleep(5))
    kept = asyncio.create_task(clock.sleep(5))
    await clock.wait_for_sleepers(2)

    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert 1 == clock.sleepers

    clock.advance(5)
    await kept
    assert 0 == clock.sleepers


async def test_advance_right_after_cancel_skips_the_cancelled_sleeper() -> None:
    """advance() between cancel() and the task handling it neither wakes nor breaks it."""
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(5))
    await clock.wait_for_sleepers(1)

    task.cancel()
    clock.advance(10)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 0 == clock.sleepers


async def test_cancel_after_wake_still_cancels_cleanly() -> None:
    """A sleeper cancelled after advance() woke it, but before it ran, ends cancelled and gone."""
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(5))
    await clock.wait_for_sleepers(1)

    clock.advance(5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 0 == clock.sleepers


@pytest.mark.parametrize("n", [-1, 0])
async def test_wait_for_sleepers_returns_at_once_when_satisfied(n: int) -> None:
    """wait_for_sleepers() returns immediately when enough tasks already sleep."""
    await FakeClock().wait_for_sleepers(n)


async def test_wait_for_sleepers_counts_tasks_already_asleep() -> None:
    """wait_for_sleepers() returns at once for tasks that fell asleep before it was called."""
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(1))
    await asyncio.sleep(0)
    await clock.wait_for_sleepers(1)
    assert 1 == clock.sleepers

    clock.advance(1)
    await task


async def test_wait_for_sleepers_waits_for_the_nth_sleeper() -> None:
    """wait_for_sleepers(n) blocks until n tasks sleep, woken by sleep() rather than polling."""
    clock = FakeClock()
    waiter = asyncio.create_task(clock.wait_for_sleepers(2))
    first = asyncio.create_task(clock.sleep(1))
    await asyncio.sleep(0)
    assert 1 == clock.sleepers
    assert not waiter.done()

    second = asyncio.create_task(clock.sleep(1))
    await waiter
    assert 2 == clock.sleepers

    clock.advance(1)
    await asyncio.gather(first, second)


async def test_wait_for_sleepers_wakes_every_satisfied_waiter_once() -> None:
    """Several waiters are each released once, even when more sleepers arrive at once."""
    clock = FakeClock()
    waiters = [asyncio.create_task(clock.wait_for_sleepers(n)) for n in (1, 1, 3)]
    await asyncio.sleep(0)

    sleepers = [asyncio.create_task(clock.sleep(1)) for _ in range(3)]
    await asyncio.gather(*waiters)
    assert 3 == clock.sleepers

    clock.advance(1)
    await asyncio.gather(*sleepers)


async def test_cancelled_wait_for_sleepers_is_forgotten() -> None:
    """A cancelled wait_for_sleepers() call is not woken later and does not break sleep()."""
    clock = FakeClock()
    waiter = asyncio.create_task(clock.wait_for_sleepers(1))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter

    task = asyncio.create_task(clock.sleep(1))
    await clock.wait_for_sleepers(1)
    clock.advance(1)
    await task


async def test_repr_shows_time_and_sleepers() -> None:
    """repr(FakeClock) shows the current fake time and how many tasks sleep."""
    clock = FakeClock(2.5)
    task = asyncio.create_task(clock.sleep(1))
    await clock.wait_for_sleepers(1)
    assert "FakeClock(now=2.5, sleepers=1)" == repr(clock)
    clock.advance(1)
    await task
    assert "FakeClock(now=3.5, sleepers=0)" == repr(clock)


async def test_fake_clock_drives_code_written_against_clock() -> None:
    """Code that only knows the Clock protocol runs instantly against a FakeClock."""
    clock = FakeClock()

    async def timeout_after(
        clock: Clock, seconds: float, work: Callable[[], Coroutine[Any, Any, object]]
    ) -> bool:
        sleeper = asyncio.create_task(clock.sleep(seconds))
        worker = asyncio.create_task(work())
        done, pending = await asyncio.wait({sleeper, worker}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return sleeper in done

    never = asyncio.Event()
    result = asyncio.create_task(timeout_after(clock, 30, never.wait))
    await clock.wait_for_sleepers(1)
    clock.advance(30)
    assert await result
    assert 0 == clock.sleepers
