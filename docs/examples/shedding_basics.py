"""A load shedder: an adaptive limit, a short line, priorities, and fast refusals."""

from __future__ import annotations

import asyncio

from scalepy.errors import RequestShed
from scalepy.shedding import AIMD, Gradient, LoadShedder, Priority
from scalepy.testing import FakeClock


async def main() -> None:
    """Fill the limit, queue behind it, shed by class, and watch the limit learn."""
    clock = FakeClock()
    # AIMD with a fixed range keeps the limit at 2 here, so the example is exact.
    shedder = LoadShedder(
        "api", limit=AIMD(initial_limit=2, max_limit=2), max_queue=2, max_wait=0.5, clock=clock
    )
    gate = asyncio.Event()

    async def handle(priority: Priority) -> str:
        async with shedder.slot(priority):
            await gate.wait()  # a slow request, holding its slot until the gate opens
            return priority.label

    running = [asyncio.create_task(handle(Priority.NORMAL)) for _ in range(2)]
    low = asyncio.create_task(handle(Priority.LOW))
    normal = asyncio.create_task(handle(Priority.NORMAL))
    await clock.wait_for_sleepers(1)  # both wait: the line's max_wait timer is asleep
    stats = shedder.statistics()
    assert (stats.in_flight, stats.queued) == (2, 2)

    # The line is full: a HIGH request takes the place of the LOW one, which is shed.
    high = asyncio.create_task(handle(Priority.HIGH))
    try:
        await low
    except RequestShed as exc:
        assert (exc.priority, exc.reason) == ("low", "evicted")
    else:
        raise AssertionError("the LOW request must be shed first")

    # Health probes are CRITICAL: never queued, never shed, not counted.
    async with shedder.slot(Priority.CRITICAL):
        assert shedder.statistics().in_flight == 2

    # Slots free up: the HIGH waiter goes first, then the NORMAL one.
    gate.set()
    assert await asyncio.gather(*running, high, normal) == ["normal", "normal", "high", "normal"]
    assert shedder.statistics().shed == {"low": 1, "normal": 0, "high": 0}

    # The gradient limit learns capacity from latency. It first measures the latency of
    # calls that do not queue (one at a time), then grows while latency stays flat and
    # shrinks when latency rises well above that baseline.
    adaptive = LoadShedder(
        "adaptive", limit=Gradient(initial_limit=10), min_samples=10, clock=clock
    )
    assert adaptive.limit == 1  # probing its baseline

    async def calls(count: int, at_once: int, seconds: float) -> None:
        """`count` calls, `at_once` at a time, each taking `seconds`."""
        for _ in range(count // at_once):
            permits = [adaptive.slot() for _ in range(at_once)]
            for permit in permits:
                await permit.__aenter__()
            clock.advance(seconds)
            for permit in permits:
                await permit.__aexit__(None, None, None)

    await calls(20, 1, 0.2)  # two samples of 10 calls alone: the baseline is 200 ms
    assert adaptive.limit == 10  # the probe is over: back to the initial limit
    await calls(10, 10, 0.2)  # 10 at once, as fast as alone: the limit grows
    grown = adaptive.limit
    assert grown > 10
    await calls(10, 10, 2.0)  # 10x slower: calls queue inside the process, the limit shrinks
    assert adaptive.limit < grown


if __name__ == "__main__":
    asyncio.run(main())
