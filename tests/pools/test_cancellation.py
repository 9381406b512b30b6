"""Cancellation never leaks a connection: 1,000 acquires cancelled at random points.

Each round starts 50 tasks that acquire a connection, run a short query and
return it, and cancels all but a few of them after a random delay, so that
cancellations land while waiting in line, while a connection is opened for the
task or checked, inside the query, and while the connection is reset on its way
back. Afterwards the pool must hold only idle connections, and the server must
show exactly as many sessions for the pool as the pool says it has open: none
lent, none lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import pytest

from scalepy.pools import PoolOptions, PostgresPool
from tests.pools.helpers import wait_for_backends

CANCELLATIONS = 1_000
TASKS = 50  # started at once, per round
MAX_CANCEL_DELAY = 0.01  # seconds; a task's whole acquire-query-release takes about 1-2 ms
SPARED = 0.05  # the share of tasks left alone, to show the pool keeps serving meanwhile


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="steady"),
        # Every lend checks the connection and every connection lives 20 ms, so
        # cancellations also land in SELECT 1 and in opening new connections.
        pytest.param({"validate_after_idle": 0.0, "max_lifetime": 0.02}, id="recycling"),
    ],
)
async def test_a_thousand_cancelled_acquires_leak_nothing(
    postgres_dsn: str,
    app_name: str,
    options: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After 1,000 randomly cancelled acquires nothing is lent, waiting or open on the side."""
    caplog.set_level(logging.WARNING)
    rng = random.Random(6)
    outcomes = {"completed": 0, "cancelled waiting": 0, "cancelled holding": 0}
    pool = PostgresPool(
        postgres_dsn,
        name="cancel",
        options=PoolOptions(
            application_name=app_name, min_size=1, max_size=4, acquire_timeout=30.0, **options
        ),
    )

    async def work(pause: float) -> None:
        holding = False
        try:
            async with pool.acquire() as connection:
                holding = True
                await connection.fetchval("SELECT pg_sleep($1)", pause)
            outcomes["completed"] += 1
        except asyncio.CancelledError:
            outcomes["cancelled holding" if holding else "cancelled waiting"] += 1
            raise

    async with pool:
        loop = asyncio.get_running_loop()
        cancelled = started = 0
        while cancelled < CANCELLATIONS:
            tasks = [asyncio.create_task(work(rng.random() * 0.002)) for _ in range(TASKS)]
            started += TASKS
            for task in tasks:
                if rng.random() >= SPARED:
                    loop.call_later(rng.random() * MAX_CANCEL_DELAY, task.cancel)
                    cancelled += 1
            await asyncio.gather(*tasks, return_exceptions=True)
        if pool._openings:  # connections still being opened for acquirers that gave up
            await asyncio.wait(pool._openings)

        stats = pool.statistics()
        assert (0, 0, 0) == (stats.used, stats.pending, stats.opening)
        assert stats.size == stats.idle <= 4
        assert started == sum(outcomes.values())
        assert all(outcomes.values()), outcomes  # cancellations landed at every stage
        assert stats.size == await wait_for_backends(postgres_dsn, app_name, stats.size)
    assert 0 == await wait_for_backends(postgres_dsn, app_name, 0)
    assert [] == [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
