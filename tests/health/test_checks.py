"""The ready-made checks against the real local Redis, Redis Cluster and PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import asyncpg
import pytest

from scalepy.errors import ConfigurationError
from scalepy.health import (
    Check,
    LoopLagMonitor,
    Observation,
    Status,
    event_loop_check,
    postgres_check,
    redis_check,
)

# The internal runner, to run one check the way Health does.
from scalepy.health._runner import CheckRunner
from scalepy.telemetry import NOOP
from scalepy.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from scalepy.backends.redis import RedisClient
    from scalepy.health import CheckResult


async def run(check: Check) -> CheckResult:
    """Run one check once, as readiness would."""
    runner = CheckRunner((check,), pass_ttl=0, fail_ttl=0, clock=FakeClock(), instrumentation=NOOP)
    return (await runner.report()).checks[0]


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A small asyncpg pool on the test database."""
    async with asyncpg.create_pool(postgres_dsn, min_size=1, max_size=4) as pool:
        yield pool


async def test_redis_check_pings(redis: RedisClient) -> None:
    """A PING round trip in ms under redis:responseTime; the server's URL is never shown."""
    check = redis_check(redis)

    result = await run(check)

    [observation] = result.observations
    assert (Status.PASS, "redis:responseTime") == (result.status, check.key)
    assert ("responseTime", "ms", None) == (
        observation.measurement,
        observation.unit,
        observation.component_id,
    )
    assert isinstance(observation.value, float)
    assert 0 <= observation.value < 1000
    assert ("datastore", True, 1.0) == (check.component_type, check.critical, check.timeout)


async def test_redis_check_warns_when_slow(redis: RedisClient) -> None:
    """A round trip over warn_above warns and says so."""
    result = await run(redis_check(redis, warn_above=1e-9, name="cache", critical=False))

    assert Status.WARN == result.status
    assert "slower than 1e-09 s" == result.observations[0].output


async def test_redis_check_fails_when_the_server_is_gone(redis_server_url: str) -> None:
    """An unreachable server fails the check with the client's error, password masked."""
    from scalepy.backends.redis import RedisClient

    async with RedisClient.from_url(redis_server_url) as client:
        result = await run(redis_check(client))

    assert Status.FAIL == result.status
    assert result.error is not None
    assert "BackendUnavailable" in result.error
    assert "hunter2" not in result.error


@pytest.fixture
def redis_server_url() -> str:
    """A Redis URL with a password where nothing listens."""
    from tests.support.redis_server import free_port

    return f"redis://:hunter2@127.0.0.1:{free_port()}/0?connect_timeout=0.2&timeout=0.2"


async def test_postgres_check_round_trip_and_utilization(pool: asyncpg.Pool) -> None:
    """A query round trip in ms, and the share of connections in use before the check."""
    check = postgres_check(pool, component_id="primary")

    async with pool.acquire():  # one of 4 connections busy elsewhere
        result = await run(check)

    latency, usage = result.observations
    assert (Status.PASS, "postgres:responseTime") == (result.status, check.key)
    assert ("responseTime", "ms", "primary") == (
        latency.measurement,
        latency.unit,
        latency.component_id,
    )
    assert ("utilization", 25.0, "percent") == (usage.measurement, usage.value, usage.unit)


async def test_postgres_check_warns_on_a_busy_pool(pool: asyncpg.Pool) -> None:
    """From utilization_warn_above percent of connections in use, the check warns."""
    check = postgres_check(pool, utilization_warn_above=50)

    async with pool.acquire(), pool.acquire():
        result = await run(check)

    assert Status.WARN == result.status
    assert "2 of 4 connections in use" == result.observations[1].output


async def test_postgres_check_failing_query(pool: asyncpg.Pool) -> None:
    """A query that raises fails the check with the driver error's class name, not its text."""
    result = await run(postgres_check(pool, query="SELECT 1/0"))

    assert Status.FAIL == result.status
    assert "DivisionByZeroError" == result.error


async def test_postgres_check_on_any_pool() -> None:
    """Any pool with acquire() and fetchval() works; without size accessors, no utilization."""
    from contextlib import asynccontextmanager

    class Connection:
        queries: ClassVar[list[str]] = []

        async def fetchval(self, query: str, /) -> object:
            self.queries.append(query)
            return 1

    class Pool:
        @asynccontextmanager
        async def acquire(self) -> AsyncIterator[Connection]:
            yield Connection()

    result = await run(postgres_check(Pool(), query="SELECT now()", warn_above=10.0))

    assert ["responseTime"] == [observation.measurement for observation in result.observations]
    assert ["SELECT now()"] == Connection.queries


@pytest.mark.parametrize(
    ("lag", "status"), [(0.05, Status.PASS), (0.2, Status.WARN), (2.0, Status.FAIL)]
)
async def test_event_loop_check_thresholds(lag: float, status: Status) -> None:
    """Below warn_above passes, from it warns, past fail_above fails; lag in ms."""
    clock = FakeClock()
    async with LoopLagMonitor(interval=1.0, clock=clock) as monitor:
        monitor.start()
        await clock.wait_for_sleepers(1)
        clock.advance(1.0 + lag)
        await clock.wait_for_sleepers(1)

        result = await run(event_loop_check(monitor, warn_above=0.1, fail_above=1.0))

    [observation] = result.observations
    assert (status, "lag", "ms") == (result.status, observation.measurement, observation.unit)
    assert pytest.approx(lag * 1000) == observation.value


async def test_event_loop_check_needs_a_running_monitor() -> None:
    """A monitor nobody started fails the check (a warning: it is not critical)."""
    check = event_loop_check(LoopLagMonitor())

    result = await run(check)

    assert (Status.FAIL, False) == (result.status, check.critical)
    assert "the event-loop lag monitor is not running; start it" == result.observations[0].output


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: event_loop_check(LoopLagMonitor(), warn_above=2, fail_above=1), "must not exceed"),
        (lambda: event_loop_check(LoopLagMonitor(), warn_above=0), "warn_above must be"),
        (lambda: postgres_check(None, query=" "), "query must be a non-empty"),  # type: ignore[arg-type]
        (lambda: postgres_check(None, warn_above=-1), "warn_above must be"),  # type: ignore[arg-type]
    ],
)
def test_bad_thresholds_are_rejected(build: object, message: str) -> None:
    """Thresholds must be finite numbers > 0, warn below fail; queries non-empty."""
    assert callable(build)
    with pytest.raises(ConfigurationError, match=message):
        build()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": ""}, "a check needs a non-empty name"),
        ({"probe": "x"}, "probe must be an async function"),
        ({"timeout": 0}, "timeout must be a finite number > 0"),
        ({"measurement": ""}, "measurement must be non-empty or None"),
    ],
)
def test_check_validates_its_fields(options: dict[str, object], message: str) -> None:
    """A check with an empty name, a non-callable probe or a bad timeout is rejected."""

    async def probe() -> None:
        """Pass."""

    fields: dict[str, object] = {"name": "db", "probe": probe} | options
    with pytest.raises(ConfigurationError, match=message):
        Check(**fields)  # type: ignore[arg-type]


def test_observation_defaults() -> None:
    """An observation passes by default and carries nothing else."""
    assert Observation(measurement="x") == Observation(
        measurement="x", value=None, unit=None, status=Status.PASS, output=None
    )


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (
            lambda: redis_check("redis://app:s3cret@127.0.0.1:6379/0"),  # type: ignore[arg-type]
            "redis_check() takes a RedisClient, not a URL ('redis://app:***@127.0.0.1:6379/0')",
        ),
        (
            lambda: postgres_check("postgresql://app@127.0.0.1/app"),  # type: ignore[arg-type]
            "postgres_check() takes a pool, not a URL",
        ),
        (lambda: redis_check(object()), "redis_check() takes a RedisClient, not a object"),  # type: ignore[arg-type]
    ],
)
def test_a_check_given_a_url_is_refused_when_built(build: Any, expected: str) -> None:
    """A URL (or any object) where a client or pool is expected fails at once, password masked.

    It used to build a check whose every probe failed with AttributeError.
    """
    with pytest.raises(ConfigurationError) as raised:
        build()
    assert str(raised.value).startswith(expected)
    assert "s3cret" not in str(raised.value)
