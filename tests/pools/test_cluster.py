"""PostgresCluster: read routing to replicas, fallback to the primary, queries, health checks.

Two databases on the shared server stand in as replicas; `current_database()`
tells which pool served a query.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import asyncpg
import pytest

from scalepy.errors import BackendUnavailable, ConfigurationError, PoolTimeoutError
from scalepy.health import Status
from scalepy.pools import PoolOptions, PostgresCluster, PostgresPool
from scalepy.testing import FakeClock
from tests.support.redis_server import free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from scalepy.clock import Clock

WHERE = "SELECT current_database()"
REPLICA_A, REPLICA_B = "scalepy_pools_replica_a", "scalepy_pools_replica_b"


def pool(dsn: str, name: str, app_name: str, *, max_size: int = 2) -> PostgresPool:
    """A small pool whose sessions carry `app_name`."""
    return PostgresPool(
        dsn,
        name=name,
        options=PoolOptions(application_name=app_name, max_size=max_size, connect_timeout=0.5),
    )


@pytest.fixture
async def cluster(
    postgres_dsn: str, replica_dsns: tuple[str, str], app_name: str
) -> AsyncIterator[PostgresCluster]:
    """A primary and two replicas, opened."""
    async with PostgresCluster(
        pool(postgres_dsn, "primary", app_name),
        [
            pool(replica_dsns[0], "replica-a", app_name),
            pool(replica_dsns[1], "replica-b", app_name),
        ],
    ) as opened:
        yield opened


def unreachable(clock: Clock, postgres_dsn: str, app_name: str) -> PostgresCluster:
    """A cluster whose only replica listens nowhere."""
    return PostgresCluster(
        pool(postgres_dsn, "primary", app_name),
        [pool(f"postgresql://postgres@127.0.0.1:{free_port()}/x", "replica-x", app_name)],
        replica_retry_delay=5.0,
        clock=clock,
    )


async def test_writes_go_to_the_primary_and_reads_to_replicas(
    cluster: PostgresCluster, postgres_database: str
) -> None:
    """acquire() lends from the primary; acquire(read_only=True) from a replica."""
    async with cluster.acquire() as connection:
        assert postgres_database == await connection.fetchval(WHERE)
    async with cluster.acquire(read_only=True) as connection:
        assert await connection.fetchval(WHERE) in (REPLICA_A, REPLICA_B)


async def test_equally_busy_replicas_take_turns(cluster: PostgresCluster) -> None:
    """Idle replicas serve reads in turn (round robin among the least busy)."""
    served = [await cluster.fetchval(WHERE, read_only=True) for _ in range(4)]

    assert served in ([REPLICA_A, REPLICA_B] * 2, [REPLICA_B, REPLICA_A] * 2)


async def test_the_least_busy_replica_serves_the_read(cluster: PostgresCluster) -> None:
    """While one replica has a connection lent, reads go to the other."""
    async with cluster.acquire(read_only=True) as busy:
        taken = await busy.fetchval(WHERE)
        others = {await cluster.fetchval(WHERE, read_only=True) for _ in range(3)}

    assert {REPLICA_A, REPLICA_B} - {taken} == others


async def test_without_replicas_reads_go_to_the_primary(
    postgres_dsn: str, postgres_database: str, app_name: str
) -> None:
    """A cluster of one pool serves everything from the primary."""
    async with PostgresCluster(pool(postgres_dsn, "primary", app_name)) as alone:
        assert postgres_database == await alone.fetchval(WHERE, read_only=True)
        async with alone.acquire(read_only=True) as connection:
            assert postgres_database == await connection.fetchval(WHERE)
        assert 0 == alone.statistics().read_fallbacks


async def test_queries_run_on_lent_connections(
    cluster: PostgresCluster, postgres_database: str
) -> None:
    """fetch, fetchrow, fetchval and execute borrow a connection for one statement."""
    table = f"scalepy_pools_{time.monotonic_ns()}"
    await cluster.execute(f"CREATE TEMP TABLE {table} (n int)")  # lives on a primary session
    assert "SELECT 1" == await cluster.execute("SELECT 1")
    rows = await cluster.fetch("SELECT n FROM generate_series(1, $1) AS n", 3, read_only=True)
    row = await cluster.fetchrow("SELECT $1::int AS n, current_database() AS db", 7)

    assert [1, 2, 3] == [r["n"] for r in rows]
    assert row is not None
    assert (7, postgres_database) == (row["n"], row["db"])
    assert None is await cluster.fetchrow("SELECT 1 WHERE false", read_only=True)
    assert 2 == await cluster.fetchval("SELECT 1, 2", column=1, read_only=True)


async def test_an_unreachable_replica_is_skipped_then_probed_again(
    postgres_dsn: str, postgres_database: str, app_name: str
) -> None:
    """A replica that cannot be connected to is skipped; after the delay one read probes it."""
    clock = FakeClock()
    async with unreachable(clock, postgres_dsn, app_name) as cluster:
        assert (False,) == cluster.statistics().replicas_available  # it failed at open
        assert postgres_database == await cluster.fetchval(WHERE, read_only=True)
        clock.advance(5.0)
        assert postgres_database == await cluster.fetchval(WHERE, read_only=True)  # the probe fails

        stats = cluster.statistics()
        assert ((False,), 2) == (stats.replicas_available, stats.read_fallbacks)


async def test_a_read_whose_replica_drops_the_connection_runs_again_on_the_primary(
    cluster: PostgresCluster, postgres_dsn: str, postgres_database: str, app_name: str
) -> None:
    """A query whose replica session dies is retried on the primary, and the replica skipped."""
    sleepy = (  # sleeps on a replica only, so that the retry on the primary returns at once
        "SELECT current_database() "
        "FROM pg_sleep(CASE current_database() WHEN $1 THEN 0 ELSE 30 END)"
    )
    query = asyncio.create_task(cluster.fetchval(sleepy, postgres_database, read_only=True))
    admin = await asyncpg.connect(postgres_dsn)
    try:
        deadline = time.monotonic() + 10
        killed = 0
        while not killed and time.monotonic() < deadline:  # the server is external: poll it
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1 AND query LIKE '%pg_sleep(CASE%'",
                app_name,
            )
    finally:
        await admin.close()

    assert postgres_database == await query
    assert 1 == cluster.statistics().read_fallbacks
    assert 1 == cluster.statistics().replicas_available.count(False)


async def test_a_read_waits_for_its_replica_within_the_deadline(
    postgres_dsn: str, replica_dsns: tuple[str, str], app_name: str
) -> None:
    """A read on a saturated replica waits like any acquire and times out at its deadline."""
    replica = pool(replica_dsns[0], "replica-a", app_name, max_size=1)
    cluster = PostgresCluster(pool(postgres_dsn, "primary", app_name), [replica])
    async with cluster, cluster.acquire(read_only=True):
        with pytest.raises(PoolTimeoutError) as caught:
            async with cluster.acquire(read_only=True, timeout=0.05):
                pass

    assert ("replica-a", 0.05) == (caught.value.pool, caught.value.timeout)


async def test_health_checks_mark_the_primary_critical_and_steer_replicas(
    postgres_dsn: str, app_name: str
) -> None:
    """The primary's check is critical; a replica's is not, and its outcome steers the routing."""
    clock = FakeClock()
    async with unreachable(clock, postgres_dsn, app_name) as cluster:
        primary, replica = cluster.health_checks(timeout=2.0)
        observations = await primary.probe()

        assert ("postgres", True, 2.0) == (primary.name, primary.critical, primary.timeout)
        assert ("postgres-replica-x", False) == (replica.name, replica.critical)
        assert isinstance(observations, list)
        assert [("responseTime", "ms"), ("utilization", "percent")] == [
            (o.measurement, o.unit) for o in observations
        ]
        assert all(o.status is Status.PASS for o in observations)
        with pytest.raises(Exception, match="cannot connect"):
            await replica.probe()
        assert (False,) == cluster.statistics().replicas_available


async def test_a_passing_replica_check_brings_the_replica_back(
    cluster: PostgresCluster,
) -> None:
    """A replica taken out of rotation returns as soon as its health check passes."""
    cluster._guards[0].record_failure()
    assert (False, True) == cluster.statistics().replicas_available

    await cluster.health_checks()[1].probe()

    assert (True, True) == cluster.statistics().replicas_available


async def test_pool_names_must_be_unique(postgres_dsn: str, app_name: str) -> None:
    """Two pools with one name would mix their metrics: ConfigurationError."""
    with pytest.raises(ConfigurationError, match="pool names must be unique"):
        PostgresCluster(pool(postgres_dsn, "db", app_name), [pool(postgres_dsn, "db", app_name)])


async def test_repr_shows_skipped_replicas(postgres_dsn: str, app_name: str) -> None:
    """repr() names the primary and the replicas, marking skipped ones."""
    async with unreachable(FakeClock(), postgres_dsn, app_name) as cluster:
        assert "<PostgresCluster primary='primary' replicas=[replica-x (skipped)]>" == repr(cluster)


async def test_a_failing_read_query_is_not_retried(cluster: PostgresCluster) -> None:
    """A query error on a replica is the caller's: it is raised, not retried on the primary."""
    with pytest.raises(asyncpg.PostgresSyntaxError):
        await cluster.fetchval("SELEC 1", read_only=True)

    assert (0, (True, True)) == (
        cluster.statistics().read_fallbacks,
        cluster.statistics().replicas_available,
    )


async def test_a_cluster_whose_primary_is_unreachable_does_not_open(app_name: str) -> None:
    """open() raises for an unreachable primary and leaves every pool closed."""
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    cluster = PostgresCluster(pool(dead, "primary", app_name), [pool(dead, "replica", app_name)])

    with pytest.raises(BackendUnavailable):
        await cluster.open()

    assert ["closed", "closed"] == [
        cluster.primary.statistics().state,
        cluster.replicas[0].statistics().state,
    ]
