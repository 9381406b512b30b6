"""Liveness, readiness and startup of `Health`, and draining."""

from __future__ import annotations

import asyncio

import pytest

from scalepy.errors import ConfigurationError
from scalepy.health import Check, Health, LoopLagMonitor, Status
from scalepy.testing import FakeClock, RecordingInstrumentation
from tests.health.probes import Probe


def check(name: str, probe: Probe, *, critical: bool = True) -> Check:
    """A check around a test probe."""
    return Check(name=name, probe=probe, critical=critical)


async def test_readiness_fails_until_started_without_running_checks() -> None:
    """Before mark_started() readiness fails as "starting" and no check runs."""
    probe = Probe()
    health = Health([check("db", probe)], clock=FakeClock())

    report = await health.readiness()

    assert (Status.FAIL, "starting", 0) == (report.status, report.output, probe.runs)
    assert (Status.FAIL, "starting") == (
        health.startup_status().status,
        health.startup_status().output,
    )


async def test_started_readiness_runs_checks() -> None:
    """After mark_started() startup passes and readiness reflects the checks."""
    health = Health([check("db", Probe(error=OSError("down")), critical=False)], clock=FakeClock())
    health.mark_started()

    report = await health.readiness()

    assert (Status.PASS, True) == (health.startup_status().status, health.started)
    assert Status.WARN == report.status


async def test_liveness_never_runs_checks() -> None:
    """Liveness passes while every dependency fails: it looks at the process only."""
    probe = Probe(error=OSError("down"))
    health = Health([check("db", probe)], clock=FakeClock())
    health.mark_started()

    await health.readiness()
    report = health.liveness()

    assert (Status.PASS, 1) == (report.status, probe.runs)


async def test_mark_broken_fails_liveness_and_readiness() -> None:
    """mark_broken() fails liveness and readiness, with the reason (secrets masked)."""
    recording = RecordingInstrumentation()
    health = Health(clock=FakeClock(), instrumentation=recording)
    health.mark_started()

    health.mark_broken("lost the schema lock")

    assert (Status.FAIL, "broken: lost the schema lock") == (
        health.liveness().status,
        health.liveness().output,
    )
    assert Status.FAIL == (await health.readiness()).status
    assert "lost the schema lock" == health.broken
    assert ["scalepy.health.started", "scalepy.health.broken"] == [
        event.name for event in recording.events
    ]


async def test_liveness_fails_past_max_loop_lag() -> None:
    """A loop lagging more than max_loop_lag fails liveness; less does not."""
    clock = FakeClock()
    monitor = LoopLagMonitor(interval=1.0, clock=clock)
    async with Health(max_loop_lag=5.0, loop_monitor=monitor, clock=clock) as health:
        await clock.wait_for_sleepers(1)
        clock.advance(5.5)  # due at 1 s, not run yet at 5.5 s: 4.5 s late
        assert Status.PASS == health.liveness().status
        clock.advance(1.0)

        report = health.liveness()

        assert (Status.FAIL, "event loop 5.5 s late") == (report.status, report.output)
        assert monitor is health.loop_monitor


async def test_drain_fails_readiness_at_once_and_holds() -> None:
    """drain() fails readiness at once, then returns after drain_delay; liveness still passes."""
    clock = FakeClock()
    health = Health(drain_delay=5.0, clock=clock)
    health.mark_started()

    draining = asyncio.ensure_future(health.drain())
    await clock.wait_for_sleepers(1)
    report = await health.readiness()
    assert (Status.FAIL, "draining", True) == (report.status, report.output, health.draining)
    assert Status.PASS == health.liveness().status
    clock.advance(4.9)
    await asyncio.sleep(0)
    assert not draining.done()
    clock.advance(0.1)
    await draining


async def test_second_drain_waits_only_for_the_first_hold() -> None:
    """A drain called during another one returns when the first hold ends."""
    clock = FakeClock()
    health = Health(drain_delay=5.0, clock=clock)

    first = asyncio.ensure_future(health.drain())
    await clock.wait_for_sleepers(1)
    clock.advance(3.0)
    second = asyncio.ensure_future(health.drain())
    await clock.wait_for_sleepers(2)
    clock.advance(2.0)

    await asyncio.gather(first, second)
    await health.drain()  # after the hold: returns at once
    await health.drain(wait=False)


async def test_details_run_checks_even_when_blocked() -> None:
    """Details show every check while starting, with the blocking reason."""
    probe = Probe()
    health = Health([check("db", probe)], clock=FakeClock())

    report = await health.details()

    assert (Status.FAIL, "starting", 1) == (report.status, report.output, probe.runs)
    assert ["db"] == [result.check.name for result in report.checks]
    health.mark_started()
    assert report.checks == (await health.details()).checks  # cached


async def test_invalidate_reruns_checks() -> None:
    """Health.invalidate() makes the next readiness run every check."""
    probe = Probe()
    health = Health([check("db", probe)], clock=FakeClock())
    health.mark_started()

    await health.readiness()
    health.invalidate()
    await health.readiness()

    assert 2 == probe.runs


async def test_checks_may_come_in_groups() -> None:
    """Checks are given one by one or as iterables (pools.health_checks()), kept in order."""
    a, b, c = (check(name, Probe()) for name in "abc")

    health = Health([a, (x for x in (b, c))])

    assert (a, b, c) == health.checks


@pytest.mark.parametrize(
    ("checks", "message"),
    [
        ("db", "checks must be a list of checks"),
        (None, "checks must be a list of checks"),
        (["db"], "checks must hold Check objects or lists of them"),
        ([[1]], "checks must hold Check objects, got 1"),
        (
            [Check(name="db", probe=Probe()), [Check(name="db", probe=Probe())]],
            "two checks are named 'db'",
        ),
    ],
)
def test_bad_checks_are_rejected(checks: object, message: str) -> None:
    """Anything but checks or groups of checks, or two checks with one name, is rejected."""
    with pytest.raises(ConfigurationError, match=message):
        Health(checks)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pass_ttl": -1}, "pass_ttl must be a finite number >= 0"),
        ({"fail_ttl": float("nan")}, "fail_ttl must be a finite number >= 0"),
        ({"max_loop_lag": 0}, "max_loop_lag must be a finite number > 0"),
        ({"drain_delay": -1}, "drain_delay must be a finite number >= 0"),
        ({"drain_methods": "POST"}, r"drain_methods must be a list of methods: write \['POST'\]"),
        ({"drain_methods": []}, "drain_methods must name at least one HTTP method"),
        ({"drain_methods": ["DELETE"]}, "drain_methods may hold 'GET', 'POST' and 'PUT'"),
        ({"prefix": "health"}, "prefix must be a path starting with '/'"),
        ({"metrics_path": "/health/metrics"}, "collides with the health endpoints"),
        ({"prefix": "/", "metrics_path": "/"}, "collides with the health endpoints"),
        ({"details_token": ""}, "details_token must be a non-empty string or None"),
        ({"drain_token": ""}, "drain_token must be a non-empty string or None"),
        ({"public_details": True, "details_token": "t"}, "public_details shows the details"),
    ],
)
def test_bad_options_are_rejected(options: dict[str, object], message: str) -> None:
    """Durations, drain methods, paths and tokens are checked at construction."""
    with pytest.raises(ConfigurationError, match=message):
        Health(**options)  # type: ignore[arg-type]


async def test_repr_shows_the_state() -> None:
    """repr() shows the life-cycle state, the checks, how many runs and the lag."""
    health = Health([check("db", Probe())], clock=FakeClock())
    assert "<Health starting checks=1 runs=0 lag=0.000s>" == repr(health)
    health.mark_started()
    await health.readiness()
    assert "<Health started checks=1 runs=1 lag=0.000s>" == repr(health)
    await health.drain(wait=False)
    assert "<Health draining checks=1 runs=1 lag=0.000s>" == repr(health)
    health.mark_broken("x")
    assert "<Health broken checks=1 runs=1 lag=0.000s>" == repr(health)
