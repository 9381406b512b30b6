"""A bulkhead: at most N calls at once, a short line, and no slot lost to cancellation."""

from __future__ import annotations

import asyncio

from scalepy.bulkhead import Bulkhead
from scalepy.errors import BulkheadFull
from scalepy.testing import FakeClock


async def main() -> None:
    """Fill the bulkhead, queue behind it, time out, and cancel safely."""
    clock = FakeClock()
    payments = Bulkhead("payments", max_concurrent=2, max_wait=0.5, clock=clock)

    async def charge(done: asyncio.Event) -> str:
        async with payments:
            await done.wait()  # a slow call, holding its slot until `done` is set
            return "charged"

    events = [asyncio.Event() for _ in range(5)]
    first, second, third, fourth, fifth = (asyncio.create_task(charge(event)) for event in events)
    await clock.wait_for_sleepers(3)  # each waiter's max_wait timer is asleep
    stats = payments.statistics()
    assert (stats.running, stats.waiting) == (2, 3)

    # A finished call hands its slot straight to the longest waiter (first in, first out).
    events[0].set()
    assert await first == "charged"
    await asyncio.sleep(0)
    assert (payments.statistics().running, payments.statistics().waiting) == (2, 2)

    # Cancelling a waiting call takes it out of the line; no slot is lost.
    fifth.cancel()
    await asyncio.gather(fifth, return_exceptions=True)
    assert payments.statistics().waiting == 1

    # After max_wait, a caller still in line gets BulkheadFull.
    clock.advance(0.5)
    try:
        await fourth
    except BulkheadFull as exc:
        assert (exc.name, exc.max_concurrent) == ("payments", 2)
    else:
        raise AssertionError("the fourth call must time out in line")

    # Cancelling a running call frees its slot, too.
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    events[2].set()
    assert await third == "charged"
    stats = payments.statistics()
    assert (stats.running, stats.waiting, stats.rejected) == (0, 0, 1)

    # With max_wait=0 (the default), a full bulkhead rejects at once.
    reports = Bulkhead("reports", max_concurrent=1)

    @reports
    async def build_report() -> str:
        await asyncio.sleep(0)
        return "report"

    results = await asyncio.gather(build_report(), build_report(), return_exceptions=True)
    assert results[0] == "report"
    assert isinstance(results[1], BulkheadFull)


if __name__ == "__main__":
    asyncio.run(main())
