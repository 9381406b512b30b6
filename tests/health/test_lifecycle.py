"""Startup and the shutdown order: readiness fails, consumers stop, resources close."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import pytest

from scalepy.errors import ConfigurationError, UsageError
from scalepy.health import Health, Status
from scalepy.testing import FakeClock

Log = list[str]


@dataclass
class Resource:
    """A resource recording open/close calls in a shared log; async or sync close."""

    name: str
    log: Log
    hang: bool = False
    fail: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    async def open(self) -> None:
        """Record the opening."""
        self.log.append(f"open {self.name}")

    async def aclose(self) -> None:
        """Record the closing; hang or fail when told to."""
        self.log.append(f"close {self.name}")
        if self.fail:
            raise OSError(f"{self.name} would not close")
        if self.hang:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        self.closed.set()

    def terminate(self) -> None:
        """Record a forced close."""
        self.log.append(f"terminate {self.name}")


@dataclass
class SyncResource:
    """A resource with a plain close() and no open()."""

    name: str
    log: Log

    def close(self) -> None:
        """Record the closing."""
        self.log.append(f"close {self.name}")


async def test_shutdown_order() -> None:
    """Readiness fails first, then consumers stop, then resources close in reverse order."""
    clock = FakeClock()
    log: Log = []
    health = Health(clock=clock, drain_delay=0)
    health.mark_started()

    async def stop_worker() -> None:
        ready = await health.readiness()
        log.append(f"stop worker (ready: {ready.status.value})")

    def stop_listener() -> None:
        log.append("stop listener")

    pools, redis = Resource("pools", log), SyncResource("redis", log)
    await health.shutdown(consumers=[stop_worker, stop_listener], resources=[redis, pools])

    assert ["stop listener", "stop worker (ready: fail)", "close pools", "close redis"] == log


async def test_shutdown_holds_the_drain_delay_first() -> None:
    """With drain_wait, nothing stops until the drain delay has passed."""
    clock = FakeClock()
    log: Log = []
    health = Health(clock=clock, drain_delay=5)

    shutting = asyncio.ensure_future(
        health.shutdown(consumers=[lambda: log.append("stop")], resources=[Resource("db", log)])
    )
    await clock.wait_for_sleepers(1)
    assert ([], True) == (log, health.draining)
    clock.advance(5)
    await shutting

    assert ["stop", "close db"] == log


async def test_slow_consumers_are_cancelled_at_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Consumers still stopping after stop_timeout are cancelled; closing goes on."""
    clock = FakeClock()
    log: Log = []
    health = Health(clock=clock, drain_delay=0)
    cancelled = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    shutting = asyncio.ensure_future(
        health.shutdown(consumers=[stubborn], resources=[Resource("db", log)], stop_timeout=3)
    )
    await clock.wait_for_sleepers(1)
    clock.advance(3)
    await shutting

    await cancelled.wait()
    assert ["close db"] == log
    assert "consumers did not stop within 3 s; cancelled them" in caplog.text


async def test_a_hanging_resource_is_terminated_and_the_rest_still_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A resource that does not close within close_timeout is terminated; the next one closes."""
    clock = FakeClock()
    log: Log = []
    health = Health(clock=clock, drain_delay=0)
    first, stuck = Resource("first", log), Resource("stuck", log, hang=True)

    shutting = asyncio.ensure_future(health.shutdown(resources=[first, stuck], close_timeout=2))
    await clock.wait_for_sleepers(1)
    clock.advance(2)
    await shutting

    assert ["close stuck", "terminate stuck", "close first"] == log
    assert "did not close within 2 s" in caplog.text


async def test_failures_are_logged_and_do_not_stop_the_sequence(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A consumer or resource that raises is logged; every other step still runs."""
    log: Log = []
    health = Health(clock=FakeClock(), drain_delay=0)

    def broken_sync() -> None:
        raise RuntimeError("sync stop failed")

    async def broken_async() -> None:
        raise RuntimeError("async stop failed")

    class BadClose:
        def close(self) -> None:
            raise RuntimeError("close failed")

    with caplog.at_level(logging.WARNING, logger="scalepy.health"):
        await health.shutdown(
            consumers=[broken_sync, broken_async, lambda: log.append("stop ok")],
            resources=[Resource("last", log), BadClose(), Resource("bad", log, fail=True)],
        )

    assert ["stop ok", "close bad", "close last"] == log
    for message in ("sync stop failed", "async stop failed", "close failed", "bad would not close"):
        assert message in caplog.text


async def test_a_failing_terminate_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A hanging resource whose terminate() raises is logged and left behind."""
    clock = FakeClock()

    class Unkillable(Resource):
        def terminate(self) -> None:
            raise RuntimeError("terminate failed")

    health = Health(clock=clock, drain_delay=0)
    shutting = asyncio.ensure_future(
        health.shutdown(resources=[Unkillable("db", [], hang=True)], close_timeout=1)
    )
    await clock.wait_for_sleepers(1)
    clock.advance(1)
    await shutting

    assert "terminate failed" in caplog.text


async def test_startup_opens_resources_then_hooks_then_marks_started() -> None:
    """startup() opens resources in order, runs the hooks, then startup passes."""
    log: Log = []
    health = Health(clock=FakeClock())

    async def create_schema() -> None:
        log.append(f"schema (started: {health.started})")

    await health.startup(
        resources=[Resource("pools", log), SyncResource("redis", log), Resource("queue", log)],
        on_startup=[create_schema],
    )

    assert ["open pools", "open queue", "schema (started: False)"] == log
    assert (Status.PASS, True) == (health.startup_status().status, health.loop_monitor.running)
    await health.aclose()


async def test_failed_startup_closes_what_it_opened() -> None:
    """A failing hook closes the opened resources in reverse and stops the monitor."""
    log: Log = []
    health = Health(clock=FakeClock())

    async def broken() -> None:
        raise RuntimeError("schema migration failed")

    with pytest.raises(RuntimeError, match="schema migration failed"):
        await health.startup(
            resources=[Resource("a", log), Resource("b", log)], on_startup=[broken]
        )

    assert ["open a", "open b", "close b", "close a"] == log
    assert (False, False) == (health.started, health.loop_monitor.running)


async def test_a_resource_failing_to_open_leaves_the_rest_unopened() -> None:
    """When an open() raises, the resources opened before it close; later ones are untouched."""
    log: Log = []

    class Unreachable(Resource):
        async def open(self) -> None:
            raise ConnectionError("database unreachable")

    health = Health(clock=FakeClock())

    with pytest.raises(ConnectionError, match="database unreachable"):
        await health.startup(
            resources=[Resource("a", log), Unreachable("db", log), Resource("c", log)]
        )

    assert ["open a", "close a"] == log


async def test_lifespan_runs_startup_and_shutdown_in_order() -> None:
    """The lifespan helper opens and starts, and on exit drains, stops and closes."""
    log: Log = []
    health = Health(clock=FakeClock(), drain_delay=30)
    lifespan = health.lifespan(
        resources=[Resource("pools", log), Resource("redis", log)],
        consumers=[lambda: log.append("stop worker")],
    )

    async with lifespan(object()):
        log.append(f"serving (ready: {(await health.readiness()).status.value})")

    assert [
        "open pools",
        "open redis",
        "serving (ready: pass)",
        "stop worker",
        "close redis",
        "close pools",
    ] == log
    assert (True, False) == (health.draining, health.loop_monitor.running)


async def test_lifespan_can_hold_the_drain_delay() -> None:
    """With drain_wait=True the lifespan shutdown holds drain_delay before stopping."""
    clock = FakeClock()
    log: Log = []
    health = Health(clock=clock, drain_delay=5)
    lifespan = health.lifespan(consumers=[lambda: log.append("stop")], drain_wait=True)

    async def serve() -> None:
        async with lifespan(object()):
            pass

    running = asyncio.ensure_future(serve())
    await clock.wait_for_sleepers(2)  # the loop monitor and the drain hold
    assert [] == log
    clock.advance(5)
    await running

    assert ["stop"] == log


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"resources": [object()]}, "a resource needs an aclose\\(\\) or close\\(\\) method"),
        ({"consumers": ["worker"]}, "consumers must be callables"),
        ({"stop_timeout": 0}, "stop_timeout must be a finite number > 0"),
        ({"close_timeout": float("inf")}, "close_timeout must be a finite number > 0"),
    ],
)
async def test_bad_shutdown_arguments_are_rejected(
    options: dict[str, object], message: str
) -> None:
    """lifespan() and shutdown() reject what they could not run, before anything happens."""
    health = Health(clock=FakeClock())

    with pytest.raises(ConfigurationError, match=message):
        health.lifespan(**options)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=message):
        await health.shutdown(**options)  # type: ignore[arg-type]
    assert not health.draining


async def test_cancelling_shutdown_cancels_a_stopping_consumer() -> None:
    """A shutdown cancelled while a consumer stops cancels the consumer's stop too."""
    stopping, cancelled = asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        stopping.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    health = Health(clock=FakeClock(), drain_delay=0)
    shutting = asyncio.ensure_future(health.shutdown(consumers=[stubborn]))
    await stopping.wait()
    shutting.cancel()

    with pytest.raises(asyncio.CancelledError):
        await shutting
    await cancelled.wait()


async def test_cancelling_shutdown_cancels_a_closing_resource() -> None:
    """A shutdown cancelled while a resource closes cancels the close too."""
    clock = FakeClock()
    stuck = Resource("stuck", [], hang=True)
    health = Health(clock=clock, drain_delay=0)

    closing = asyncio.ensure_future(health.shutdown(resources=[stuck]))
    await clock.wait_for_sleepers(1)  # the close deadline runs: aclose() is waiting
    closing.cancel()

    with pytest.raises(asyncio.CancelledError):
        await closing
    await stuck.cancelled.wait()


async def test_a_lifespan_given_uncalled_says_to_call_it() -> None:
    """`Starlette(lifespan=health.lifespan)` fails at startup with UsageError showing the call.

    `pools.lifespan` is given uncalled, so newcomers write this; it failed with
    "takes 1 positional argument but 2 were given".
    """
    from starlette.applications import Starlette

    from tests.support.asgi import run_lifespan

    app = Starlette(lifespan=Health().lifespan)  # type: ignore[arg-type]  # the misuse
    with pytest.raises(
        UsageError, match=r"write lifespan=health\.lifespan\(resources=\[\.\.\.\]\)"
    ):
        await run_lifespan(app)
