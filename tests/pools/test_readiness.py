"""Readiness built on a PoolManager's checks while its PostgreSQL server stops and returns."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest

from scalepy.errors import BackendUnavailable, PoolTimeoutError
from scalepy.health import Health, Status
from scalepy.pools import PoolManager, PoolOptions

if TYPE_CHECKING:
    from tests.support.postgres_server import PostgresServer

CHECK_TIMEOUT = 0.5
PASS_TTL = 0.5
FAIL_TTL = 0.2
MARGIN = 1.0  # scheduling slack on a loaded 2-core machine
POLL = 0.02  # the server is another process: its effect is polled for, with a deadline


async def wait_for_status(health: Health, wanted: Status, deadline: float) -> float:
    """Probe readiness until it reports `wanted`; return how long that took."""
    started = time.monotonic()
    while (report := await health.readiness()).status is not wanted:
        elapsed = time.monotonic() - started
        assert elapsed < deadline, f"still {report.status.value} after {elapsed:.2f} s"
        await asyncio.sleep(POLL)
    return time.monotonic() - started


async def test_readiness_follows_the_server_and_liveness_never_does(
    private_postgres: PostgresServer, redis_url: str, app_name: str
) -> None:
    """Stopped: ready fails within timeout + TTL, live passes, acquires end by their deadline.

    Restarted: readiness passes again and the pool serves queries, with nobody
    reopening anything.
    """
    options = PoolOptions(
        application_name=app_name,
        min_size=1,
        max_size=2,
        connect_timeout=0.3,
        acquire_timeout=1.0,
        validate_after_idle=0.0,
    )
    async with PoolManager(
        postgres=private_postgres.dsn(), redis=redis_url, options=options
    ) as pools:
        health = Health(
            pools.health_checks(timeout=CHECK_TIMEOUT), pass_ttl=PASS_TTL, fail_ttl=FAIL_TTL
        )
        async with health:
            health.mark_started()
            assert Status.PASS == (await health.readiness()).status

            private_postgres.stop()
            await wait_for_status(health, Status.FAIL, CHECK_TIMEOUT + PASS_TTL + MARGIN)
            report = await health.readiness()
            failed = {result.check.name for result in report.checks if result.status is Status.FAIL}
            assert {"postgres"} == failed  # Redis, checked beside it, still passes
            assert Status.PASS == health.liveness().status

            started = time.monotonic()
            with pytest.raises((BackendUnavailable, PoolTimeoutError)):
                async with pools.postgres.acquire():
                    pass
            assert time.monotonic() - started < options.acquire_timeout + MARGIN

            private_postgres.start()
            await wait_for_status(health, Status.PASS, FAIL_TTL + CHECK_TIMEOUT + MARGIN)
            assert 1 == await pools.postgres.fetchval("SELECT 1")
