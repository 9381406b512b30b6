"""`Health`: liveness, readiness and startup for one service, and its orderly shutdown."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from scalepy._lifecycle import AsyncResource, deprecated
from scalepy._validation import check_finite
from scalepy.clock import MonotonicClock
from scalepy.errors import ConfigurationError, UsageError
from scalepy.health._asgi import HealthApp, HttpOptions
from scalepy.health._check import Check, Status, flatten_checks
from scalepy.health._lifespan import (
    close_resources,
    open_resource,
    resources_tuple,
    shutdown_plan,
    stop_consumers,
)
from scalepy.health._monitor import LoopLagMonitor
from scalepy.health._report import HealthReport, ServiceInfo
from scalepy.health._runner import CheckRunner
from scalepy.telemetry import get_default, metrics_exposition

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

    from starlette.routing import Route

    from scalepy._asgi import ASGIApp, Scope
    from scalepy.clock import Clock
    from scalepy.health._lifespan import Consumer
    from scalepy.telemetry import Instrumentation

__all__ = ("Health",)

_PASS = HealthReport(status=Status.PASS)
_STARTING = HealthReport(status=Status.FAIL, output="starting")
_DRAINING = HealthReport(status=Status.FAIL, output="draining")


class Health(AsyncResource):
    """Liveness, readiness and startup for one service; served by `health.asgi`.

    - **Liveness** (`/health/live`) looks at the process alone, never at a
      dependency: it fails only after `mark_broken()` or while the event loop
      runs more than `max_loop_lag` seconds late.
    - **Readiness** (`/health/ready`) fails until `mark_started()`, and from
      `drain()` on; otherwise it runs the checks concurrently, each within its
      own timeout, and fails if a critical one fails (a non-critical failure
      warns). Results are cached (`pass_ttl`, `fail_ttl`) and shared: a probe
      storm runs each check once.
    - **Startup** (`/health/startup`) passes once `mark_started()` was called.
    - **Details** (`/health`) answers what readiness answers (checks run even
      while starting or draining). Its checks and service fields are shown only
      with `public_details=True`, or to requests passing `details_token` or
      `details_allowed`; otherwise it answers the status alone. Even then a failed
      check shows only its exception's class name, never the exception's text.

    Args:
        checks: `Check` objects, or iterables of them (e.g. `pools.health_checks()`).
        pass_ttl: Seconds a passing check result is reused (>= 0).
        fail_ttl: Seconds a failing or warning result is reused (>= 0).
        max_loop_lag: Seconds of event-loop lag past which liveness fails; keep it
            large: a restart is the cure.
        loop_monitor: The lag monitor liveness reads; a new one if `None`. Pass
            the one you give `event_loop_check()`.
        drain_delay: Seconds `drain()` holds after readiness turns to fail, so load
            balancers stop routing here while the app still serves.
        drain_token: Bearer token `/health/drain` requires; anyone may drain if `None`.
        drain_methods: Methods `/health/drain` accepts; `["GET", "POST"]` for a
            Kubernetes `httpGet` preStop hook.
        details_token: Bearer token the detailed `/health` requires, if set.
        details_allowed: A predicate on the ASGI scope the detailed `/health`
            requires to be true, if set (403 otherwise).
        public_details: Show the detailed `/health` to anyone (for a port only
            the cluster reaches); it cannot be combined with the two above.
        prefix: Where the endpoints live.
        metrics_path: Where metrics are served; `None` for nowhere. They are
            rendered by `instrumentation` (or a member of it made by `combine()`)
            when it implements `scalepy.telemetry.MetricsExposition`, as
            `PrometheusInstrumentation` does; otherwise the path answers 501.
        version: `version` in the detailed body.
        release_id: `releaseId` in the detailed body.
        service_id: `serviceId` in the detailed body.
        description: `description` in the detailed body.
        clock: Times checks, caching and draining; the monotonic clock if `None`.
        instrumentation: Where metrics, spans and events go; the process default
            if `None`.

    Raises:
        ConfigurationError: Something in `checks` that is not a check, two checks
            with one name, a negative or non-finite duration, a path that does not
            start with '/', a `metrics_path` under `prefix`, an empty token, or
            drain methods other than GET, POST and PUT, or `public_details` with
            `details_token` or `details_allowed`.
    """

    def __init__(
        self,
        checks: Iterable[Check | Iterable[Check]] = (),
        *,
        pass_ttl: float = 2.0,
        fail_ttl: float = 1.0,
        max_loop_lag: float = 10.0,
        loop_monitor: LoopLagMonitor | None = None,
        drain_delay: float = 5.0,
        drain_token: str | None = None,
        drain_methods: Iterable[str] = ("POST",),
        details_token: str | None = None,
        details_allowed: Callable[[Scope], bool] | None = None,
        public_details: bool = False,
        prefix: str = "/health",
        metrics_path: str | None = "/metrics",
        version: str | None = None,
        release_id: str | None = None,
        service_id: str | None = None,
        description: str | None = None,
        clock: Clock | None = None,
        instrumentation: Instrumentation | None = None,
    ) -> None:
        check_finite("pass_ttl", pass_ttl, inclusive=True)
        check_finite("fail_ttl", fail_ttl, inclusive=True)
        check_finite("max_loop_lag", max_loop_lag)
        check_finite("drain_delay", drain_delay, inclusive=True)
        self._clock = clock or MonotonicClock()
        self._instrumentation = instrumentation or get_default()
        self._runner = CheckRunner(
            flatten_checks(checks),
            pass_ttl=pass_ttl,
            fail_ttl=fail_ttl,
            clock=self._clock,
            instrumentation=self._instrumentation,
        )
        methods: object = drain_methods
        if isinstance(methods, str):
            raise ConfigurationError(
                f"drain_methods must be a list of methods: write [{methods!r}]"
            )
        self._http = HttpOptions(
            prefix=prefix,
            metrics_path=metrics_path,
            metrics=metrics_exposition(self._instrumentation),
            details_token=details_token,
            details_allowed=details_allowed,
            public_details=public_details,
            drain_token=drain_token,
            drain_methods=frozenset(drain_methods),
            service=ServiceInfo(
                version=version,
                release_id=release_id,
                service_id=service_id,
                description=description,
            ),
        )
        self._max_loop_lag = max_loop_lag
        self._monitor = loop_monitor or LoopLagMonitor(
            clock=self._clock, instrumentation=self._instrumentation
        )
        self._drain_delay = drain_delay
        self._drain_until: float | None = None
        self._started = False
        self._broken: HealthReport | None = None
        self._broken_reason: str | None = None
        self._asgi: HealthApp | None = None

    # State

    @property
    def checks(self) -> tuple[Check, ...]:
        """The readiness checks, in the order given."""
        return self._runner.checks

    @property
    def loop_monitor(self) -> LoopLagMonitor:
        """The event-loop lag monitor liveness reads."""
        return self._monitor

    @property
    def started(self) -> bool:
        """Whether `mark_started()` was called."""
        return self._started

    @property
    def draining(self) -> bool:
        """Whether `drain()` was called: readiness fails from then on."""
        return self._drain_until is not None

    @property
    def broken(self) -> str | None:
        """Why `mark_broken()` was called, or `None`."""
        return self._broken_reason

    def mark_started(self) -> None:
        """Record that startup completed: the startup probe passes, readiness may."""
        self._started = True
        self._instrumentation.event("scalepy.health.started")

    def mark_broken(self, reason: str) -> None:
        """Fail liveness (and readiness) from now on, e.g. after an unrecoverable error.

        Kubernetes then restarts the container. There is no way back: a broken
        process is replaced, not repaired.

        Args:
            reason: Why, shown as `output` (secrets masked).
        """
        self._broken_reason = reason
        self._broken = HealthReport(status=Status.FAIL, output=f"broken: {reason}")
        self._instrumentation.event("scalepy.health.broken", {"scalepy.health.reason": reason})

    def invalidate(self) -> None:
        """Forget cached check results: the next readiness probe runs every check."""
        self._runner.invalidate()

    # Questions

    def liveness(self) -> HealthReport:
        """Whether the process works, judged from the process alone.

        Returns:
            `fail` after `mark_broken()` or while the event loop lags more than
            `max_loop_lag`; `pass` otherwise.
        """
        if self._broken is not None:
            return self._broken
        lag = self._monitor.lag()
        if lag > self._max_loop_lag:
            return HealthReport(status=Status.FAIL, output=f"event loop {lag:.1f} s late")
        return _PASS

    def startup_status(self) -> HealthReport:
        """Whether startup completed (`mark_started()`); checks nothing else."""
        return _PASS if self._started else _STARTING

    async def readiness(self) -> HealthReport:
        """Whether the service should get traffic now.

        Returns:
            `fail` when broken, draining or not started (without running checks);
            otherwise the checks' verdict, from cache while fresh.
        """
        blocked = self._blocked()
        if blocked is not None:
            return blocked
        return await self._runner.report()

    async def details(self) -> HealthReport:
        """Readiness with every check's results, running the checks even when blocked."""
        report = await self._runner.report()
        blocked = self._blocked()
        if blocked is None:
            return report
        return HealthReport(status=Status.FAIL, checks=report.checks, output=blocked.output)

    def _blocked(self) -> HealthReport | None:
        """Why readiness fails whatever the checks say, if it does."""
        if self._broken is not None:
            return self._broken
        if self._drain_until is not None:
            return _DRAINING
        return None if self._started else _STARTING

    # Life cycle

    async def _open(self) -> None:
        """Start the event-loop lag monitor (done by `startup()` and `async with`)."""
        self._monitor.start()

    def start(self) -> None:
        """Deprecated: `await health.open()`; starts the event-loop lag monitor.

        Raises:
            RuntimeError: If no event loop is running.
        """
        deprecated("Health.start()", "await Health.open()")
        self._monitor.start()

    async def startup(
        self,
        *,
        resources: Iterable[object] = (),
        on_startup: Iterable[Callable[[], Awaitable[object]]] = (),
        close_timeout: float = 10.0,
    ) -> None:
        """Start the service: the lag monitor, `open()` each resource, the hooks, then started.

        If anything raises, the resources opened so far are closed again (in
        reverse order) and the error propagates: startup never completes half-way.

        Args:
            resources: Opened in order with `open()` where they have one (a
                `PoolManager`); the same list is what `shutdown()` closes.
            on_startup: Async callables run in order after the resources opened,
                e.g. creating a schema or warming a cache.
            close_timeout: Seconds each opened resource gets to close if startup fails.
        """
        opening = resources_tuple(resources)
        opened: list[object] = []
        try:
            await self.open()
            for resource in opening:
                await open_resource(resource)
                opened.append(resource)
            for hook in on_startup:
                await hook()
        except BaseException:
            await close_resources(reversed(opened), close_timeout, self._clock)
            await self.aclose()
            raise
        self.mark_started()

    async def drain(self, *, wait: bool = True) -> None:
        """Fail readiness from now on, then hold `drain_delay` while the app keeps serving.

        Load balancers and Kubernetes endpoints take a few probe periods to stop
        routing to an instance; holding (in a preStop hook) lets requests already
        on their way still be served. Calling it again waits only until the first
        call's hold ends.

        Args:
            wait: Whether to hold; `False` only flips readiness.
        """
        if self._drain_until is None:
            self._drain_until = self._clock.now() + self._drain_delay
            self._instrumentation.event(
                "scalepy.health.draining", {"scalepy.health.drain.delay": self._drain_delay}
            )
        if wait:
            remaining = self._drain_until - self._clock.now()
            if remaining > 0:
                await self._clock.sleep(remaining)

    async def shutdown(
        self,
        *,
        consumers: Iterable[Consumer] = (),
        resources: Iterable[object] = (),
        drain_wait: bool = True,
        stop_timeout: float = 10.0,
        close_timeout: float = 10.0,
    ) -> None:
        """Shut down in order: readiness fails (drain), consumers stop, resources close.

        The whole sequence takes at most `drain_delay` (when `drain_wait`) +
        `stop_timeout` + `close_timeout` per resource; keep that within
        Kubernetes' `terminationGracePeriodSeconds`. Failures are logged on the
        `scalepy.health` logger and do not stop the sequence.

        Args:
            consumers: Callables that stop consumers (queue workers, subscribers),
                sync or async, all called at once, then awaited together.
            resources: Closed in reverse order with `aclose()` or `close()`.
            drain_wait: Whether to hold `drain_delay` if no drain has yet.
            stop_timeout: Seconds the consumers get to stop, together.
            close_timeout: Seconds each resource gets to close.

        Raises:
            ConfigurationError: A consumer that is not callable, a resource
                without `aclose()` or `close()`, or a timeout that is not > 0.
        """
        stoppers, closing = shutdown_plan(consumers, resources, stop_timeout, close_timeout)
        await self.drain(wait=drain_wait)
        self._instrumentation.event("scalepy.health.stopping_consumers")
        await stop_consumers(stoppers, stop_timeout, self._clock)
        self._instrumentation.event("scalepy.health.closing_resources")
        await close_resources(reversed(closing), close_timeout, self._clock)
        await self.aclose()

    def lifespan(
        self,
        app: None = None,
        /,
        *,
        resources: Iterable[object] = (),
        consumers: Iterable[Consumer] = (),
        on_startup: Iterable[Callable[[], Awaitable[object]]] = (),
        drain_wait: bool = False,
        stop_timeout: float = 10.0,
        close_timeout: float = 10.0,
    ) -> Callable[[object], contextlib.AbstractAsyncContextManager[None]]:
        """A lifespan for Starlette or FastAPI running `startup()` and `shutdown()`.

        ```python
        app = Starlette(routes=health.routes(), lifespan=health.lifespan(resources=[pools]))
        ```

        `drain_wait` is off by default: servers such as uvicorn run the lifespan
        shutdown after they stopped accepting connections, so holding there
        serves nobody; hold in a preStop hook calling `/health/drain` instead.

        Args:
            app: Never given by you: `lifespan=health.lifespan`, not called, has the
                framework pass its app here, which raises `UsageError`.
            resources: Opened at startup, closed in reverse order at shutdown.
            consumers: Stopped at shutdown, after readiness failed.
            on_startup: Run after the resources opened, before `mark_started()`.
            drain_wait: Whether shutdown holds `drain_delay` (see above).
            stop_timeout: Seconds the consumers get to stop.
            close_timeout: Seconds each resource gets to close.

        Returns:
            `lifespan(app)`, an async context manager factory.

        Raises:
            ConfigurationError: Like `shutdown()`, when called, not at shutdown.
            UsageError: An app was passed: the method was given to the framework
                uncalled (unlike `PoolManager.lifespan`, it takes options).
        """
        if app is not None:
            raise UsageError(
                "health.lifespan makes the lifespan: write lifespan=health.lifespan("
                "resources=[...]), with the parentheses"
            )
        stoppers, held = shutdown_plan(consumers, resources, stop_timeout, close_timeout)
        hooks = tuple(on_startup)

        @contextlib.asynccontextmanager
        async def lifespan(app: object) -> AsyncIterator[None]:
            await self.startup(resources=held, on_startup=hooks, close_timeout=close_timeout)
            try:
                yield
            finally:
                await self.shutdown(
                    consumers=stoppers,
                    resources=held,
                    drain_wait=drain_wait,
                    stop_timeout=stop_timeout,
                    close_timeout=close_timeout,
                )

        return lifespan

    async def _aclose(self) -> None:
        """Stop the lag monitor and abandon running checks (waiting up to 1 s for them)."""
        await self._monitor.aclose()
        await self._runner.aclose(grace=1.0)

    # HTTP

    @property
    def asgi(self) -> HealthApp:
        """The endpoints as a pure ASGI application (created once)."""
        if self._asgi is None:
            self._asgi = HealthApp(self, self._http)
        return self._asgi

    def wrap(self, app: ASGIApp) -> HealthApp:
        """Put the health endpoints in front of an ASGI application.

        Args:
            app: Gets every request for another path, and every non-HTTP scope.

        Returns:
            An ASGI application.
        """
        return HealthApp(self, self._http, app)

    def routes(self) -> list[Route]:
        """Starlette routes for every endpoint (needs the `starlette` extra).

        Returns:
            Routes named `health`, `health_live`, `health_ready`,
            `health_startup`, `health_drain` and `metrics`.
        """
        from scalepy.integrations.starlette import health_routes

        return health_routes(self)

    def __repr__(self) -> str:
        if self._broken is not None:
            state = "broken"
        elif self.draining:
            state = "draining"
        else:
            state = "started" if self._started else "starting"
        return (
            f"<{type(self).__name__} {state} checks={len(self.checks)} "
            f"runs={self._runner.runs} lag={self._monitor.lag():.3f}s>"
        )
