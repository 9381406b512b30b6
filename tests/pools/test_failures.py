"""Pools against a PostgreSQL server the test freezes, stops and restarts.

Every acquire ends by its deadline while the server is frozen, fails fast
while it is down, and the pools recover by themselves when it returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import pytest

from scalepy.errors import BackendTimeout, BackendUnavailable, PoolClosedError, PoolTimeoutError
from scalepy.pools import PoolManager, PoolOptions, PostgresPool
from scalepy.testing import FakeClock, RecordingInstrumentation

if TYPE_CHECKING:
    from tests.support.postgres_server import PostgresServer

MARGIN = 0.5  # seconds of slack for a busy machine
WHERE = "SELECT current_database()"


def options(app_name: str, **given: Any) -> PoolOptions:
    """Short deadlines, so that the tests are fast."""
    given.setdefault("connect_timeout", 0.3)
    given.setdefault("acquire_timeout", 1.0)
    return PoolOptions(application_name=app_name, **given)


def with_private_replica(
    private_postgres: PostgresServer,
    postgres_dsn: str,
    app_name: str,
    clock: FakeClock | None = None,
    **given: Any,
) -> PoolManager:
    """The shared server as the primary, the private one as its replica (skipped 5 s on failure)."""
    return PoolManager(
        postgres=postgres_dsn,
        postgres_replicas=[private_postgres.dsn()],
        options=options(app_name, **given),
        replica_retry_delay=5.0,
        clock=clock,
    )


async def test_no_acquire_hangs_while_the_server_is_frozen(
    private_postgres: PostgresServer, app_name: str
) -> None:
    """With the server frozen, every acquire fails with a timeout by its deadline; then recovers."""
    pool = PostgresPool(
        private_postgres.dsn(),
        options=options(app_name, min_size=2, max_size=2, validate_after_idle=0.0),
    )
    async with pool:
        private_postgres.pause()
        started = time.monotonic()

        async def acquire() -> BaseException | None:
            try:
                async with pool.acquire():
                    return None
            except Exception as exc:
                return exc

        results = await asyncio.gather(*(acquire() for _ in range(10)))
        elapsed = time.monotonic() - started
        private_postgres.resume()

        assert all(isinstance(result, TimeoutError) for result in results), results
        assert elapsed < 1.0 + MARGIN
        assert pool.statistics().recycled["validation"] >= 1
        async with pool.acquire() as connection:  # the server is back: so is the pool
            assert 1 == await connection.fetchval("SELECT 1")


async def test_the_pool_recovers_by_itself_after_a_restart(
    private_postgres: PostgresServer, app_name: str
) -> None:
    """Acquires fail fast while the server is down, work once it is back; min_size refills."""
    clock = FakeClock()
    pool = PostgresPool(
        private_postgres.dsn(),
        # Every lend checks the connection: the client may not have seen the sockets close yet.
        options=options(app_name, min_size=2, max_size=3, validate_after_idle=0.0),
        clock=clock,
    )
    async with pool:
        private_postgres.stop()
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="cannot connect"):
            async with pool.acquire():
                pass
        assert time.monotonic() - started < MARGIN  # refused at once: no waiting for a deadline

        private_postgres.start()
        async with pool.acquire() as connection:
            assert 1 == await connection.fetchval("SELECT 1")
        await clock.wait_for_sleepers(1)
        clock.advance(1.0)
        await clock.wait_for_sleepers(1)  # the sweep refilled to min_size, then slept again

        stats = pool.statistics()
        assert (2, 2) == (stats.idle, stats.recycled["broken"] + stats.recycled["validation"])


async def test_a_reset_on_a_frozen_server_gives_up_and_drops_the_connection(
    private_postgres: PostgresServer, app_name: str
) -> None:
    """Returning a connection to a frozen server ends after connect_timeout, without an error."""
    async with PostgresPool(private_postgres.dsn(), options=options(app_name, max_size=1)) as pool:
        started = time.monotonic()
        async with pool.acquire():
            private_postgres.pause()
        elapsed = time.monotonic() - started
        private_postgres.resume()

        assert 0.3 <= elapsed < 0.3 + MARGIN
        assert (1, 0) == (pool.statistics().recycled["reset"], pool.statistics().size)


async def test_open_retries_until_the_server_is_up(
    private_postgres: PostgresServer, app_name: str
) -> None:
    """open() retries an unreachable primary with backoff, and succeeds once it answers."""
    recording = RecordingInstrumentation()
    private_postgres.stop()
    pools = PoolManager(
        postgres=private_postgres.dsn(),
        options=options(app_name),
        startup_timeout=20.0,
        instrumentation=recording,
    )
    loop = asyncio.get_running_loop()

    await asyncio.gather(pools.open(), loop.run_in_executor(None, private_postgres.start))
    async with pools:
        assert 1 == await pools.postgres.fetchval("SELECT 1")
    assert recording.value("scalepy.retry.attempts", {"scalepy.retry.outcome": "retry"}) >= 1


async def test_open_gives_up_when_the_startup_budget_runs_out(
    private_postgres: PostgresServer, app_name: str
) -> None:
    """open() raises BackendTimeout, naming the last error, once startup_timeout has passed."""
    private_postgres.stop()
    pools = PoolManager(
        postgres=private_postgres.dsn(), options=options(app_name), startup_timeout=0.5
    )
    started = time.monotonic()

    with pytest.raises(BackendTimeout, match=r"start-up budget of 0\.5 s") as caught:
        await pools.open()

    assert time.monotonic() - started < 0.5 + MARGIN
    assert isinstance(caught.value.__cause__, BackendUnavailable)
    assert "closed" == pools.postgres.primary.statistics().state


async def test_reads_fall_back_to_the_primary_while_a_replica_is_down(
    private_postgres: PostgresServer, postgres_dsn: str, postgres_database: str, app_name: str
) -> None:
    """A stopped replica is skipped (reads go to the primary) until a probe after the delay."""
    clock = FakeClock()
    pools = with_private_replica(private_postgres, postgres_dsn, app_name, clock)
    async with pools:
        assert "postgres" == await pools.postgres.fetchval(WHERE, read_only=True)
        private_postgres.stop()

        assert postgres_database == await pools.postgres.fetchval(WHERE, read_only=True)
        assert postgres_database == await pools.postgres.fetchval(WHERE, read_only=True)
        stats = pools.postgres.statistics()
        assert ((False,), 2) == (stats.replicas_available, stats.read_fallbacks)

        private_postgres.start()
        assert postgres_database == await pools.postgres.fetchval(
            WHERE, read_only=True
        )  # still skipped
        clock.advance(5.0)
        assert "postgres" == await pools.postgres.fetchval(WHERE, read_only=True)  # the probe
        assert (True,) == pools.postgres.statistics().replicas_available


async def test_a_replica_down_at_startup_does_not_stop_the_service(
    private_postgres: PostgresServer,
    postgres_dsn: str,
    postgres_database: str,
    app_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """open() succeeds without the replica; reads go to the primary and a warning says why."""
    caplog.set_level(logging.WARNING, logger="scalepy.pools")
    private_postgres.stop()
    pools = with_private_replica(private_postgres, postgres_dsn, app_name)
    async with pools:
        assert postgres_database == await pools.postgres.fetchval(WHERE, read_only=True)
        assert (False,) == pools.postgres.statistics().replicas_available
    assert "replica 'replica-1' cannot be reached; reads go to the primary" in caplog.text


async def test_an_acquire_deadline_shorter_than_a_hanging_connect_wins(
    private_postgres: PostgresServer, app_name: str
) -> None:
    """An acquire gives up at its deadline; its connect fails later and frees the slot."""
    pool = PostgresPool(
        private_postgres.dsn(),
        options=options(app_name, max_size=2, connect_timeout=0.5, acquire_timeout=0.1),
    )
    async with (
        pool,
        pool.acquire(),
    ):  # hold the one connection open() made: the next needs a new one
        private_postgres.pause()
        started = time.monotonic()
        with pytest.raises(PoolTimeoutError):
            async with pool.acquire():
                pass
        assert time.monotonic() - started < 0.1 + MARGIN
        await asyncio.wait(pool._openings)  # the connect times out in the background
        private_postgres.resume()

        stats = pool.statistics()
        assert (1, 0, 1) == (stats.size, stats.opening, stats.timeouts)


async def test_closing_while_a_connection_is_being_opened_fails_the_acquire(
    private_postgres: PostgresServer, app_name: str
) -> None:
    """close() stops connects in progress; their acquirers get PoolClosedError at once."""
    pool = PostgresPool(private_postgres.dsn(), options=options(app_name, max_size=2))
    await pool.open()
    async with pool.acquire():
        private_postgres.pause()
        waiting = asyncio.create_task(pool.acquire().__aenter__())
        await asyncio.sleep(0)  # it is waiting for its connection to open
        closing = asyncio.create_task(pool.aclose(0.1))
        with pytest.raises(PoolClosedError):
            await waiting
        private_postgres.resume()
    await closing
    assert "closed" == pool.statistics().state


async def test_the_sweep_keeps_trying_to_refill_while_the_server_is_down(
    private_postgres: PostgresServer, app_name: str
) -> None:
    """Refilling to min_size fails quietly while the server is down and succeeds once it is up."""
    clock = FakeClock()
    pool = PostgresPool(
        private_postgres.dsn(),
        options=options(app_name, min_size=1, validate_after_idle=0.0),
        clock=clock,
    )
    async with pool:
        private_postgres.stop()
        with pytest.raises(BackendUnavailable):  # finds the idle connection dead, cannot open one
            async with pool.acquire():
                pass
        await clock.wait_for_sleepers(1)
        clock.advance(1.0)
        await clock.wait_for_sleepers(1)  # a sweep failed to refill
        assert 0 == pool.statistics().size
        private_postgres.start()
        clock.advance(1.0)
        await clock.wait_for_sleepers(1)  # the next one succeeded

        assert 1 == pool.statistics().idle


async def test_a_probe_that_times_out_counts_as_a_failure(
    private_postgres: PostgresServer, postgres_dsn: str, postgres_database: str, app_name: str
) -> None:
    """A read probing a replica that hangs times out, and the replica stays skipped."""
    clock = FakeClock()
    pools = with_private_replica(
        private_postgres,
        postgres_dsn,
        app_name,
        clock,
        min_size=0,
        acquire_timeout=3.0,
        validate_after_idle=0.0,
    )
    async with pools:
        private_postgres.pause()
        # The check of the idle connection, then a new connect, time out: fail over.
        assert postgres_database == await pools.postgres.fetchval(WHERE, read_only=True)
        clock.advance(5.0)
        with pytest.raises(PoolTimeoutError):  # the probe hangs past the read's own deadline
            async with pools.postgres.acquire(read_only=True, timeout=0.2):
                pass
        private_postgres.resume()

        assert (False,) == pools.postgres.statistics().replicas_available
        assert postgres_database == await pools.postgres.fetchval(
            WHERE, read_only=True
        )  # skipped again


async def test_open_never_outlasts_its_budget_on_a_hanging_server(
    private_postgres: PostgresServer, app_name: str
) -> None:
    """With the server frozen, open() gives up when startup_timeout ends, mid-connect."""
    private_postgres.pause()
    pools = PoolManager(
        postgres=private_postgres.dsn(),
        options=options(app_name, connect_timeout=5.0),
        startup_timeout=0.3,
    )
    started = time.monotonic()

    with pytest.raises(BackendTimeout, match=r"start-up budget of 0\.3 s \(0 failed attempt"):
        await pools.open()

    assert time.monotonic() - started < 0.3 + MARGIN
    private_postgres.resume()
