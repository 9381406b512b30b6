"""Process entry points for the multi-process shared-breaker tests (run with spawn).

Each process builds its own breaker named `NAME` with a `RedisSharedState`,
syncs once, then meets the others at a barrier; nothing synchronises by sleeping.
Times are `time.monotonic()`, one system-wide clock on Linux, so the parent can
compare the processes' readings.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from scalepy.breaker import BreakerState, CircuitBreaker, CircuitOpenError, RedisSharedState
from scalepy.errors import BackendError

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier, Event

    from scalepy.breaker import StateChange

NAME = "postgres"
FAILURES_TO_OPEN = 5
Report = tuple[Any, ...]


class Replica:
    """One process' breaker, recording when it first entered OPEN."""

    def __init__(self, url: str, namespace: str, flush_interval: float) -> None:
        self.opened_at: float | None = None
        self.opened = asyncio.Event()
        self.shared = RedisSharedState(
            url, namespace=namespace, flush_interval=flush_interval, max_backoff=0.5
        )
        self.breaker = CircuitBreaker(
            NAME,
            minimum_calls=FAILURES_TO_OPEN,
            window_size=10,
            failure_rate_threshold=0.5,
            open_for=60.0,
            listeners=[self._on_change],
            shared=self.shared,
        )

    def _on_change(self, change: StateChange) -> None:
        if change.to_state is BreakerState.OPEN and self.opened_at is None:
            self.opened_at = time.monotonic()
            self.opened.set()

    async def start(self, barrier: Barrier) -> None:
        """Start sharing, sync once (connected), then wait for every process."""
        await self.shared.open()
        await self.sync_when_available()
        await asyncio.to_thread(barrier.wait, 30)

    async def sync_when_available(self) -> None:
        """Sync as soon as Redis answers (it may be starting up)."""
        while True:
            try:
                await self.shared.sync()
            except BackendError:
                # A restarting server offers no event to wait on: retry shortly.
                await asyncio.sleep(0.05)
            else:
                return

    async def trip(self) -> None:
        """Inject failures until this breaker opens."""
        guarded = self.breaker(_fail)
        while self.breaker.state is BreakerState.CLOSED:
            with contextlib.suppress(ValueError, CircuitOpenError):
                await guarded()


async def _fail() -> None:
    raise ValueError("dependency down")


async def _succeed() -> None:
    return None


def open_together(
    index: int,
    url: str,
    namespace: str,
    flush_interval: float,
    barrier: Barrier,
    results: Queue[Report],
) -> None:
    """Process entry point: process 0 injects failures; report when each opened."""
    asyncio.run(_open_together(index, url, namespace, flush_interval, barrier, results))


async def _open_together(
    index: int,
    url: str,
    namespace: str,
    flush_interval: float,
    barrier: Barrier,
    results: Queue[Report],
) -> None:
    replica = Replica(url, namespace, flush_interval)
    await replica.start(barrier)
    if index == 0:
        await replica.trip()
    await asyncio.wait_for(replica.opened.wait(), 30)
    results.put((index, replica.opened_at))
    await replica.breaker.aclose()


def survive_outage(
    index: int,
    url: str,
    namespace: str,
    flush_interval: float,
    barrier: Barrier,
    stopped: Event,
    restarted: Event,
    results: Queue[Report],
) -> None:
    """Process entry point: keep working while Redis is down, share again once it is back."""
    asyncio.run(
        _survive_outage(index, url, namespace, flush_interval, barrier, stopped, restarted, results)
    )


async def _survive_outage(
    index: int,
    url: str,
    namespace: str,
    flush_interval: float,
    barrier: Barrier,
    stopped: Event,
    restarted: Event,
    results: Queue[Report],
) -> None:
    replica = Replica(url, namespace, flush_interval)
    breaker = replica.breaker
    await replica.start(barrier)
    await asyncio.to_thread(stopped.wait, 30)
    # Redis is down: process 0 fails and opens locally, the others keep succeeding.
    guarded = breaker(_fail if index == 0 else _succeed)
    allowed = rejected = 0
    slowest = 0.0
    end = time.monotonic() + 3 * flush_interval  # several failed syncs in the background
    while time.monotonic() < end:
        started = time.monotonic()
        try:
            await guarded()
        except ValueError:
            allowed += 1
        except CircuitOpenError:
            rejected += 1
        else:
            allowed += 1
        slowest = max(slowest, time.monotonic() - started)
        await asyncio.sleep(0.005)  # pacing of the workload, not synchronisation
    failed_syncs = replica.shared.statistics().failed_syncs
    results.put(("outage", index, breaker.state.label, allowed, rejected, slowest, failed_syncs))
    if index != 0:
        breaker.reset()  # forget the successes: only process 0's failures remain to share
    await asyncio.to_thread(restarted.wait, 30)
    await asyncio.wait_for(replica.opened.wait(), 30)
    adopted = replica.shared.statistics().adopted
    results.put(("resumed", index, breaker.state.label, adopted, replica.opened_at))
    await asyncio.to_thread(barrier.wait, 30)  # process 0 keeps sharing until all reported
    await breaker.aclose()
