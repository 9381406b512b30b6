"""scalepy.bulkhead: the concurrency limit, FIFO waiting, rejection, cancellation, telemetry."""

from __future__ import annotations

import asyncio
import inspect
import math
from typing import Any

import pytest

from scalepy.bulkhead import ACTIVE, REJECTED, Bulkhead, BulkheadStatistics
from scalepy.errors import BulkheadFull, ConfigurationError, UsageError
from scalepy.testing import FakeClock, RecordingInstrumentation


async def hold(bulkhead: Bulkhead) -> None:
    """Take a slot from the test body itself, without a task."""
    await bulkhead.__aenter__()


async def release(bulkhead: Bulkhead) -> None:
    """Give back a slot taken with `hold()`."""
    await bulkhead.__aexit__(None, None, None)


async def occupy(bulkhead: Bulkhead, entered: asyncio.Event, leave: asyncio.Event) -> None:
    """Run inside the bulkhead: signal `entered`, then stay until `leave` is set."""
    async with bulkhead:
        entered.set()
        await leave.wait()


def stats(bulkhead: Bulkhead) -> tuple[int, int]:
    """Return (running, waiting)."""
    snapshot = bulkhead.statistics()
    return snapshot.running, snapshot.waiting


async def test_never_exceeds_its_limit_under_1000_concurrent_callers() -> None:
    """1,000 callers at once: at most max_concurrent run, the rest wait, all finish."""
    bulkhead = Bulkhead("db", max_concurrent=10, max_wait=math.inf)
    arrived = 0
    all_arrived = asyncio.Event()
    gate = asyncio.Event()
    running = max_running = done = 0

    async def caller() -> None:
        nonlocal arrived, running, max_running, done
        arrived += 1
        if arrived == 1_000:
            all_arrived.set()
        async with bulkhead:
            running += 1
            max_running = max(max_running, running)
            await gate.wait()
            await asyncio.sleep(0)  # yield while holding the slot, so callers interleave
            running -= 1
            done += 1

    tasks = [asyncio.create_task(caller()) for _ in range(1_000)]
    await all_arrived.wait()
    assert (10, 990) == stats(bulkhead)
    gate.set()
    await asyncio.gather(*tasks)

    assert (10, 1_000) == (max_running, done)
    assert BulkheadStatistics(running=0, waiting=0, max_concurrent=10, rejected=0) == (
        bulkhead.statistics()
    )


async def test_waiters_are_served_first_in_first_out() -> None:
    """Freed slots go to waiters in arrival order."""
    clock = FakeClock()
    bulkhead = Bulkhead("db", max_concurrent=1, max_wait=60.0, clock=clock)
    order: list[int] = []

    async def caller(number: int) -> None:
        async with bulkhead:
            order.append(number)

    await hold(bulkhead)
    tasks = [asyncio.create_task(caller(number)) for number in range(5)]
    await clock.wait_for_sleepers(5)  # every waiter's max_wait timer runs: all are in line
    await release(bulkhead)
    await asyncio.gather(*tasks)

    assert [0, 1, 2, 3, 4] == order


async def test_a_waiter_is_rejected_after_max_wait() -> None:
    """A caller that gets no slot within max_wait raises BulkheadFull, and leaves the line."""
    clock = FakeClock()
    bulkhead = Bulkhead("payments", max_concurrent=1, max_wait=2.0, clock=clock)

    async def caller() -> None:
        async with bulkhead:
            pass

    await hold(bulkhead)
    task = asyncio.create_task(caller())
    await clock.wait_for_sleepers(1)
    clock.advance(1.999)
    assert (1, 1) == stats(bulkhead)
    clock.advance(0.001)
    with pytest.raises(BulkheadFull) as raised:
        await task

    assert ("payments", 1) == (raised.value.name, raised.value.max_concurrent)
    assert BulkheadStatistics(running=1, waiting=0, max_concurrent=1, rejected=1) == (
        bulkhead.statistics()
    )


async def test_zero_wait_rejects_at_once() -> None:
    """With max_wait=0 a full bulkhead rejects without queueing."""
    bulkhead = Bulkhead("db", max_concurrent=1)
    await hold(bulkhead)

    with pytest.raises(BulkheadFull, match="bulkhead 'db' is full"):
        async with bulkhead:
            pass

    assert (1, 0) == stats(bulkhead)
    assert 1 == bulkhead.statistics().rejected


async def test_cancellation_while_waiting_leaves_the_line() -> None:
    """A cancelled waiter takes no slot and no place in line."""
    clock = FakeClock()
    bulkhead = Bulkhead("db", max_concurrent=1, max_wait=60.0, clock=clock)
    entered, leave = asyncio.Event(), asyncio.Event()
    await hold(bulkhead)
    waiter = asyncio.create_task(occupy(bulkhead, entered, leave))
    await clock.wait_for_sleepers(1)  # its max_wait timer runs: it is in line
    assert (1, 1) == stats(bulkhead)

    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (1, 0) == stats(bulkhead)
    await release(bulkhead)

    assert (0, 0) == stats(bulkhead)
    async with bulkhead:
        assert (1, 0) == stats(bulkhead)


async def test_cancellation_while_running_frees_the_slot() -> None:
    """A task cancelled inside the bulkhead gives its slot back."""
    bulkhead = Bulkhead("db", max_concurrent=1)
    entered, leave = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(occupy(bulkhead, entered, leave))
    await entered.wait()
    assert (1, 0) == stats(bulkhead)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert (0, 0) == stats(bulkhead)


async def test_a_slot_handed_to_a_cancelled_waiter_is_passed_on() -> None:
    """Cancelled just as it is handed a slot, a waiter passes the slot to the next in line."""
    clock = FakeClock()
    bulkhead = Bulkhead("db", max_concurrent=1, max_wait=60.0, clock=clock)
    first_entered, second_entered, leave = asyncio.Event(), asyncio.Event(), asyncio.Event()
    await hold(bulkhead)
    first = asyncio.create_task(occupy(bulkhead, first_entered, leave))
    second = asyncio.create_task(occupy(bulkhead, second_entered, leave))
    await clock.wait_for_sleepers(2)

    await release(bulkhead)  # hands the slot to `first`...
    first.cancel()  # ...which is cancelled before it can resume
    with pytest.raises(asyncio.CancelledError):
        await first
    await second_entered.wait()

    assert (False, (1, 0)) == (first_entered.is_set(), stats(bulkhead))
    leave.set()
    await second
    assert (0, 0) == stats(bulkhead)


async def test_a_release_skips_a_waiter_cancelled_in_the_same_tick() -> None:
    """A waiter cancelled but not yet resumed is skipped by a release, and the slot is freed."""
    clock = FakeClock()
    bulkhead = Bulkhead("db", max_concurrent=1, max_wait=60.0, clock=clock)
    entered, leave = asyncio.Event(), asyncio.Event()
    await hold(bulkhead)
    waiter = asyncio.create_task(occupy(bulkhead, entered, leave))
    await clock.wait_for_sleepers(1)  # its max_wait timer runs: it is in line

    waiter.cancel()
    await release(bulkhead)  # before the cancelled task has run
    with pytest.raises(asyncio.CancelledError):
        await waiter

    assert (False, (0, 0)) == (entered.is_set(), stats(bulkhead))


async def test_a_waiter_cancelled_just_after_timing_out_takes_no_slot() -> None:
    """Timed out, then cancelled before resuming: no slot is released on its behalf."""
    clock = FakeClock()
    bulkhead = Bulkhead("db", max_concurrent=1, max_wait=1.0, clock=clock)
    entered, leave = asyncio.Event(), asyncio.Event()
    await hold(bulkhead)
    waiter = asyncio.create_task(occupy(bulkhead, entered, leave))
    await clock.wait_for_sleepers(1)

    clock.advance(1.0)
    await asyncio.sleep(0)  # one loop pass: the timer expires the waiter, which has not resumed
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter

    assert (1, 0) == stats(bulkhead)  # the held slot is still held
    await release(bulkhead)
    assert (0, 0) == stats(bulkhead)


async def test_a_slot_handed_over_as_the_wait_expires_is_kept() -> None:
    """If the slot arrives in the same tick the timer fires, the waiter runs."""
    clock = FakeClock()
    bulkhead = Bulkhead("db", max_concurrent=1, max_wait=1.0, clock=clock)
    entered, leave = asyncio.Event(), asyncio.Event()
    await hold(bulkhead)
    waiter = asyncio.create_task(occupy(bulkhead, entered, leave))
    await clock.wait_for_sleepers(1)

    clock.advance(1.0)  # the timer is due...
    await release(bulkhead)  # ...but the slot is handed over before it runs
    await entered.wait()
    leave.set()
    await waiter

    assert BulkheadStatistics(running=0, waiting=0, max_concurrent=1, rejected=0) == (
        bulkhead.statistics()
    )


async def test_decorator_runs_inside_the_bulkhead_and_keeps_the_signature() -> None:
    """A decorated coroutine function holds a slot while it runs; its signature survives."""
    bulkhead = Bulkhead("db", max_concurrent=2)

    @bulkhead
    async def fetch(key: str, *, default: int = 0) -> tuple[str, int]:
        """Fetch a key."""
        return key, bulkhead.statistics().running

    assert ("a", 1) == await fetch("a")
    assert ("fetch", "Fetch a key.") == (fetch.__name__, fetch.__doc__)
    assert "(key: 'str', *, default: 'int' = 0) -> 'tuple[str, int]'" == str(
        inspect.signature(fetch)
    )
    assert (0, 0) == stats(bulkhead)


async def test_errors_inside_free_the_slot() -> None:
    """An exception raised inside the bulkhead propagates and frees the slot."""
    bulkhead = Bulkhead("db", max_concurrent=1)

    with pytest.raises(KeyError):
        async with bulkhead:
            raise KeyError("boom")

    assert (0, 0) == stats(bulkhead)


async def test_repr_shows_live_state() -> None:
    """repr() shows the name, running/limit, waiting and rejected counts."""
    bulkhead = Bulkhead("db", max_concurrent=3)
    await hold(bulkhead)

    assert "<Bulkhead 'db' running=1/3 waiting=0 rejected=0>" == repr(bulkhead)


async def test_telemetry_reports_running_and_rejections() -> None:
    """The running gauge follows every change; rejections are counted and sent as events."""
    instrumentation = RecordingInstrumentation()
    bulkhead = Bulkhead("db", max_concurrent=1, instrumentation=instrumentation)

    async with bulkhead:
        with pytest.raises(BulkheadFull):
            async with bulkhead:
                pass

    assert [1.0, 0.0] == [
        value for name, value, _ in instrumentation.records if name == ACTIVE.name
    ]
    assert {"scalepy.bulkhead.name": "db"} == instrumentation.records[0][2]
    assert 1.0 == instrumentation.value(REJECTED.name, {"scalepy.bulkhead.name": "db"})
    rejected = {"scalepy.bulkhead.name": "db", "scalepy.bulkhead.max_concurrent": 1}
    assert [("scalepy.bulkhead.rejected", rejected)] == [
        (event.name, event.attributes) for event in instrumentation.events
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "name must be a non-empty string"),
        ({"name": 42}, "name must be a non-empty string"),
        ({"max_concurrent": 0}, "max_concurrent must be an int >= 1"),
        ({"max_concurrent": 2.0}, "max_concurrent must be an int >= 1"),
        ({"max_concurrent": True}, "max_concurrent must be an int >= 1"),
        ({"max_wait": -1.0}, "max_wait must be a number of seconds >= 0"),
        ({"max_wait": math.nan}, "max_wait must be"),
        ({"max_wait": False}, "max_wait must be"),
    ],
)
def test_invalid_options_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    """Invalid options raise ConfigurationError saying what is allowed."""
    options: dict[str, Any] = {"name": "db", "max_concurrent": 1, **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        Bulkhead(**options)


async def test_with_instead_of_async_with_says_async_with() -> None:
    """`with bulkhead:` raises UsageError naming `async with`, and takes no slot."""
    bulkhead = Bulkhead("db", max_concurrent=1)
    with pytest.raises(UsageError, match="a Bulkhead is entered with `async with`"), bulkhead:
        pass
    assert 0 == bulkhead.statistics().running


def test_a_sync_function_is_refused_when_decorated() -> None:
    """Decorating a sync function raises ConfigurationError (its calls used to fail in await)."""
    bulkhead = Bulkhead("db", max_concurrent=1)

    def load() -> int:
        return 1

    with pytest.raises(ConfigurationError, match=r"decorates async functions \(async def\)"):
        bulkhead(load)  # type: ignore[arg-type]  # the misuse under test
