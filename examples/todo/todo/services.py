"""The composition root: every shared object of the app process, built once, in one place.

`Services(settings)` builds, and `lifespan()` opens and closes, in this order:

1. the `PoolManager`: the asyncpg pool and the process's **one** `RedisClient`;
2. the `Cache` (an L1 in each process, Redis behind it, tags), on that client;
3. the `RateLimiter`, on that client (falling back to per-process limits if Redis fails);
4. the PostgreSQL `CircuitBreaker`'s shared state, on that client: the replicas'
   calls are counted in one window, and when it opens the breaker every replica
   follows within a flush interval (a replica whose own calls fail may open first);
   beside it a `RetryBudget` for reads;
5. the `Queue` the app enqueues jobs on, on that client, with the tasks registered;
6. in the single-process mode (`TODO_REDIS_URL=memory://`) a `Worker` running the
   jobs in this process, since no other process can see a memory queue, and the
   `NotificationRelay` moving the outbox's notifications to it (otherwise the
   worker process runs the relay: `todo/worker.py`).

`Health` runs the checks (PostgreSQL and Redis, through the pools), opens the
resources in that order at startup and closes them in reverse at shutdown, after
readiness has failed. Everything reports its metrics to one Prometheus registry
(served at `/metrics`, and on `TODO_METRICS_ADDRESS` when set) and its spans to
OpenTelemetry.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from scalepy.breaker import CircuitBreaker, RedisSharedState
from scalepy.cache import Cache
from scalepy.health import Health
from scalepy.integrations.opentelemetry import OpenTelemetryInstrumentation
from scalepy.integrations.prometheus import PrometheusInstrumentation
from scalepy.pools import PoolManager, PoolOptions
from scalepy.queue import Queue, Worker
from scalepy.ratelimit import Lease, RateLimiter
from scalepy.retry import RetryBudget, RetryPolicy
from scalepy.shedding import LoadShedder
from scalepy.telemetry import combine, context_propagation
from todo.metrics_server import serve_metrics
from todo.outbox import NotificationRelay
from todo.repository import UNAVAILABLE, TodoRepository
from todo.schema import migrate
from todo.tasks import register

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager

    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from scalepy.telemetry import Instrumentation
    from todo.settings import Settings

__all__ = ("Services",)

_logger = logging.getLogger("todo.services")


class Services:
    """The app's shared objects (see the module docstring for what and in which order).

    Args:
        settings: The configuration.
        tracer_provider: Where spans go; OpenTelemetry's global provider if `None`.
        meter_provider: Where OpenTelemetry metrics go; the global one if `None`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        """The Prometheus registry `/metrics` renders."""
        self.instrumentation: Instrumentation = combine(
            PrometheusInstrumentation(registry=self.registry),
            OpenTelemetryInstrumentation(
                tracer_provider=tracer_provider, meter_provider=meter_provider
            ),
        )
        # --8<-- [start:build]
        telemetry = self.instrumentation
        propagation = context_propagation(telemetry)  # carries traces through the outbox
        memory = settings.single_process
        self.pools = PoolManager(
            postgres=settings.database_url,
            redis=None if memory else settings.redis_url,
            options=PoolOptions(
                max_size=10,
                acquire_timeout=2.0,
                application_name="todo",
                # Nothing here changes session state (the writes are single statements,
                # the tasks' transactions end by themselves): no reset round trip, so a
                # write holds its connection for one round trip, not two.
                session_reset=False,
            ),
            instrumentation=telemetry,
        )
        # The one Redis client of the process, or memory:// in the single-process mode.
        redis = "memory://" if memory else self.pools.redis
        self.cache = Cache(
            redis,
            namespace=settings.namespace,
            local_max_size=settings.cache_local_size,
            ttl=settings.cache_ttl,
            instrumentation=telemetry,
        )
        # Leased: a hot client's requests are decided from batches of tokens taken
        # from Redis, most without a round trip (at most a tenth of a burst held per
        # replica; see docs/ratelimit.md, "Leases"). No-op on memory://.
        self.limiter = RateLimiter(
            redis,
            namespace=settings.namespace,
            on_failure="local",
            instrumentation=telemetry,
            lease=Lease(),
        )
        # The replica's own concurrency limit, learned from its latency (None: TODO_SHEDDING=0).
        self.shedder = LoadShedder("http", instrumentation=telemetry) if settings.shedding else None
        self.shared_breaker_state = (
            None if memory else RedisSharedState(self.pools.redis, namespace=settings.namespace)
        )
        self.db_breaker = CircuitBreaker(
            "postgres",
            failure_rate_threshold=0.5,
            minimum_calls=settings.db_breaker_minimum_calls,
            window_size=max(100, settings.db_breaker_minimum_calls),
            open_for=settings.db_breaker_open_for,
            permitted_calls_in_half_open=1,
            record=UNAVAILABLE,
            timeout=5.0,
            shared=self.shared_breaker_state,
            instrumentation=telemetry,
        )
        # A read retries twice at most; all reads together add at most 20 % more calls
        # (plus 5 a second when traffic is low), so retries cannot multiply an outage.
        self.retry_budget = RetryBudget(ratio=0.2, min_retries_per_second=5.0)
        self.tasks = register(Queue(redis, name=settings.namespace, instrumentation=telemetry))
        self.worker = (
            Worker(self.tasks.queue, startup=self._lend_pools, instrumentation=telemetry)
            if memory
            else None
        )
        self.repository = TodoRepository(
            postgres=self.pools.postgres,
            cache=self.cache,
            breaker=self.db_breaker,
            retry_policy=RetryPolicy(
                attempts=3, initial_backoff=0.05, max_backoff=0.5, retry_on=UNAVAILABLE
            ),
            budget=self.retry_budget,
            ttl=settings.cache_ttl,
            propagation=propagation,
        )
        self.relay = (
            NotificationRelay(
                self.pools.postgres,
                self.tasks.notify_created,
                propagation=propagation,
            )
            if memory
            else None
        )
        self.health = Health(
            checks=self.pools.health_checks(),
            drain_delay=settings.drain_delay,
            drain_token=settings.drain_token,
            service_id="todo",
            instrumentation=telemetry,
        )
        # --8<-- [end:build]

    async def _lend_pools(self) -> PoolManager:
        """The in-process worker's startup: its tasks read through the app's pools."""
        return self.pools

    # --8<-- [start:lifespan]
    def resources(self) -> list[object]:
        """What the lifespan opens, in order (and closes in reverse)."""
        ordered: list[object] = [self.pools, self.cache, self.limiter]
        if self.shared_breaker_state is not None:
            ordered.append(self.shared_breaker_state)
        ordered.append(self.tasks.queue)
        if self.worker is not None:
            ordered.append(self.worker)
        if self.relay is not None:
            ordered.append(self.relay)
        return ordered

    def lifespan(self) -> Callable[[object], AbstractAsyncContextManager[None]]:
        """The app's lifespan: migrate (in dev), then open everything; close it all at exit."""
        opened = self.health.lifespan(resources=self.resources())

        @contextlib.asynccontextmanager
        async def lifespan(app: object) -> AsyncIterator[None]:
            if self.settings.auth == "none":
                _logger.warning(
                    "TODO_AUTH=none: anyone can create, change and delete todos; "
                    "use it only for local demos and Todo-Backend clients"
                )
            if self.settings.env == "dev":
                applied = await migrate(self.settings.database_url)
                if applied:
                    _logger.info("migrated the schema: %s", applied)
            serving = (
                serve_metrics(self.registry, self.settings.metrics_address)
                if self.settings.metrics_address
                else contextlib.nullcontext()
            )
            async with opened(app):
                with serving:
                    # What start-up made lives as long as the process: out of the cyclic
                    # collector's sight, its full passes no longer walk it (under load they
                    # had cost a cached read ~9 % of its CPU time). Given back at the end,
                    # for a process that starts apps again (tests).
                    gc.freeze()
                    try:
                        yield
                    finally:
                        gc.unfreeze()

        return lifespan

    # --8<-- [end:lifespan]
