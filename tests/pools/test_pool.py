"""PostgresPool against the shared PostgreSQL: lending, resetting, deadlines, lifetimes, closing."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from scalepy.errors import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    PoolClosedError,
    PoolNotOpenError,
    PoolTimeoutError,
)
from scalepy.pools import CONNECTION_COUNT, PoolOptions, PostgresPool
from scalepy.testing import FakeClock, RecordingInstrumentation
from tests.pools.helpers import backend_count, wait_for_backends
from tests.support.redis_server import free_port

if TYPE_CHECKING:
    from scalepy.clock import Clock
    from scalepy.telemetry import Instrumentation


def make_pool(
    dsn: str,
    app_name: str,
    *,
    clock: Clock | None = None,
    instrumentation: Instrumentation | None = None,
    **options: Any,
) -> PostgresPool:
    """A pool named `test` whose sessions carry `app_name`."""
    options.setdefault("validate_after_idle", None)
    return PostgresPool(
        dsn,
        name="test",
        options=PoolOptions(application_name=app_name, **options),
        clock=clock,
        instrumentation=instrumentation,
    )


async def borrowed_pid(pool: PostgresPool) -> int:
    """Borrow a connection, waiting in line if need be; return its server process id."""
    async with pool.acquire() as connection:
        return connection.get_server_pid()


async def setting_kept(pool: PostgresPool) -> str:
    """Set `statement_timeout` in one lease; what the next lease of the connection shows."""
    async with pool.acquire() as connection:
        await connection.execute("SET statement_timeout = '1234s'")
    async with pool.acquire() as connection:
        shown: str = await connection.fetchval("SHOW statement_timeout")
        return shown


async def returned_in_a_transaction(pool: PostgresPool) -> int:
    """Lease a connection, set `statement_timeout`, BEGIN, return it; its server pid."""
    async with pool.acquire() as connection:
        await connection.execute("SET statement_timeout = '1234s'")
        await connection.execute("BEGIN")
        return connection.get_server_pid()


async def test_lends_a_connection_and_takes_it_back(postgres_dsn: str, app_name: str) -> None:
    """A lent connection works, counts as used, and is idle again after the block."""
    async with make_pool(postgres_dsn, app_name, min_size=1, max_size=2) as pool:
        async with pool.acquire() as connection:
            assert 1 == await connection.fetchval("SELECT 1")
            during = pool.statistics()
        after = pool.statistics()

        assert (1, 0, 1) == (during.used, during.idle, during.size)
        assert (0, 1, 1, 1) == (after.used, after.idle, after.acquired, after.created)
        assert 1 == await backend_count(postgres_dsn, app_name)
    assert "closed" == pool.statistics().state
    assert 0 == await wait_for_backends(postgres_dsn, app_name, 0)


async def test_most_recently_returned_connection_is_lent_first(
    postgres_dsn: str, app_name: str
) -> None:
    """Idle connections are a stack: the last one returned is the next one lent."""
    async with make_pool(postgres_dsn, app_name, min_size=0, max_size=2) as pool:
        async with pool.acquire() as first, pool.acquire() as second:
            pids = (first.get_server_pid(), second.get_server_pid())
        async with pool.acquire() as again:
            assert pids[0] == again.get_server_pid()  # `first` was returned last


async def test_session_state_is_reset_when_returned(postgres_dsn: str, app_name: str) -> None:
    """Settings, advisory locks and an open transaction do not leak to the next lease."""
    async with make_pool(postgres_dsn, app_name, min_size=1, max_size=1) as pool:
        async with pool.acquire() as connection:
            pid = connection.get_server_pid()
            await connection.execute("SET statement_timeout = '1234s'")
            await connection.execute("SELECT pg_advisory_lock(4242)")
            await connection.execute("BEGIN")
        async with pool.acquire() as connection:
            assert pid == connection.get_server_pid()
            assert "0" == await connection.fetchval("SHOW statement_timeout")
            assert not connection.is_in_transaction()
            locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1"
            assert 0 == await connection.fetchval(locks, pid)


async def _set_then_fail(pool: PostgresPool) -> None:
    async with pool.acquire() as connection:
        await connection.execute("SET statement_timeout = '1234s'")
        raise LookupError


async def test_without_session_reset_a_clean_block_returns_without_a_round_trip(
    postgres_dsn: str, app_name: str
) -> None:
    """With session_reset=False a block that ended cleanly outside a transaction is not reset."""
    async with make_pool(postgres_dsn, app_name, max_size=1, session_reset=False) as pool:
        # No reset query ran: the setting the block left is still there.
        assert "1234s" == await setting_kept(pool)


async def test_without_session_reset_an_open_transaction_or_an_error_still_resets(
    postgres_dsn: str, app_name: str
) -> None:
    """With session_reset=False a block left in a transaction, or that raised, is reset."""
    async with make_pool(postgres_dsn, app_name, max_size=1, session_reset=False) as pool:
        pid = await returned_in_a_transaction(pool)
        async with pool.acquire() as connection:
            assert pid == connection.get_server_pid()
            assert not connection.is_in_transaction()
            assert "0" == await connection.fetchval("SHOW statement_timeout")
        with pytest.raises(LookupError):
            await _set_then_fail(pool)
        async with pool.acquire() as connection:
            assert pid == connection.get_server_pid()
            assert "0" == await connection.fetchval("SHOW statement_timeout")


async def test_acquire_gives_up_at_its_deadline(postgres_dsn: str, app_name: str) -> None:
    """With every connection lent, an acquire raises PoolTimeoutError when its deadline passes."""
    async with make_pool(postgres_dsn, app_name, min_size=1, max_size=1) as pool:
        async with pool.acquire():
            started = time.monotonic()
            with pytest.raises(PoolTimeoutError) as caught:
                async with pool.acquire(timeout=0.1):
                    pass
            waited = time.monotonic() - started
        stats = pool.statistics()

    assert ("test", 0.1) == (caught.value.pool, caught.value.timeout)
    assert 0.1 <= waited < 1.0
    assert (1, 0) == (stats.timeouts, stats.pending)


@pytest.mark.parametrize("wait", [0, -1.0, float("nan")])
def test_acquire_rejects_a_timeout_that_is_not_positive(wait: float) -> None:
    """An acquire timeout must be a finite number > 0."""
    pool = PostgresPool("postgresql://db/app")
    with pytest.raises(ConfigurationError, match="timeout must be a finite number > 0"):
        pool.acquire(timeout=wait)


async def test_waiters_are_served_first_come_first_served(postgres_dsn: str, app_name: str) -> None:
    """A returned connection goes to the longest waiter; newcomers queue behind."""
    served: list[int] = []

    async def wait_in_line(number: int) -> None:
        async with pool.acquire():
            served.append(number)

    async with make_pool(postgres_dsn, app_name, min_size=1, max_size=1) as pool:
        async with pool.acquire():
            waiters = []
            for number in range(3):
                waiters.append(asyncio.create_task(wait_in_line(number)))
                await asyncio.sleep(0)  # let it run until it waits in line
            assert 3 == pool.statistics().pending
        await asyncio.gather(*waiters)

    assert [0, 1, 2] == served


async def test_a_connection_handed_to_a_cancelled_waiter_is_passed_on(
    postgres_dsn: str, app_name: str
) -> None:
    """A waiter cancelled just as it was handed a connection passes it to the next waiter."""
    # pgbouncer mode returns a connection without a reset round trip, so the hand-off
    # happens synchronously when the block ends and the cancel lands right after it.
    async with make_pool(postgres_dsn, app_name, min_size=1, max_size=1, pgbouncer=True) as pool:
        async with pool.acquire() as connection:
            pid = connection.get_server_pid()
            first = asyncio.create_task(borrowed_pid(pool))
            second = asyncio.create_task(borrowed_pid(pool))
            await asyncio.sleep(0)  # both wait in line now
        first.cancel()  # it was handed the connection a moment ago

        with pytest.raises(asyncio.CancelledError):
            await first
        assert pid == await second
        assert (0, 1, 1) == (pool.statistics().used, pool.statistics().idle, pool.statistics().size)


async def test_a_pool_that_is_not_open_or_closed_refuses(postgres_dsn: str, app_name: str) -> None:
    """Acquiring before open() says to open it; after close() it says closed; close is idempotent.

    Before open() the error is PoolNotOpenError (it used to say "is closed").
    """
    pool = make_pool(postgres_dsn, app_name)
    with pytest.raises(
        PoolNotOpenError, match=r"pool 'test' is not open yet: call `await pools.open"
    ):
        async with pool.acquire():
            pass
    await pool.open()
    await pool.aclose()
    await pool.aclose()

    with pytest.raises(PoolClosedError):
        async with pool.acquire():
            pass
    with pytest.raises(PoolClosedError):
        await pool.open()


async def test_close_waits_for_lent_connections_and_refuses_newcomers(
    postgres_dsn: str, app_name: str
) -> None:
    """close() fails waiters at once, waits for lent connections, then closes them."""
    async with make_pool(postgres_dsn, app_name, min_size=1, max_size=1) as pool:
        done = asyncio.Event()

        async def hold() -> None:
            async with pool.acquire() as connection:
                await done.wait()
                await connection.fetchval("SELECT 1")  # still usable while the pool drains

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        waiter = asyncio.create_task(pool.acquire().__aenter__())
        await asyncio.sleep(0)
        closing = asyncio.create_task(pool.aclose())
        await asyncio.sleep(0)

        with pytest.raises(PoolClosedError):
            await waiter
        with pytest.raises(PoolClosedError):
            async with pool.acquire():
                pass
        assert ("closing", False) == (pool.statistics().state, closing.done())
        done.set()
        await holder
        await closing
    assert 0 == await wait_for_backends(postgres_dsn, app_name, 0)


async def test_close_terminates_connections_still_lent_after_the_grace_period(
    postgres_dsn: str, app_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the grace period, close() terminates lent connections and says so."""
    pool = make_pool(postgres_dsn, app_name, min_size=1, max_size=1)
    await pool.open()
    async with pool.acquire() as connection:
        await pool.aclose(0.05)
        assert connection.is_closed()

    assert "terminating 1 connection(s) still lent: the 0.05 s grace period is over" in caplog.text
    assert 0 == await wait_for_backends(postgres_dsn, app_name, 0)


async def test_connections_are_replaced_after_their_lifetime(
    postgres_dsn: str, app_name: str
) -> None:
    """A connection past max_lifetime is closed when returned or found idle, never lent."""
    clock = FakeClock()
    pool = make_pool(postgres_dsn, app_name, clock=clock, max_size=1, max_lifetime=60.0)
    pool._rng = lambda: 0.5  # jitter 0.1 takes 5 % off: a lifetime of 57 s
    async with pool:
        async with pool.acquire() as connection:
            first = connection.get_server_pid()
        clock.advance(56.9)
        async with pool.acquire() as connection:
            assert first == connection.get_server_pid()
            clock.advance(0.2)  # expires while lent: closed on return
        async with pool.acquire() as connection:
            second = connection.get_server_pid()
        clock.advance(57.1)  # expires while idle: closed instead of lent
        async with pool.acquire() as connection:
            third = connection.get_server_pid()

        assert len({first, second, third}) == 3
        assert 2 == pool.statistics().recycled["lifetime"]
        assert 1 == await backend_count(postgres_dsn, app_name)


async def test_idle_connections_beyond_min_size_are_closed(
    postgres_dsn: str, app_name: str
) -> None:
    """The sweep closes connections idle longer than max_idle, down to min_size."""
    clock = FakeClock()
    pool = make_pool(postgres_dsn, app_name, clock=clock, min_size=1, max_size=3, max_idle=10.0)
    async with pool:
        async with pool.acquire(), pool.acquire(), pool.acquire():
            pass
        assert 3 == pool.statistics().idle
        await clock.wait_for_sleepers(1)
        clock.advance(10.5)
        await clock.wait_for_sleepers(1)  # the sweep ran and sleeps again

        stats = pool.statistics()
        assert (1, 2) == (stats.idle, stats.recycled["idle"])
        assert 1 == await wait_for_backends(postgres_dsn, app_name, 1)


async def test_the_sweep_replaces_broken_connections_up_to_min_size(
    postgres_dsn: str, app_name: str
) -> None:
    """An idle connection the server ended is closed and replaced by the next sweep."""
    clock = FakeClock()
    async with make_pool(postgres_dsn, app_name, clock=clock, min_size=2, max_size=2) as pool:
        admin = await asyncpg.connect(postgres_dsn)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = $1",
                app_name,
            )
        finally:
            await admin.close()
        for _ in range(100):  # the client notices the closed sockets as the loop turns
            if all(p.connection.is_closed() for p in pool._idle):
                break
            await asyncio.sleep(0.01)
        await clock.wait_for_sleepers(1)
        clock.advance(1.0)
        await clock.wait_for_sleepers(1)

        stats = pool.statistics()
        assert (2, 2, 4) == (stats.idle, stats.recycled["broken"], stats.created)
        async with pool.acquire() as connection:
            assert 1 == await connection.fetchval("SELECT 1")


async def test_a_connection_that_idled_is_checked_before_it_is_lent(
    postgres_dsn: str, app_name: str
) -> None:
    """After validate_after_idle seconds idle, SELECT 1 runs before the connection is lent."""
    clock = FakeClock()
    pool = make_pool(postgres_dsn, app_name, clock=clock, max_size=1, validate_after_idle=5.0)
    last_query = "SELECT query FROM pg_stat_activity WHERE pid = $1"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        async with pool:
            async with pool.acquire() as connection:
                pid = connection.get_server_pid()
            async with pool.acquire():  # idle for no time: lent as is
                assert "SELECT 1" != await admin.fetchval(last_query, pid)
            clock.advance(5.0)
            async with pool.acquire():
                assert "SELECT 1" == await admin.fetchval(last_query, pid)
    finally:
        await admin.close()


async def test_a_connection_held_too_long_is_reported_once_with_its_holder(
    postgres_dsn: str, app_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A lease past leak_threshold logs one warning naming the task and the acquire site."""
    clock = FakeClock()
    pool = make_pool(
        postgres_dsn, app_name, clock=clock, max_size=1, leak_threshold=30.0, leak_trace=True
    )
    caplog.set_level(logging.WARNING, logger="scalepy.pools")
    held = asyncio.Event()
    release = asyncio.Event()

    async def forgetful() -> None:
        async with pool.acquire():  # the acquire site the warning must show
            held.set()
            await release.wait()

    async with pool:
        task = asyncio.create_task(forgetful(), name="forgetful-handler")
        await held.wait()
        for _ in range(3):  # three sweeps past the threshold: one warning
            await clock.wait_for_sleepers(1)
            clock.advance(31.0)
            await clock.wait_for_sleepers(1)
        release.set()
        await task

        assert 1 == pool.statistics().leaks
    warnings = [r.getMessage() for r in caplog.records if "leak threshold" in r.getMessage()]
    assert 1 == len(warnings)
    assert "held for 31.0 s (leak threshold 30.0 s) by task 'forgetful-handler'" in warnings[0]
    assert "test_pool.py" in warnings[0]
    assert "async with pool.acquire():  # the acquire site the warning must show" in warnings[0]


async def test_a_leak_warning_without_trace_says_how_to_get_one(
    postgres_dsn: str, app_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Without leak_trace the warning names the task and points to the option."""
    clock = FakeClock()
    pool = make_pool(postgres_dsn, app_name, clock=clock, max_size=1, leak_threshold=5.0)
    caplog.set_level(logging.WARNING, logger="scalepy.pools")
    async with pool, pool.acquire():
        await clock.wait_for_sleepers(1)
        clock.advance(6.0)
        await clock.wait_for_sleepers(1)

    assert "set PoolOptions(leak_trace=True) to see where it was acquired" in caplog.text


async def test_pgbouncer_mode_caches_no_statement_and_skips_the_reset(
    postgres_dsn: str, app_name: str
) -> None:
    """With pgbouncer=True no prepared statement is kept and no reset query is sent."""
    prepared = "SELECT count(*) FROM pg_prepared_statements"
    pool = make_pool(postgres_dsn, app_name, max_size=1)
    async with pool, pool.acquire() as connection:
        await connection.fetchval("SELECT $1::int", 1)
        assert 0 < await connection.fetchval(prepared)
    async with make_pool(postgres_dsn, app_name, max_size=1, pgbouncer=True) as pool:
        async with pool.acquire() as connection:
            await connection.fetchval("SELECT $1::int", 1)
            assert 0 == await connection.fetchval(prepared)
        # No RESET ALL: behind PgBouncer it would reach whichever server it picks.
        assert "1234s" == await setting_kept(pool)


async def test_pgbouncer_mode_closes_a_connection_returned_in_a_transaction(
    postgres_dsn: str, app_name: str
) -> None:
    """A connection returned inside a transaction is closed, not handed on."""
    async with make_pool(postgres_dsn, app_name, max_size=1, pgbouncer=True) as pool:
        pid = await returned_in_a_transaction(pool)
        async with pool.acquire() as connection:
            assert pid != connection.get_server_pid()
        assert 1 == pool.statistics().recycled["reset"]


async def test_a_connection_broken_while_lent_is_replaced(postgres_dsn: str, app_name: str) -> None:
    """A lent connection the server ends is closed on return; the next lease gets a new one."""
    async with make_pool(postgres_dsn, app_name, max_size=1) as pool:
        async with pool.acquire() as connection:
            pid = connection.get_server_pid()
            with pytest.raises(asyncpg.ConnectionDoesNotExistError):
                await connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        async with pool.acquire() as connection:
            assert pid != connection.get_server_pid()
        assert 1 == pool.statistics().recycled["broken"]


async def test_open_fails_and_closes_when_the_server_is_unreachable(app_name: str) -> None:
    """open() raises BackendUnavailable for a closed port, with the password masked, and closes."""
    pool = make_pool(f"postgresql://app:s3cret@127.0.0.1:{free_port()}/app", app_name)

    with pytest.raises(BackendUnavailable) as caught:
        await pool.open()

    assert "s3cret" not in str(caught.value)
    assert "postgresql://app:***@127.0.0.1" in str(caught.value)
    assert "closed" == pool.statistics().state


async def test_open_reports_a_refusal_that_retrying_cannot_fix(
    postgres_dsn: str, app_name: str
) -> None:
    """An unknown database is a BackendError, not BackendUnavailable: start-up will not retry it."""
    pool = make_pool(postgres_dsn.rsplit("/", 1)[0] + "/scalepy_no_such_db", app_name)

    with pytest.raises(BackendError, match="the server refused the connection") as caught:
        await pool.open()

    assert not isinstance(caught.value, BackendUnavailable)


async def test_metrics_follow_the_pool(postgres_dsn: str, app_name: str) -> None:
    """scalepy.pool.connection.* track sizes, waits, uses, timeouts and creations, by pool name."""
    recording = RecordingInstrumentation()
    pool = make_pool(postgres_dsn, app_name, instrumentation=recording, min_size=1, max_size=1)
    pool_label = {"scalepy.pool.name": "test"}

    def count(state: str) -> float:
        return recording.value(
            CONNECTION_COUNT.name, {**pool_label, "scalepy.pool.connection.state": state}
        )

    def observations(name: str) -> int:
        return len([r for r in recording.records if r[0] == name])

    async with pool:
        assert (1.0, 0.0) == (count("idle"), count("used"))
        assert 1.0 == recording.value("scalepy.pool.connection.max", pool_label)
        assert 1.0 == recording.value("scalepy.pool.connection.idle.min", pool_label)
        async with pool.acquire():
            assert (0.0, 1.0) == (count("idle"), count("used"))
            with pytest.raises(PoolTimeoutError):
                async with pool.acquire(timeout=0.01):
                    pass
        assert (1.0, 0.0) == (count("idle"), count("used"))
    assert (0.0, 0.0) == (count("idle"), count("used"))
    assert 0.0 == recording.value("scalepy.pool.connection.max", pool_label)
    assert 0.0 == recording.value("scalepy.pool.connection.pending_requests", pool_label)
    assert 1.0 == recording.value("scalepy.pool.connection.timeouts", pool_label)
    assert (1, 1, 1) == (
        observations("scalepy.pool.connection.create_time"),
        observations("scalepy.pool.connection.wait_time"),
        observations("scalepy.pool.connection.use_time"),
    )


async def test_repr_shows_live_state_and_no_password(app_name: str) -> None:
    """repr() names the pool, its masked DSN, its state and its sizes."""
    pool = make_pool("postgresql://app:s3cret@127.0.0.1:1/app", app_name, max_size=4)

    assert (
        "<PostgresPool 'test' postgresql://app:***@127.0.0.1:1/app new size=0/4 idle=0 used=0 "
        "pending=0>"
    ) == repr(pool)
    assert (0, 0, 4) == (pool.get_size(), pool.get_idle_size(), pool.get_max_size())


def test_a_pool_needs_a_name() -> None:
    """An empty pool name is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="name must be a non-empty string"):
        PostgresPool("postgresql://db/app", name="")


async def test_a_cancelled_waiter_does_not_hold_up_the_line(
    postgres_dsn: str, app_name: str
) -> None:
    """A newcomer arriving before a cancelled waiter has left the line is served next."""
    async with make_pool(postgres_dsn, app_name, max_size=1) as pool:
        async with pool.acquire() as connection:
            pid = connection.get_server_pid()
            cancelled = asyncio.create_task(borrowed_pid(pool))
            await asyncio.sleep(0)  # it waits in line
            newcomer = asyncio.create_task(borrowed_pid(pool))  # runs before `cancelled` resumes
            cancelled.cancel()
            await asyncio.sleep(0)
            assert 1 == pool.statistics().pending
        assert pid == await newcomer
        assert cancelled.cancelled()


async def test_a_connection_handed_over_as_the_pool_closes_is_closed(
    postgres_dsn: str, app_name: str
) -> None:
    """A waiter handed a connection just before close() gets PoolClosedError, not the connection."""
    pool = make_pool(postgres_dsn, app_name, max_size=1, pgbouncer=True)  # returns synchronously
    await pool.open()
    async with pool.acquire():
        waiter = asyncio.create_task(pool.acquire().__aenter__())
        await asyncio.sleep(0)
    await pool.aclose()  # the waiter was handed the connection but has not resumed yet

    with pytest.raises(PoolClosedError):
        await waiter
    assert 0 == await wait_for_backends(postgres_dsn, app_name, 0)


async def test_the_sweep_replaces_idle_connections_past_their_lifetime(
    postgres_dsn: str, app_name: str
) -> None:
    """An idle connection reaching max_lifetime is closed by the sweep and min_size restored."""
    clock = FakeClock()
    pool = make_pool(
        postgres_dsn, app_name, clock=clock, min_size=1, max_lifetime=10.0, lifetime_jitter=0.0
    )
    async with pool:
        await clock.wait_for_sleepers(1)
        clock.advance(10.0)
        await clock.wait_for_sleepers(1)

        stats = pool.statistics()
        assert (1, 1, 2) == (stats.idle, stats.recycled["lifetime"], stats.created)


async def test_without_a_lifetime_connections_are_kept(postgres_dsn: str, app_name: str) -> None:
    """With max_lifetime=None a connection is never replaced for its age."""
    clock = FakeClock()
    async with make_pool(postgres_dsn, app_name, clock=clock, max_lifetime=None) as pool:
        async with pool.acquire() as connection:
            pid = connection.get_server_pid()
        clock.advance(1e9)
        async with pool.acquire() as connection:
            assert pid == connection.get_server_pid()


async def test_opening_and_closing_twice_is_harmless(postgres_dsn: str, app_name: str) -> None:
    """open() on an open pool adds nothing; concurrent close() calls both wait for the end."""
    pool = make_pool(postgres_dsn, app_name, min_size=2, max_size=2)
    await pool.open()
    await pool.open()
    assert 2 == pool.statistics().size

    await asyncio.gather(pool.aclose(), pool.aclose())

    assert "closed" == pool.statistics().state


async def test_a_cancelled_close_terminates_what_is_still_lent(
    postgres_dsn: str, app_name: str
) -> None:
    """Cancelling close() while it drains terminates lent connections at once."""
    pool = make_pool(postgres_dsn, app_name, max_size=1)
    await pool.open()
    async with pool.acquire() as connection:
        closing = asyncio.create_task(pool.aclose(10.0))
        await asyncio.sleep(0)
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
        assert connection.is_closed()
    assert "closed" == pool.statistics().state


async def test_a_task_that_ended_holding_a_connection_is_reported(
    postgres_dsn: str, app_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A lease whose task finished without returning it is reported as such."""
    clock = FakeClock()
    pool = make_pool(postgres_dsn, app_name, clock=clock, max_size=1, leak_threshold=5.0)
    async with pool:
        lease = pool.acquire()
        await asyncio.create_task(lease.__aenter__(), name="careless")  # never exited
        await clock.wait_for_sleepers(1)
        clock.advance(6.0)
        await clock.wait_for_sleepers(1)
        await lease.__aexit__(None, None, None)

    assert "task 'careless' (finished without returning it)" in caplog.text
