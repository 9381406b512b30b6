"""`PostgresCluster`: a primary and its read replicas, with reads routed to healthy replicas.

Writes, and anything not marked `read_only`, go to the primary. A read-only
acquire goes to the least busy replica that has not failed recently (ties taken
in turn, so equal replicas share the load), and falls back to the primary when
no replica can serve it. A replica that fails (cannot be connected to, or drops
a lent connection) is skipped by a `BackendGuard`: after a delay one read probes
it again, and success brings it back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, TypeVar

from scalepy._lifecycle import AsyncResource
from scalepy._validation import check_finite
from scalepy.backends.guard import BackendGuard
from scalepy.errors import BackendError, ConfigurationError
from scalepy.health import postgres_check
from scalepy.pools._metrics import POOL_NAME, READ_FALLBACKS
from scalepy.pools._routing import ReadLease, steering
from scalepy.pools._startup import gather_or_cancel
from scalepy.pools._statistics import ClusterStatistics
from scalepy.telemetry import get_default

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from contextlib import AbstractAsyncContextManager

    import asyncpg

    from scalepy.clock import Clock
    from scalepy.health import Check
    from scalepy.pools._connection import Connection
    from scalepy.pools._pool import PostgresPool
    from scalepy.telemetry import Instrumentation

__all__ = ("PostgresCluster",)

T = TypeVar("T")

_logger = logging.getLogger("scalepy.pools")
_MAX_REPLICA_DELAY = 30.0


class PostgresCluster(AsyncResource):
    """A primary's pool and its replicas' pools, behind one `acquire()`.

    ```python
    async with pools.postgres.acquire(read_only=True) as connection:  # a replica
        rows = await connection.fetch("SELECT ...")
    await pools.postgres.execute("INSERT ...")  # the primary
    ```

    The cluster owns its pools: opening and closing it opens and closes them.

    Args:
        primary: The primary's pool; every write goes there.
        replicas: Pools of read replicas, or none (then reads go to the primary).
        replica_retry_delay: Seconds a failed replica is skipped before one read
            probes it again; the delay doubles while probes fail, up to 30 s.
        clock: Times the replica delays; the monotonic clock if `None`.
        instrumentation: Where the fallback counter goes; the process default if `None`.

    Raises:
        ConfigurationError: Two pools with one name, or a delay that is not a
            finite number > 0.
    """

    __slots__ = (
        "_fallback_labels",
        "_fallbacks",
        "_guards",
        "_next",
        "_primary",
        "_record",
        "_replicas",
    )

    def __init__(
        self,
        primary: PostgresPool,
        replicas: Sequence[PostgresPool] = (),
        *,
        replica_retry_delay: float = 1.0,
        clock: Clock | None = None,
        instrumentation: Instrumentation | None = None,
    ) -> None:
        check_finite("replica_retry_delay", replica_retry_delay)
        names = [pool.name for pool in (primary, *replicas)]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"pool names must be unique, got {names!r}")
        self._primary = primary
        self._replicas = tuple(replicas)
        self._guards = tuple(
            BackendGuard(
                failure_threshold=1,
                initial_delay=replica_retry_delay,
                max_delay=max(replica_retry_delay, _MAX_REPLICA_DELAY),
                clock=clock,
            )
            for _ in self._replicas
        )
        self._next = 0  # where the next tie-break starts
        self._fallbacks = 0
        self._record = (instrumentation or get_default()).metric(READ_FALLBACKS).record
        self._fallback_labels = {POOL_NAME: primary.name}

    @property
    def primary(self) -> PostgresPool:
        """The primary's pool."""
        return self._primary

    @property
    def replicas(self) -> tuple[PostgresPool, ...]:
        """The replicas' pools."""
        return self._replicas

    def acquire(
        self, *, read_only: bool = False, timeout: float | None = None
    ) -> AbstractAsyncContextManager[Connection]:
        """Lend a connection from the primary, or for `read_only` work from a replica.

        Args:
            read_only: The block only reads, so a replica may serve it; it falls
                back to the primary when no replica can.
            timeout: Seconds to wait for a connection, a read's fallback to the
                primary included; the primary's `acquire_timeout` if `None`.

        Returns:
            An async context manager yielding an `asyncpg.Connection`.

        Raises:
            ConfigurationError: A timeout that is not a finite number > 0.
            PoolTimeoutError: No connection within the deadline (on entering).
            PoolNotOpenError: The pools were never opened (on entering).
            PoolClosedError: The pools are closed (on entering).
            BackendUnavailable: The primary was needed and cannot be reached.
        """
        if not read_only or not self._replicas:
            return self._primary.acquire(timeout=timeout)
        if timeout is not None:
            check_finite("timeout", timeout)
        return ReadLease(self, timeout)

    async def fetch(
        self,
        query: str,
        *args: object,
        timeout: float | None = None,  # noqa: ASYNC109 - asyncpg's name for the query timeout
        read_only: bool = False,
    ) -> list[asyncpg.Record]:
        """Run a query on a lent connection and return all its rows.

        A `read_only` query whose replica drops the connection is retried once on
        the primary.

        Args:
            query: The SQL, with `$1`-style placeholders.
            *args: The placeholders' values.
            timeout: Seconds the query may take (asyncpg's `timeout`).
            read_only: Whether a replica may serve it.

        Returns:
            The rows.
        """
        return await self._run(read_only, lambda c: c.fetch(query, *args, timeout=timeout))

    async def fetchrow(
        self,
        query: str,
        *args: object,
        timeout: float | None = None,  # noqa: ASYNC109 - asyncpg's name for the query timeout
        read_only: bool = False,
    ) -> asyncpg.Record | None:
        """Run a query on a lent connection and return its first row, as `fetch`.

        Args:
            query: The SQL, with `$1`-style placeholders.
            *args: The placeholders' values.
            timeout: Seconds the query may take (asyncpg's `timeout`).
            read_only: Whether a replica may serve it.

        Returns:
            The first row, or `None` if there is none.
        """
        return await self._run(read_only, lambda c: c.fetchrow(query, *args, timeout=timeout))

    async def fetchval(
        self,
        query: str,
        *args: object,
        column: int = 0,
        timeout: float | None = None,  # noqa: ASYNC109 - asyncpg's name for the query timeout
        read_only: bool = False,
    ) -> Any:
        """Run a query on a lent connection and return one value of its first row, as `fetch`.

        Args:
            query: The SQL, with `$1`-style placeholders.
            *args: The placeholders' values.
            column: Which column of the first row.
            timeout: Seconds the query may take (asyncpg's `timeout`).
            read_only: Whether a replica may serve it.

        Returns:
            The value, or `None` if there is no row.
        """
        if not read_only or not self._replicas:  # the common case, without a closure
            async with self._primary.acquire() as connection:
                return await connection.fetchval(query, *args, column=column, timeout=timeout)
        return await self._run(
            read_only, lambda c: c.fetchval(query, *args, column=column, timeout=timeout)
        )

    async def execute(
        self,
        query: str,
        *args: object,
        timeout: float | None = None,  # noqa: ASYNC109 - asyncpg's name for the query timeout
        read_only: bool = False,
    ) -> str:
        """Run a statement on a lent connection and return its status, as `fetch`.

        Args:
            query: The SQL; without arguments it may hold several statements.
            *args: The placeholders' values.
            timeout: Seconds the statement may take (asyncpg's `timeout`).
            read_only: Whether a replica may serve it.

        Returns:
            The command status, e.g. `"INSERT 0 1"`.
        """
        return await self._run(read_only, lambda c: c.execute(query, *args, timeout=timeout))

    async def open(self, *, connect: bool = True) -> None:
        """Open every pool; with `connect`, the primary must answer, replicas may not.

        A replica that cannot be reached is skipped by reads until it answers.

        Args:
            connect: Open connections now (see `PostgresPool.open`); if the primary
                cannot be reached, every pool is closed again.

        Raises:
            BackendUnavailable: `connect` and the primary cannot be reached.
            BackendError: `connect` and the primary refused the credentials or database.
        """
        for pool in (self._primary, *self._replicas):
            await pool.open(connect=False)
        if connect:
            try:
                await gather_or_cancel(
                    self._primary._warm_up(),
                    *(self.warm_up_replica(i) for i in range(len(self._replicas))),
                )
            except BaseException:
                await self.aclose(0)
                raise

    async def warm_up_replica(self, index: int) -> bool:
        """Try once to open a replica's connections; mark it failed if that does not work.

        Args:
            index: The replica's position in `replicas`.

        Returns:
            Whether the replica answered.
        """
        replica = self._replicas[index]
        try:
            await replica._warm_up()
        except BackendError as exc:
            self._guards[index].record_failure()
            _logger.warning(
                "replica %r cannot be reached; reads go to the primary until it answers: %s",
                replica.name,
                exc,
            )
            return False
        return True

    async def aclose(self, grace: float | None = None) -> None:
        """Close every pool gracefully, all at once (see `PostgresPool.aclose`).

        Args:
            grace: Seconds lent connections get to come back; 10 if `None`.
        """
        await asyncio.gather(*(pool.aclose(grace) for pool in (self._primary, *self._replicas)))

    def health_checks(
        self, *, timeout: float = 1.0, utilization_warn_above: float = 90.0
    ) -> list[Check]:
        """Return readiness checks: the primary (critical) and each replica (non-critical).

        Each borrows a connection, runs `SELECT 1` and reports `responseTime` (ms)
        and `utilization` (percent of `max_size` in use, warning from
        `utilization_warn_above`). The primary's check is named `postgres`, a
        replica's `postgres-<pool name>`. A replica's result also steers the
        routing: a failed check takes it out of rotation, a passing one brings it
        back.

        Args:
            timeout: Seconds each check may take.
            utilization_warn_above: Percent of connections in use from which a check warns.

        Returns:
            The checks, primary first, to give to `scalepy.health.Health`.
        """
        checks = [
            postgres_check(
                self._primary,
                name="postgres",
                timeout=timeout,
                utilization_warn_above=utilization_warn_above,
                component_id=self._primary.name,
            )
        ]
        for replica, guard in zip(self._replicas, self._guards, strict=True):
            check = postgres_check(
                replica,
                name=f"postgres-{replica.name}",
                critical=False,
                timeout=timeout,
                utilization_warn_above=utilization_warn_above,
                component_id=replica.name,
            )
            checks.append(steering(check, guard))
        return checks

    def statistics(self) -> ClusterStatistics:
        """Return a snapshot of every pool and of the read routing.

        Returns:
            A frozen snapshot.
        """
        return ClusterStatistics(
            primary=self._primary.statistics(),
            replicas=tuple(pool.statistics() for pool in self._replicas),
            replicas_available=tuple(not guard.is_open for guard in self._guards),
            read_fallbacks=self._fallbacks,
        )

    def __repr__(self) -> str:
        replicas = ", ".join(
            f"{pool.name}{'' if not guard.is_open else ' (skipped)'}"
            for pool, guard in zip(self._replicas, self._guards, strict=True)
        )
        return f"<PostgresCluster primary={self._primary.name!r} replicas=[{replicas}]>"

    # -- routing ------------------------------------------------------------------------

    def _choose(self, tried: int) -> int | None:
        """Pick a replica for a read: the least busy one in rotation, else one due a probe.

        Args:
            tried: A bit set of replicas this read already failed on.
        """
        replicas, guards = self._replicas, self._guards
        count = len(replicas)
        start = self._next
        self._next = (start + 1) % count
        best, best_load = None, 2.0
        for offset in range(count):
            index = (start + offset) % count
            if tried >> index & 1 or guards[index].is_open:
                continue
            pool = replicas[index]
            load = (len(pool._leased) + pool._pending) / pool.options.max_size
            if load < best_load:
                best, best_load = index, load
        if best is not None:
            return best
        for offset in range(count):  # every candidate is skipped: is one due a probe?
            index = (start + offset) % count
            if not tried >> index & 1 and guards[index].available():
                return index
        return None

    def _fell_back(self) -> None:
        self._fallbacks += 1
        self._record(1, self._fallback_labels)

    async def _run(self, read_only: bool, call: Callable[[Connection], Awaitable[T]]) -> T:
        if not read_only or not self._replicas:
            async with self._primary.acquire() as connection:
                return await call(connection)
        lease = ReadLease(self, None)
        try:
            async with lease as connection:
                return await call(connection)
        except Exception:
            if not lease.lost_replica:
                raise
        self._fell_back()  # the replica dropped the connection: a read may simply run again
        async with self._primary.acquire() as connection:
            return await call(connection)
