"""Checks run concurrently within their timeouts; results are cached and shared."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

import pytest

from scalepy.clock import MonotonicClock
from scalepy.health import CHECK_DURATION, CHECK_STATUS, Check, Health, Observation, Status

# The internal runner, tested directly.
from scalepy.health._runner import CheckRunner
from scalepy.telemetry import NOOP
from scalepy.testing import FakeClock, RecordingInstrumentation
from tests.health.probes import Probe

if TYPE_CHECKING:
    from scalepy.health import ProbeResult


def runner(
    *checks: Check,
    clock: FakeClock,
    pass_ttl: float = 10.0,
    fail_ttl: float = 1.0,
    instrumentation: RecordingInstrumentation | None = None,
) -> CheckRunner:
    """A runner on the fake clock, with a fixed wall clock."""
    return CheckRunner(
        checks,
        pass_ttl=pass_ttl,
        fail_ttl=fail_ttl,
        clock=clock,
        instrumentation=instrumentation or NOOP,
        wall_clock=lambda: 1_700_000_000.0,
    )


def check(name: str, probe: Probe, **options: object) -> Check:
    """A check around a test probe."""
    return Check(name=name, probe=probe, **options)  # type: ignore[arg-type]


async def test_results_keep_order_and_status() -> None:
    """Every check's result is reported in the order given, with its observations."""
    clock = FakeClock()
    seen = Observation(measurement="responseTime", value=1.5, unit="ms")
    checks = runner(check("a", Probe(result=seen)), check("b", Probe()), clock=clock)

    report = await checks.report()

    assert Status.PASS == report.status
    assert ["a", "b"] == [result.check.name for result in report.checks]
    assert [(seen,), ()] == [result.observations for result in report.checks]
    assert 1_700_000_000.0 == report.checks[0].time


async def test_slow_check_does_not_delay_the_others_past_its_timeout() -> None:
    """A hanging check fails at its own deadline; the fast one is reported at once."""
    clock = FakeClock()
    slow = Probe(gate=asyncio.Event())
    fast = Probe()
    checks = runner(check("slow", slow, timeout=2.0), check("fast", fast), clock=clock)

    pending = asyncio.ensure_future(checks.report())
    await clock.wait_for_sleepers(1)
    clock.advance(2.0)
    report = await pending

    assert Status.FAIL == report.status
    assert [Status.FAIL, Status.PASS] == [result.status for result in report.checks]
    assert "timed out after 2 s" == report.checks[0].error
    assert 2.0 == report.checks[0].duration


async def test_fast_check_finishes_long_before_a_slow_neighbour_times_out() -> None:
    """On the real clock, a fast check's duration is not stretched by a hanging neighbour."""
    slow = Probe(gate=asyncio.Event())
    checks = CheckRunner(
        (check("slow", slow, timeout=0.5), check("fast", Probe())),
        pass_ttl=1,
        fail_ttl=1,
        clock=MonotonicClock(),
        instrumentation=NOOP,
    )

    report = await checks.report()

    assert 0.5 <= report.checks[0].duration
    assert report.checks[1].duration < 0.25


async def test_each_check_has_its_own_deadline() -> None:
    """Two hanging checks fail at 1 s and 3 s; the report is ready at the later one."""
    clock = FakeClock()
    short, long = Probe(gate=asyncio.Event()), Probe(gate=asyncio.Event())
    checks = runner(
        check("short", short, timeout=1.0), check("long", long, timeout=3.0), clock=clock
    )

    pending = asyncio.ensure_future(checks.report())
    await clock.wait_for_sleepers(2)
    clock.advance(1.0)
    await short.cancelled.wait()  # `short` is given up at its deadline...
    assert (False, False) == (long.cancelled.is_set(), pending.done())  # ...`long` is not
    clock.advance(2.0)
    report = await pending

    assert [Status.FAIL, Status.FAIL] == [result.status for result in report.checks]
    assert ["timed out after 1 s", "timed out after 3 s"] == [r.error for r in report.checks]


async def test_probe_ignoring_cancellation_cannot_hold_the_report() -> None:
    """A probe that swallows cancellation is abandoned at the deadline; aclose() collects it."""
    clock = FakeClock()
    stubborn = Probe(gate=asyncio.Event(), ignore_cancel=True)
    checks = runner(check("stubborn", stubborn, timeout=1.0), clock=clock)

    pending = asyncio.ensure_future(checks.report())
    await clock.wait_for_sleepers(1)
    clock.advance(1.0)
    report = await pending

    assert Status.FAIL == report.status
    assert stubborn.gate is not None
    stubborn.gate.set()  # lets the abandoned probe finish
    await checks.aclose(grace=1.0)


async def test_concurrent_probes_share_one_execution() -> None:
    """200 concurrent readiness probes run each check exactly once."""
    clock = FakeClock()
    gate = asyncio.Event()
    probes = [Probe(gate=gate), Probe(gate=gate)]
    checks = runner(check("a", probes[0]), check("b", probes[1]), clock=clock)

    waiting = [asyncio.ensure_future(checks.report()) for _ in range(200)]
    await probes[1].started.wait()
    gate.set()
    reports = await asyncio.gather(*waiting)

    assert [1, 1] == [probe.runs for probe in probes]
    assert 1 == len({id(report) for report in reports})


async def test_passing_results_are_cached_for_pass_ttl() -> None:
    """A passing result is reused, as the same report object, until pass_ttl has passed."""
    clock = FakeClock()
    probe = Probe()
    checks = runner(check("a", probe), clock=clock, pass_ttl=5.0)

    first = await checks.report()
    clock.advance(4.9)
    again = await checks.report()
    clock.advance(0.1)
    await checks.report()

    assert first is again
    assert 2 == probe.runs


async def test_failing_results_expire_after_fail_ttl_and_only_they_rerun() -> None:
    """A failure is looked at again after fail_ttl; a passing neighbour stays cached."""
    clock = FakeClock()
    good, bad = Probe(), Probe(error=ConnectionError("refused"))
    checks = runner(check("good", good), check("bad", bad), clock=clock, pass_ttl=5, fail_ttl=1)

    assert Status.FAIL == (await checks.report()).status
    clock.advance(1.0)
    bad.error = None
    report = await checks.report()

    assert Status.PASS == report.status
    assert (1, 2) == (good.runs, bad.runs)


async def test_zero_ttl_reruns_every_time() -> None:
    """With both TTLs at 0 every report runs the checks again."""
    clock = FakeClock()
    probe = Probe()
    checks = runner(check("a", probe), clock=clock, pass_ttl=0, fail_ttl=0)

    for _ in range(3):
        await checks.report()

    assert 3 == probe.runs


async def test_invalidate_forgets_results() -> None:
    """After invalidate() the next report runs every check again."""
    clock = FakeClock()
    probe = Probe()
    checks = runner(check("a", probe), clock=clock)

    await checks.report()
    checks.invalidate()
    await checks.report()

    assert 2 == probe.runs


@pytest.mark.parametrize(
    ("critical", "expected"), [(True, Status.FAIL), (False, Status.WARN)], ids=["critical", "not"]
)
async def test_failure_fails_or_warns(critical: bool, expected: Status) -> None:
    """A critical check failing fails the service; a non-critical one only warns.

    The result names the exception's class alone: its text is the driver's.
    """
    clock = FakeClock()
    failing = Probe(error=ConnectionError("postgresql://app:hunter2@db/app refused"))
    checks = runner(check("db", failing, critical=critical), check("ok", Probe()), clock=clock)

    report = await checks.report()

    assert expected == report.status
    assert Status.FAIL == report.checks[0].status
    assert "ConnectionError" == report.checks[0].error


async def test_observation_status_decides_the_check() -> None:
    """The worst observation decides a check's status; a critical warning warns."""
    clock = FakeClock()
    observations = [
        Observation(measurement="responseTime", value=1),
        Observation(measurement="utilization", value=95, status=Status.WARN),
    ]
    checks = runner(check("db", Probe(result=observations)), clock=clock)

    report = await checks.report()

    assert (Status.WARN, Status.WARN) == (report.status, report.checks[0].status)


@pytest.mark.parametrize(
    ("probe", "error"),
    [
        (
            Probe(result=cast("ProbeResult", 42)),
            "the probe returned a value of type 'int'; expected None, an Observation or a list "
            "of them",
        ),
        (
            Probe(result=cast("ProbeResult", ["x"])),
            "the probe returned a value of type 'list'; expected None, an Observation or a list "
            "of them",
        ),
        (Probe(error=TimeoutError()), "TimeoutError"),
        (Probe(error=asyncio.CancelledError()), "the probe was cancelled"),
    ],
    ids=["number", "list-of-strings", "bare-exception", "cancelled-itself"],
)
async def test_misbehaving_probes_fail(probe: Probe, error: str) -> None:
    """A probe returning something else, raising or cancelling itself fails its check."""
    checks = runner(check("x", probe), clock=FakeClock())

    result = (await checks.report()).checks[0]

    assert (Status.FAIL, error) == (result.status, result.error)


async def test_probe_that_is_not_async_fails() -> None:
    """A probe that raises when called, or returns no awaitable, fails its check."""

    def broken() -> None:
        raise RuntimeError("boom")

    def plain() -> int:
        return 1

    checks = runner(
        Check(name="broken", probe=broken),  # type: ignore[arg-type]
        Check(name="plain", probe=plain),  # type: ignore[arg-type]
        clock=FakeClock(),
    )

    report = await checks.report()

    assert ("RuntimeError", "TypeError") == (report.checks[0].error, report.checks[1].error)


async def test_cancelled_probe_request_does_not_cancel_the_refresh() -> None:
    """A probe whose client went away leaves the shared refresh running for the others."""
    clock = FakeClock()
    gate = asyncio.Event()
    probe = Probe(gate=gate)
    checks = runner(check("a", probe), clock=clock)

    leaving = asyncio.ensure_future(checks.report())
    staying = asyncio.ensure_future(checks.report())
    await probe.started.wait()
    leaving.cancel()
    gate.set()
    report = await staying

    assert (Status.PASS, 1) == (report.status, probe.runs)
    assert leaving.cancelled()


async def test_telemetry_records_status_and_duration() -> None:
    """Each run sets the status state set and observes the duration, labelled by check."""
    clock = FakeClock()
    recording = RecordingInstrumentation()
    checks = runner(
        check("db", Probe(error=OSError("down"))),
        clock=clock,
        instrumentation=recording,
    )

    await checks.report()

    status = CHECK_STATUS.name
    assert (0.0, 0.0, 1.0) == (
        recording.value(
            status, {"scalepy.health.check.name": "db", "scalepy.health.check.status": "pass"}
        ),
        recording.value(
            status, {"scalepy.health.check.name": "db", "scalepy.health.check.status": "warn"}
        ),
        recording.value(
            status, {"scalepy.health.check.name": "db", "scalepy.health.check.status": "fail"}
        ),
    )
    assert 1 == recording.count(
        CHECK_DURATION.name,
        {"scalepy.health.check.name": "db", "scalepy.health.check.status": "fail"},
    )
    assert ["scalepy.health.check"] == [span.name for span in recording.spans]
    assert "fail" == recording.spans[0].attributes["scalepy.health.check.status"]


async def test_health_aclose_cancels_a_running_refresh() -> None:
    """Closing the health while checks run cancels them; waiting probes see the cancellation."""
    clock = FakeClock()
    probe = Probe(gate=asyncio.Event())
    health = Health([check("a", probe)], clock=clock)
    health.mark_started()

    waiting = asyncio.ensure_future(health.readiness())
    await probe.started.wait()
    await health.aclose()

    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_no_checks_pass_forever() -> None:
    """Without checks readiness passes and never needs refreshing."""
    checks = runner(clock=FakeClock())

    first = await checks.report()

    assert (Status.PASS, ()) == (first.status, first.checks)
    assert first is await checks.report()
    assert "<CheckRunner checks=0 runs=0>" == repr(checks)
