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
    await clock.wait_for_sleepers(2)  # both waiters' max_wait timers are asleep
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

    # The gradient limit learns capacity from latency: flat latency at the limit grows it,
    # latency rising well above its long-term level shrinks it.
    adaptive = LoadShedder(
        "adaptive", limit=Gradient(initial_limit=10), min_samples=10, clock=clock
    )

    async def wave(seconds: float) -> None:
        permits = [adaptive.slot() for _ in range(10)]
        for permit in permits:
            await permit.__aenter__()
        clock.advance(seconds)
        for permit in permits:
            await permit.__aexit__(None, None, None)

    await wave(0.2)  # 10 calls of 200 ms: the baseline, and the limit grows
    grown = adaptive.limit
    assert grown > 10
    await wave(2.0)  # 10x slower: calls queue inside the process, the limit shrinks
    assert adaptive.limit < grown


if __name__ == "__main__":
    asyncio.run(main())
