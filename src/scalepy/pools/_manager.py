"""`PoolManager`: a service's PostgreSQL pools and Redis clients, opened and closed together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeAlias

from scalepy._lifecycle import LIFECYCLE_SLOTS, AsyncResource, deprecated
from scalepy._validation import check_finite
from scalepy.backends._resolve import require_client
from scalepy.clock import MonotonicClock
from scalepy.errors import ConfigurationError, PoolClosedError
from scalepy.health import redis_check
from scalepy.pools._cluster import PostgresCluster
from scalepy.pools._config import PoolOptions, PostgresConfig, mask_dsn
from scalepy.pools._pool import PostgresPool
from scalepy.pools._startup import gather_or_cancel, start_with_retries
from scalepy.pools._statistics import PoolManagerStatistics
from scalepy.telemetry import get_default

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Sequence
    from contextlib import AbstractAsyncContextManager

    from scalepy.backends import RedisClusterConfig, RedisConfig
    from scalepy.backends.redis import RedisClient
    from scalepy.clock import Clock
    from scalepy.health import Check
    from scalepy.telemetry import Instrumentation

__all__ = ("PoolManager", "RedisTarget")

_logger = logging.getLogger("scalepy.pools")

RedisTarget: TypeAlias = "str | RedisConfig | RedisClusterConfig | RedisClient"
"""A Redis server or cluster: a `redis://`, `rediss://`, `unix://` or
`redis+cluster://` URL, its parsed configuration, or a `RedisClient` shared with
other primitives (closed by the manager only with `owns_client=True`)."""

_DEFAULT_REDIS = "default"


class PoolManager(AsyncResource):
    """Every connection pool a service needs: PostgreSQL (primary + replicas) and Redis.

    ```python
    pools = PoolManager(
        postgres="postgresql://app@db/app",
        postgres_replicas=["postgresql://app@db-replica/app"],
        redis="redis://cache:6379/0",
    )
    async with pools:  # opens everything; closes it all on exit
        async with pools.postgres.acquire(read_only=True) as connection:
            ...
        await pools.redis.execute("INCR", "visits")
    ```

    Opening retries what is not reachable yet (full-jitter backoff) within
    `startup_timeout`: the primary and every Redis must answer, a replica that
    does not is skipped by reads until it does. Closing refuses new acquires,
    waits up to `close_timeout` for lent connections, then terminates them.

    Args:
        postgres: The primary's DSN, or a `PostgresConfig`; `None` for no PostgreSQL.
        postgres_replicas: Read replicas, as DSNs (they take `options`) or configs.
        redis: A Redis URL, config or `RedisClient` (then `pools.redis`), or
            several by name (then `pools.redis_clients[name]`); `None` for no Redis.
        options: Options of every PostgreSQL pool whose config has none of its own.
        startup_timeout: Seconds `open()` may take, retries included.
        close_timeout: Seconds `close()` waits for lent connections.
        replica_retry_delay: Seconds a failed replica is skipped before a read
            probes it again (doubling while it keeps failing, up to 30 s).
        clock: Measures connection ages and retry delays; the monotonic clock if `None`.
        instrumentation: Where metrics go; the process default if `None`.
        owns_client: Close the `RedisClient`s given in `redis` when closing; the
            clients built from URLs are always closed, given ones by default not.

    Raises:
        ConfigurationError: Nothing to manage, replicas without a primary, an
            invalid DSN or Redis URL, duplicate pool names, or a timeout that is
            not a finite number > 0.
    """

    __slots__ = (
        *LIFECYCLE_SLOTS,
        "_clock",
        "_close_timeout",
        "_instrumentation",
        "_owned_redis",
        "_postgres",
        "_redis",
        "_startup_timeout",
        "_state",
    )

    def __init__(
        self,
        *,
        postgres: str | PostgresConfig | None = None,
        postgres_replicas: Sequence[str | PostgresConfig] = (),
        redis: RedisTarget | Mapping[str, RedisTarget] | None = None,
        options: PoolOptions | None = None,
        startup_timeout: float = 30.0,
        close_timeout: float = 10.0,
        replica_retry_delay: float = 1.0,
        clock: Clock | None = None,
        instrumentation: Instrumentation | None = None,
        owns_client: bool = False,
    ) -> None:
        check_finite("startup_timeout", startup_timeout)
        check_finite("close_timeout", close_timeout, inclusive=True)
        if postgres is None and redis is None:
            raise ConfigurationError("give postgres, redis or both: a PoolManager needs a pool")
        if postgres is None and postgres_replicas:
            raise ConfigurationError("postgres_replicas need a primary: give postgres too")
        if isinstance(postgres_replicas, str):
            raise ConfigurationError(
                f"postgres_replicas must be a list of DSNs, not one string: "
                f"write [{mask_dsn(postgres_replicas)!r}]"
            )
        self._startup_timeout = startup_timeout
        self._close_timeout = close_timeout
        self._clock = clock or MonotonicClock()
        self._instrumentation = instrumentation or get_default()
        self._state = "new"
        self._postgres = (
            None
            if postgres is None
            else self._cluster(postgres, postgres_replicas, options, replica_retry_delay)
        )
        self._redis, self._owned_redis = self._redis_clients(redis, owns_client=owns_client)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        options: PoolOptions | None = None,
        startup_timeout: float = 30.0,
        close_timeout: float = 10.0,
        replica_retry_delay: float = 1.0,
        clock: Clock | None = None,
        instrumentation: Instrumentation | None = None,
    ) -> PoolManager:
        """Build the manager the environment describes, twelve-factor style.

        - `DATABASE_URL`: the primary's DSN;
        - `DATABASE_REPLICA_URLS`: replica DSNs, comma-separated;
        - `REDIS_URL`: the Redis URL.

        Unset or empty variables configure nothing. The other arguments are those
        of the constructor.

        Args:
            environ: Where to read the variables; `os.environ` if `None`.
            options: Options of every PostgreSQL pool.
            startup_timeout: Seconds `open()` may take, retries included.
            close_timeout: Seconds `close()` waits for lent connections.
            replica_retry_delay: Seconds a failed replica is skipped.
            clock: Measures connection ages and retry delays.
            instrumentation: Where metrics go.

        Returns:
            A manager, not opened yet.

        Raises:
            ConfigurationError: Neither `DATABASE_URL` nor `REDIS_URL` is set, or
                one of the URLs is invalid.
        """
        env = os.environ if environ is None else environ
        database = env.get("DATABASE_URL") or None
        replicas = [url.strip() for url in env.get("DATABASE_REPLICA_URLS", "").split(",")]
        redis = env.get("REDIS_URL") or None
        if database is None and redis is None:
            raise ConfigurationError("set DATABASE_URL, REDIS_URL or both in the environment")
        return cls(
            postgres=database,
            postgres_replicas=[url for url in replicas if url],
            redis=redis,
            options=options,
            startup_timeout=startup_timeout,
            close_timeout=close_timeout,
            replica_retry_delay=replica_retry_delay,
            clock=clock,
            instrumentation=instrumentation,
        )

    @property
    def postgres(self) -> PostgresCluster:
        """The PostgreSQL primary and replicas.

        Raises:
            ConfigurationError: No PostgreSQL was configured.
        """
        if self._postgres is None:
            raise ConfigurationError("this PoolManager has no PostgreSQL: give postgres=...")
        return self._postgres

    @property
    def redis(self) -> RedisClient:
        """The Redis client (the one named `default` when several are configured).

        Raises:
            ConfigurationError: No Redis, or several and none named `default`.
        """
        if _DEFAULT_REDIS in self._redis:
            return self._redis[_DEFAULT_REDIS]
        if len(self._redis) == 1:
            return next(iter(self._redis.values()))
        if not self._redis:
            raise ConfigurationError("this PoolManager has no Redis: give redis=...")
        raise ConfigurationError(
            f"several Redis clients ({', '.join(self._redis)}): use redis_clients[name]"
        )

    @property
    def redis_clients(self) -> Mapping[str, RedisClient]:
        """Every Redis client, by name (`default` for a single URL)."""
        return self._redis

    async def open(self) -> None:
        """Open every pool, retrying unreachable servers within `startup_timeout`.

        Opening an open manager does nothing; concurrent calls share one opening.

        Raises:
            PoolClosedError: The manager was closed (or failed to open); it does not
                reopen.
            BackendTimeout: The primary or a Redis did not answer within the budget.
            BackendError: The primary refused the credentials or the database.
        """
        if self._state == "closed":
            raise PoolClosedError("PoolManager")
        await self._open_once(self._open)

    async def _open(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self._stop(0)
            self._state = "closed"
            raise
        self._state = "open"

    async def aclose(self, grace: float | None = None) -> None:
        """Close every pool: refuse new acquires, drain lent connections, then terminate.

        Acquires fail with `PoolClosedError` from the start; connections lent out
        get `grace` seconds to come back before they are terminated; Redis
        clients send what was submitted and close. Closing twice, or concurrently,
        waits for the one close (the first call's `grace` holds); a cancelled caller
        leaves the close running.

        Args:
            grace: Seconds lent connections get to come back; `close_timeout` if `None`.
        """
        self._state = "closed"
        await self._close_once(lambda: self._stop(self._close_timeout if grace is None else grace))

    async def close(self, grace: float | None = None) -> None:
        """Deprecated alias of `aclose()`.

        Args:
            grace: Seconds lent connections get to come back; `close_timeout` if `None`.
        """
        deprecated("PoolManager.close()", "PoolManager.aclose()")
        await self.aclose(grace)

    def lifespan(self, app: object) -> AbstractAsyncContextManager[None]:
        """A Starlette (or any ASGI framework's) lifespan that opens and closes the pools.

        ```python
        app = Starlette(routes=routes, lifespan=pools.lifespan)
        ```

        Inside a lifespan of your own, enter it like any context manager:
        `async with pools.lifespan(app): yield`.

        Args:
            app: The application (unused; the lifespan protocol passes it).

        Returns:
            A context manager that opens the pools on entry and closes them on exit.
        """
        return self._lifespan()

    @contextlib.asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        async with self:
            yield

    def health_checks(
        self, *, timeout: float = 1.0, utilization_warn_above: float = 90.0
    ) -> list[Check]:
        """Return readiness checks for everything the manager holds.

        PostgreSQL as `PostgresCluster.health_checks` describes (the primary is
        critical, replicas are not); each Redis client a PING round trip, named
        `redis` (or `redis-<name>` for named clients), critical.

        Args:
            timeout: Seconds each check may take.
            utilization_warn_above: Percent of a pool's connections in use from
                which its check warns.

        Returns:
            The checks, to give to `scalepy.health.Health`.
        """
        checks = (
            []
            if self._postgres is None
            else self._postgres.health_checks(
                timeout=timeout, utilization_warn_above=utilization_warn_above
            )
        )
        for name, client in self._redis.items():
            label = "redis" if name == _DEFAULT_REDIS else f"redis-{name}"
            checks.append(redis_check(client, name=label, timeout=timeout))
        return checks

    def statistics(self) -> PoolManagerStatistics:
        """Return a snapshot of every pool and client.

        Returns:
            A frozen snapshot.
        """
        return PoolManagerStatistics(
            postgres=None if self._postgres is None else self._postgres.statistics(),
            redis={name: client.statistics() for name, client in self._redis.items()},
        )

    def __repr__(self) -> str:
        redis = ", ".join(f"{name}: {client.config}" for name, client in self._redis.items())
        return f"<PoolManager {self._state} postgres={self._postgres!r} redis=[{redis}]>"

    # -- building ---------------------------------------------------------------------

    def _cluster(
        self,
        postgres: str | PostgresConfig,
        replicas: Sequence[str | PostgresConfig],
        options: PoolOptions | None,
        replica_retry_delay: float,
    ) -> PostgresCluster:
        defaults = options or PoolOptions()

        def pool(given: str | PostgresConfig, name: str) -> PostgresPool:
            config = PostgresConfig(dsn=given) if isinstance(given, str) else given
            return PostgresPool(
                config.dsn,
                name=config.name or name,
                options=config.options or defaults,
                clock=self._clock,
                instrumentation=self._instrumentation,
            )

        return PostgresCluster(
            pool(postgres, "primary"),
            [pool(replica, f"replica-{number}") for number, replica in enumerate(replicas, 1)],
            replica_retry_delay=replica_retry_delay,
            clock=self._clock,
            instrumentation=self._instrumentation,
        )

    def _redis_clients(
        self, redis: RedisTarget | Mapping[str, RedisTarget] | None, *, owns_client: bool
    ) -> tuple[Mapping[str, RedisClient], tuple[RedisClient, ...]]:
        """Every Redis client by name, and those closed with the manager."""
        if redis is None:
            redis = {}
        if isinstance(redis, list | tuple | set):
            raise ConfigurationError(
                "several Redis servers go by name: redis={'cache': url, 'queue': url}, "
                "then pools.redis_clients['cache']"
            )
        targets = redis if isinstance(redis, Mapping) else {_DEFAULT_REDIS: redis}
        clients: dict[str, RedisClient] = {}
        owned: list[RedisClient] = []
        for name, target in targets.items():
            client, closes = require_client(
                target,
                user=f"PoolManager redis {name!r}",
                owns_client=owns_client,
                instrumentation=self._instrumentation,
            )
            clients[name] = client
            if closes:
                owned.append(client)
        return clients, tuple(owned)

    # -- opening and closing ------------------------------------------------------------

    async def _start(self) -> None:
        budget, clock, instrumentation = self._startup_timeout, self._clock, self._instrumentation
        work: list[Awaitable[object]] = []
        cluster = self._postgres
        if cluster is not None:
            await cluster.open(connect=False)
            primary = cluster.primary
            work.append(
                start_with_retries(
                    primary._warm_up,
                    budget=budget,
                    backend=primary.backend,
                    clock=clock,
                    instrumentation=instrumentation,
                )
            )
            work.extend(cluster.warm_up_replica(index) for index in range(len(cluster.replicas)))
        work.extend(
            start_with_retries(
                client.ping,
                budget=budget,
                backend=str(client.config),
                clock=clock,
                instrumentation=instrumentation,
            )
            for client in self._redis.values()
        )
        await gather_or_cancel(*work)

    async def _stop(self, grace: float) -> None:
        closing = [client.aclose() for client in self._owned_redis]
        if self._postgres is not None:
            closing.append(self._postgres.aclose(grace))
        for result in await asyncio.gather(*closing, return_exceptions=True):
            if isinstance(result, BaseException):
                _logger.warning("closing a pool failed: %r", result)
