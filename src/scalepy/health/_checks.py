"""Ready-made checks: Redis, PostgreSQL (any pool with `acquire()`), event-loop lag."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from scalepy._validation import check_finite, check_object
from scalepy.clock import MonotonicClock
from scalepy.errors import ConfigurationError
from scalepy.health._check import Check, Observation, Status

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractAsyncContextManager

    from scalepy.backends.redis import RedisClient
    from scalepy.clock import Clock
    from scalepy.health._check import ProbeResult
    from scalepy.health._monitor import LoopLagMonitor

__all__ = (
    "AcquiringPool",
    "QueryConnection",
    "event_loop_check",
    "postgres_check",
    "redis_check",
)


class QueryConnection(Protocol):
    """A connection that can run a query and return one value (asyncpg's has `fetchval`)."""

    async def fetchval(self, query: str, /) -> object:
        """Run `query` and return the first column of its first row."""
        ...


class AcquiringPool(Protocol):
    """A pool lending connections through `async with pool.acquire() as connection`.

    An `asyncpg.Pool` is one; pools that also have asyncpg's `get_size()`,
    `get_idle_size()` and `get_max_size()` get a utilisation observation.
    """

    def acquire(self) -> AbstractAsyncContextManager[QueryConnection]:
        """Lend a connection for the duration of the block."""
        ...


@runtime_checkable
class _SizedPool(Protocol):
    """asyncpg's pool size accessors."""

    def get_size(self) -> int: ...
    def get_idle_size(self) -> int: ...
    def get_max_size(self) -> int: ...


def _utilization(pool: object, warn_above: float, component_id: str | None) -> Observation | None:
    """Connections in use, in percent of the maximum; `None` if the pool cannot say."""
    if not isinstance(pool, _SizedPool):
        return None
    size, idle, most = pool.get_size(), pool.get_idle_size(), pool.get_max_size()
    percent = round(100.0 * (size - idle) / most, 1) if most else 0.0
    busy = percent >= warn_above
    return Observation(
        measurement="utilization",
        value=percent,
        unit="percent",
        status=Status.WARN if busy else Status.PASS,
        output=f"{size - idle} of {most} connections in use" if busy else None,
        component_id=component_id,
    )


_REDIS_HINT = (
    "pass the client the primitives share, e.g. redis_check(RedisClient.from_url(url)), "
    "or pools.health_checks()"
)
_POSTGRES_HINT = (
    "pass an opened pool, e.g. postgres_check(pools.postgres.primary), or pools.health_checks()"
)


def _threshold(name: str, value: float | None) -> None:
    if value is not None:
        check_finite(name, value)


def _timed(
    measurement: str, seconds: float, warn_above: float | None, component_id: str | None
) -> Observation:
    """A round-trip observation in ms, warning when slower than `warn_above` seconds."""
    slow = warn_above is not None and seconds > warn_above
    return Observation(
        measurement=measurement,
        value=round(seconds * 1000, 3),
        unit="ms",
        status=Status.WARN if slow else Status.PASS,
        output=f"slower than {warn_above:g} s" if slow else None,
        component_id=component_id,
    )


def _round_trip_check(
    name: str, probe: Callable[[], Awaitable[ProbeResult]], *, critical: bool, timeout: float
) -> Check:
    """A datastore check; a probe that fails is reported as `"{name}:responseTime"`."""
    return Check(
        name=name,
        probe=probe,
        component_type="datastore",
        critical=critical,
        timeout=timeout,
        measurement="responseTime",
    )


def redis_check(
    client: RedisClient,
    *,
    name: str = "redis",
    critical: bool = True,
    timeout: float = 1.0,
    warn_above: float | None = None,
    component_id: str | None = None,
    clock: Clock | None = None,
) -> Check:
    """Check a Redis server (or cluster) with a PING; observe the round trip.

    Reported as `"{name}:responseTime"` in ms. The server's address is not shown
    (an internal URL tells an outsider where to aim); pass `component_id` to name
    the instance. The client's own command timeout bounds the PING too.

    Args:
        client: The scalepy client to ping.
        name: The component's name in the report and the metrics.
        critical: Whether Redis being down fails readiness (else it warns).
        timeout: Seconds the check may take.
        warn_above: Seconds of round trip above which the check warns; never if `None`.
        component_id: Shown as `componentId`, e.g. `"sessions"`; secrets are masked.
        clock: Times the round trip; the monotonic clock if `None`.

    Returns:
        The check, to give to `Health`.

    Raises:
        ConfigurationError: `client` is not a client (a URL, say), or a timeout or
            threshold that is not a finite number > 0.
    """
    _threshold("warn_above", warn_above)
    check_object("redis_check() takes", client, "ping", "a RedisClient", _REDIS_HINT)
    timer = clock or MonotonicClock()

    async def probe() -> Observation:
        started = timer.now()
        await client.ping()  # raises BackendUnavailable or BackendTimeout
        return _timed("responseTime", timer.now() - started, warn_above, component_id)

    return _round_trip_check(name, probe, critical=critical, timeout=timeout)


def postgres_check(
    pool: AcquiringPool,
    *,
    name: str = "postgres",
    query: str = "SELECT 1",
    critical: bool = True,
    timeout: float = 1.0,
    warn_above: float | None = None,
    utilization_warn_above: float = 90.0,
    component_id: str | None = None,
    clock: Clock | None = None,
) -> Check:
    """Check a PostgreSQL pool: borrow a connection, run `query`, observe the round trip.

    Reported as `"{name}:responseTime"` (the query, in ms). When the pool can say
    how many connections it has (asyncpg's `get_size()`, `get_idle_size()`,
    `get_max_size()`), also `"{name}:utilization"`: connections in use before the
    check borrowed one, in percent of the maximum, warning at
    `utilization_warn_above`. An exhausted pool makes the check time out.

    Args:
        pool: An `asyncpg.Pool`, or anything with an async-context `acquire()`
            yielding a connection with `fetchval()`.
        name: The component's name in the report and the metrics.
        query: What to run; its result is ignored.
        critical: Whether the database being down fails readiness (else it warns).
        timeout: Seconds the check may take, borrowing included.
        warn_above: Seconds of query round trip above which the check warns.
        utilization_warn_above: Percent of connections in use from which it warns.
        component_id: Shown as `componentId`, e.g. `"primary"`; secrets are masked.
        clock: Times the round trip; the monotonic clock if `None`.

    Returns:
        The check, to give to `Health`.

    Raises:
        ConfigurationError: `pool` is not a pool (a DSN, say), a timeout or
            threshold that is not a finite number > 0, or an empty query.
    """
    _threshold("warn_above", warn_above)
    check_finite("utilization_warn_above", utilization_warn_above)
    if not query.strip():
        raise ConfigurationError("query must be a non-empty SQL statement, e.g. 'SELECT 1'")
    check_object("postgres_check() takes", pool, "acquire", "a pool", _POSTGRES_HINT)
    timer = clock or MonotonicClock()

    async def probe() -> list[Observation]:
        usage = _utilization(pool, utilization_warn_above, component_id)  # before borrowing
        async with pool.acquire() as connection:
            started = timer.now()
            await connection.fetchval(query)
            elapsed = timer.now() - started
        timed = _timed("responseTime", elapsed, warn_above, component_id)
        return [timed] if usage is None else [timed, usage]

    return _round_trip_check(name, probe, critical=critical, timeout=timeout)


def event_loop_check(
    monitor: LoopLagMonitor,
    *,
    name: str = "eventLoop",
    warn_above: float = 0.1,
    fail_above: float = 1.0,
    critical: bool = False,
) -> Check:
    """Report a `LoopLagMonitor`'s current lag as `"{name}:lag"` in ms.

    Pass the monitor `Health` runs (`Health(loop_monitor=monitor)`), or start it
    yourself: a monitor that is not running fails the check. Not critical by
    default: a busy loop is a reason to warn, and liveness already fails past
    `Health(max_loop_lag=...)`.

    Args:
        monitor: Where the lag is read.
        name: The component's name in the report and the metrics.
        warn_above: Seconds of lag from which the check warns.
        fail_above: Seconds of lag from which it fails.
        critical: Whether failing fails readiness (else it warns).

    Returns:
        The check, to give to `Health`.

    Raises:
        ConfigurationError: Thresholds that are not finite numbers > 0, or
            `warn_above` above `fail_above`.
    """
    check_finite("warn_above", warn_above)
    check_finite("fail_above", fail_above)
    if warn_above > fail_above:
        raise ConfigurationError(
            f"warn_above ({warn_above!r}) must not exceed fail_above ({fail_above!r})"
        )

    async def probe() -> Observation:
        if not monitor.running:
            return Observation(
                measurement="lag",
                status=Status.FAIL,
                output="the event-loop lag monitor is not running; start it",
            )
        lag = monitor.lag()
        status = Status.PASS
        if lag > fail_above:
            status = Status.FAIL
        elif lag > warn_above:
            status = Status.WARN
        return Observation(
            measurement="lag",
            value=round(lag * 1000, 3),
            unit="ms",
            status=status,
            output=None if status is Status.PASS else f"event loop {lag:.3f} s late",
        )

    return Check(
        name=name,
        probe=probe,
        component_type="system",
        critical=critical,
        timeout=1.0,
        measurement="lag",
    )
