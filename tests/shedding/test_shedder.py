"""`LoadShedder`: the limit, waiting, shedding by class, learning, cancellation, telemetry."""

from __future__ import annotations

import asyncio

import pytest

from scalepy.errors import ConfigurationError, RequestShed, ScalepyError
from scalepy.shedding import AIMD, Gradient, LoadShedder, Priority, Sample, ShedderStatistics
from scalepy.testing import FakeClock, RecordingInstrumentation


class Holder:
    """Calls holding slots until released, each running in its own task."""

    def __init__(self, shedder: LoadShedder) -> None:
        self.shedder = shedder
        self.tasks: list[asyncio.Task[None]] = []
        self.leave = asyncio.Event()
        self.entered: list[str] = []

    def start(self, name: str, priority: Priority = Priority.NORMAL) -> asyncio.Task[None]:
        """Start a call that records `name` once it holds a slot, then waits for `leave`."""

        async def call() -> None:
            async with self.shedder.slot(priority):
                self.entered.append(name)
                await self.leave.wait()

        task = asyncio.create_task(call())
        self.tasks.append(task)
        return task


async def settle() -> None:
    """Let every ready task run until all are blocked again."""
    for _ in range(5):
        await asyncio.sleep(0)


def shedder(clock: FakeClock, limit: int = 2, **options: object) -> LoadShedder:
    """A shedder with a fixed starting limit that no sample moves during a test."""
    return LoadShedder(
        "api",
        limit=AIMD(initial_limit=limit, min_limit=1, max_limit=limit),
        clock=clock,
        min_samples=1000,  # no window closes: the limit stays put
        **options,  # type: ignore[arg-type]
    )


async def test_runs_up_to_the_limit_at_once_and_queues_the_rest() -> None:
    """Two slots: two calls run, the third waits and runs when one leaves."""
    limiter = shedder(FakeClock(), limit=2)
    calls = Holder(limiter)
    for name in "abc":
        calls.start(name)
    await settle()
    assert ["a", "b"] == calls.entered
    assert (2, 1) == (limiter.statistics().in_flight, limiter.statistics().queued)
    calls.leave.set()
    await asyncio.gather(*calls.tasks)
    assert ["a", "b", "c"] == calls.entered
    assert (
        ShedderStatistics(
            limit=2,
            in_flight=0,
            queued=0,
            overloaded=False,
            shed={"low": 0, "normal": 0, "high": 0},
        )
        == limiter.statistics()
    )


async def test_a_call_waiting_longer_than_max_wait_is_shed() -> None:
    """After `max_wait` seconds in line a call raises `RequestShed` (reason `timeout`).

    One timer serves the line: each waiter is shed `max_wait` after it came, not before.
    """
    clock = FakeClock()
    limiter = shedder(clock, limit=1, max_wait=0.5)
    calls = Holder(limiter)
    calls.start("busy")
    first = calls.start("first")
    await clock.wait_for_sleepers(1)
    clock.advance(0.3)
    second = calls.start("second")
    await settle()
    clock.advance(0.2)  # the first has waited 0.5 s, the second 0.2 s
    with pytest.raises(RequestShed) as caught:
        await first
    shed = caught.value
    assert ("api", "normal", "timeout") == (shed.name, shed.priority, shed.reason)
    assert isinstance(caught.value, ScalepyError)
    assert not second.done()
    assert 1 == limiter.statistics().queued
    await clock.wait_for_sleepers(1)
    clock.advance(0.3)
    with pytest.raises(RequestShed, match="timeout"):
        await second
    assert 0 == limiter.statistics().queued
    calls.leave.set()
    await asyncio.gather(*(task for task in calls.tasks if task not in (first, second)))


async def test_a_full_line_sheds_at_once() -> None:
    """With the line full of equally important calls, a new one is shed without waiting."""
    limiter = shedder(FakeClock(), limit=1, max_queue=1)
    calls = Holder(limiter)
    calls.start("busy")
    calls.start("waits")
    await settle()
    with pytest.raises(RequestShed, match="queue_full"):
        async with limiter.slot():
            pass
    assert {"low": 0, "normal": 1, "high": 0} == limiter.statistics().shed
    calls.leave.set()
    await asyncio.gather(*calls.tasks)


async def test_lower_classes_are_shed_first_and_served_last() -> None:
    """A HIGH arrival evicts a LOW waiter from a full line and is served before NORMAL."""
    limiter = shedder(FakeClock(), limit=1, max_queue=2)
    calls = Holder(limiter)
    calls.start("busy")
    low = calls.start("low", Priority.LOW)
    calls.start("normal")
    await settle()
    calls.start("high", Priority.HIGH)
    await settle()
    with pytest.raises(RequestShed, match="evicted"):
        await low
    calls.leave.set()
    await asyncio.gather(*(task for task in calls.tasks if task is not low))
    assert ["busy", "high", "normal"] == calls.entered
    assert {"low": 1, "normal": 0, "high": 0} == limiter.statistics().shed


async def test_critical_calls_bypass_the_limit_uncounted() -> None:
    """With every slot and the line taken, a CRITICAL call still runs at once."""
    limiter = shedder(FakeClock(), limit=1, max_queue=0)
    calls = Holder(limiter)
    calls.start("busy")
    await settle()
    async with limiter.slot(Priority.CRITICAL):
        assert 1 == limiter.statistics().in_flight
    calls.leave.set()
    await asyncio.gather(*calls.tasks)


async def test_stale_waiters_are_shed_under_sustained_overload() -> None:
    """A line not empty for `interval` serves the newest waiter and sheds those past `target`."""
    clock = FakeClock()
    limiter = shedder(clock, limit=1, interval=0.1, target=0.05, max_wait=10)
    calls = Holder(limiter)
    first = asyncio.Event()

    async def busy() -> None:
        async with limiter.slot():
            await first.wait()

    holder = asyncio.create_task(busy())
    await settle()
    old = calls.start("old")
    await settle()
    clock.advance(0.2)
    calls.start("new")
    await settle()
    assert limiter.statistics().overloaded
    first.set()
    await holder
    await settle()
    with pytest.raises(RequestShed, match="stale"):
        await old
    assert ["new"] == calls.entered
    calls.leave.set()
    await asyncio.gather(*(task for task in calls.tasks if task is not old))


async def test_under_overload_a_waiter_older_than_a_call_takes_is_stale() -> None:
    """The stale cutoff is the calls' mean duration when shorter than `target`.

    Calls take 10 ms: under overload a waiter of 20 ms is shed, though `target` is 50 ms.
    """
    clock = FakeClock()
    limiter = LoadShedder(
        "api",
        limit=AIMD(initial_limit=1, min_limit=1, max_limit=1),
        target=0.05,
        interval=0.1,
        sample_window=0.01,
        min_samples=2,  # so the long "busy" call alone closes no window
        max_wait=10,
        clock=clock,
    )
    for _ in range(2):
        async with limiter.slot():
            clock.advance(0.01)  # one sample: calls take 10 ms
    calls = Holder(limiter)
    calls.start("busy")
    old = calls.start("old")  # waits from 0 s: past target at 0.2 s, a standing queue
    await settle()
    clock.advance(0.18)
    calls.start("20 ms")
    await settle()
    clock.advance(0.02)
    calls.start("fresh")
    await settle()
    calls.leave.set()
    await calls.tasks[0]
    await settle()
    with pytest.raises(RequestShed, match="stale"):
        await old
    with pytest.raises(RequestShed, match="stale"):
        await calls.tasks[2]
    await calls.tasks[3]
    assert ["busy", "fresh"] == calls.entered


async def test_a_cancelled_waiter_leaves_the_line_and_leaks_no_slot() -> None:
    """Cancelling a waiting call removes it; the slot goes to the next one."""
    limiter = shedder(FakeClock(), limit=1)
    calls = Holder(limiter)
    calls.start("busy")
    cancelled = calls.start("cancelled")
    calls.start("next")
    await settle()
    cancelled.cancel()
    await settle()
    assert 1 == limiter.statistics().queued
    calls.leave.set()
    await asyncio.gather(*(task for task in calls.tasks if task is not cancelled))
    assert ["busy", "next"] == calls.entered
    assert 0 == limiter.statistics().in_flight


async def test_the_limit_learns_from_call_durations_and_reports_each_move() -> None:
    """A probe, then slow calls at the limit shrink it; each move is an event and a gauge."""
    clock = FakeClock()
    telemetry = RecordingInstrumentation()
    limiter = LoadShedder(
        "api",
        limit=Gradient(initial_limit=40),
        sample_window=0.01,
        min_samples=40,
        clock=clock,
        instrumentation=telemetry,
    )

    async def wave(duration: float) -> None:
        permits = [limiter.slot() for _ in range(40)]
        for permit in permits:
            await permit.__aenter__()
        clock.advance(duration)
        for permit in permits:
            await permit.__aexit__(None, None, None)

    assert 1 == limiter.limit  # probing: calls one at a time measure the baseline
    for _ in range(2 * 40):  # two windows of 40 calls
        async with limiter.slot():
            clock.advance(0.01)
    assert 40 == limiter.limit
    await wave(0.01)  # 10 ms: within tolerance of the baseline, the limit grows
    grown = limiter.limit
    assert grown > 40
    await wave(1.0)  # 100x slower: the limit shrinks
    assert limiter.limit < grown
    moves = [e.attributes for e in telemetry.events if e.name == "scalepy.shedding.limit_changed"]
    assert [1, 40, int(grown)] == [move["scalepy.shedding.limit.old"] for move in moves]
    gauge = telemetry.value("scalepy.shedding.limit", {"scalepy.shedding.name": "api"})
    assert limiter.limit == gauge


class Recorder:
    """A limit policy and core in one: keeps the limit at 1 and records every sample."""

    initial_limit = 1
    limit = 1.0

    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def start(self) -> Recorder:
        """Be the core too."""
        return self

    def update(self, sample: Sample) -> float:
        """Record the sample; leave the limit alone."""
        self.samples.append(sample)
        return self.limit


async def test_a_waiters_duration_counts_from_when_its_slot_was_handed_over() -> None:
    """Not from when its task next ran: the event loop's delay in between is measured.

    The slot is handed over at 1 s; the loop runs other work until 1.5 s before the
    waiter's task resumes; its call then takes 0.25 s. It held the slot 0.75 s: the
    delay is queueing the running calls cause (their CPU work), the limit's signal.
    """
    clock = FakeClock()
    recorder = Recorder()
    limiter = LoadShedder(
        "api",
        limit=recorder,
        sample_window=1e-9,
        min_samples=1,
        max_wait=10,
        target=10,  # a line that never counts as overloaded: the waiter is served
        clock=clock,
    )

    async def waiter() -> None:
        async with limiter.slot():
            clock.advance(0.25)

    busy = limiter.slot()
    await busy.__aenter__()
    waiting = asyncio.create_task(waiter())
    await settle()
    clock.advance(1.0)
    await busy.__aexit__(None, None, None)  # hands the slot over, synchronously
    clock.advance(0.5)  # the loop is busy elsewhere before the waiter's task runs
    await waiting
    assert [1.0, 0.75] == [sample.rtt for sample in recorder.samples]


async def test_aimd_backs_off_when_calls_time_out() -> None:
    """A `TimeoutError` escaping the block is a drop: AIMD multiplies the limit by `backoff`."""
    clock = FakeClock()
    limiter = LoadShedder(
        "api", limit=AIMD(initial_limit=10, backoff=0.5), min_samples=1, clock=clock
    )

    async def times_out() -> None:
        async with limiter.slot():
            clock.advance(0.2)  # a whole sampling window
            raise TimeoutError

    with pytest.raises(TimeoutError):
        await times_out()
    assert 5 == limiter.limit


async def test_metrics_count_shed_calls_by_class_and_reason() -> None:
    """Shed calls count under their priority and reason; gauges follow in-flight and queued."""
    telemetry = RecordingInstrumentation()
    limiter = shedder(FakeClock(), limit=1, max_queue=0, instrumentation=telemetry)
    calls = Holder(limiter)
    calls.start("busy")
    await settle()
    assert 1 == telemetry.value("scalepy.shedding.request.active")
    with pytest.raises(RequestShed):
        async with limiter.slot(Priority.LOW):
            pass
    labels = {
        "scalepy.shedding.name": "api",
        "scalepy.shedding.priority": "low",
        "scalepy.shedding.reason": "queue_full",
    }
    assert 1 == telemetry.value("scalepy.shedding.requests.shed", labels)
    calls.leave.set()
    await asyncio.gather(*calls.tasks)
    assert 0 == telemetry.value("scalepy.shedding.request.active")


async def test_the_decorator_keeps_the_function_and_limits_its_calls() -> None:
    """`@shedder` runs the function in a slot and keeps its name."""
    limiter = shedder(FakeClock(), limit=1)

    @limiter
    async def double(value: int) -> int:
        assert 1 == limiter.statistics().in_flight
        return value * 2

    assert 42 == await double(21)
    assert "double" == double.__name__


def test_repr_shows_live_state() -> None:
    """`repr()` names the shedder and shows in-flight, the limit, queued and shed calls."""
    assert "<LoadShedder 'api' in_flight=0/2 queued=0 shed=0>" == repr(shedder(FakeClock()))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_queue": -1}, "max_queue must be an int >= 0"),
        ({"max_wait": 0}, "max_wait must be a finite number > 0"),
        ({"target": float("inf")}, "target must be a finite number > 0"),
        ({"interval": -1}, "interval must be a finite number > 0"),
        ({"min_samples": 0}, "min_samples must be an int >= 1"),
    ],
)
def test_refuses_bad_options(kwargs: dict[str, float], message: str) -> None:
    """Each out-of-range option raises `ConfigurationError` naming the allowed values."""
    with pytest.raises(ConfigurationError, match=message):
        LoadShedder("api", **kwargs)  # type: ignore[arg-type]


def test_refuses_an_empty_name() -> None:
    """The name identifies the shedder in metrics: it cannot be empty."""
    with pytest.raises(ConfigurationError, match="name must be a non-empty string"):
        LoadShedder("")
