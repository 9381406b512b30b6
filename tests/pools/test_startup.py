"""Start-up helpers: retries inside a budget, and running several openings together."""

from __future__ import annotations

import asyncio

import pytest

from scalepy.errors import BackendTimeout, BackendUnavailable

# The internal start-up helpers PoolManager.open() uses, tested directly.
from scalepy.pools._startup import gather_or_cancel, start_with_retries
from scalepy.telemetry import NOOP
from scalepy.testing import FakeClock


async def test_a_retry_that_succeeds_ends_the_start_up() -> None:
    """Unavailable, then available: one retry after a backoff, then done."""
    calls: list[float] = []
    clock = FakeClock()

    async def attempt() -> None:
        calls.append(clock.now())
        if len(calls) == 1:
            raise BackendUnavailable("refused", backend="db")

    task = asyncio.create_task(
        start_with_retries(attempt, budget=10, backend="db", clock=clock, instrumentation=NOOP)
    )
    await clock.wait_for_sleepers(1)
    clock.advance(0.1)  # the first backoff is at most 0.1 s
    await task

    assert 2 == len(calls)


async def test_an_error_of_another_kind_is_not_retried_nor_wrapped() -> None:
    """A plain TimeoutError from an attempt (not the budget's) propagates as it is."""

    async def attempt() -> None:
        raise TimeoutError("the attempt's own")

    with pytest.raises(TimeoutError, match="the attempt's own") as caught:
        await start_with_retries(
            attempt, budget=10, backend="db", clock=FakeClock(), instrumentation=NOOP
        )

    assert not isinstance(caught.value, BackendTimeout)


async def test_gather_or_cancel_cancels_the_rest_when_one_fails() -> None:
    """The first failure cancels the others, waits for them, and is raised."""
    slow_cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            slow_cancelled.set()
            raise

    async def failing() -> None:
        raise BackendUnavailable("down", backend="db")

    with pytest.raises(BackendUnavailable, match="down"):
        await gather_or_cancel(slow(), failing())

    assert slow_cancelled.is_set()
    await gather_or_cancel()  # nothing to do is fine
