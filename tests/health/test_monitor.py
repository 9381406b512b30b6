"""The event-loop lag monitor measures how late the loop runs what is due."""

from __future__ import annotations

import time

import pytest

from scalepy.errors import ConfigurationError
from scalepy.health import LOOP_LAG, LoopLagMonitor
from scalepy.testing import FakeClock, RecordingInstrumentation


async def test_lag_is_how_late_the_wake_up_came() -> None:
    """A wake-up 0.3 s after its due time is a lag of 0.3 s, recorded as a gauge."""
    clock = FakeClock()
    recording = RecordingInstrumentation()
    monitor = LoopLagMonitor(interval=1.0, clock=clock, instrumentation=recording)
    monitor.start()
    await clock.wait_for_sleepers(1)

    clock.advance(1.3)
    await clock.wait_for_sleepers(1)  # the next sample sleeps: the first was taken

    assert 1 == monitor.samples
    assert pytest.approx(0.3) == monitor.lag()
    assert pytest.approx(0.3) == recording.value(LOOP_LAG.name)
    assert pytest.approx(0.3) == monitor.max_lag
    await monitor.aclose()


async def test_an_overdue_wake_up_counts_before_it_happens() -> None:
    """While a wake-up is overdue, lag() already reports how overdue it is."""
    clock = FakeClock()
    async with LoopLagMonitor(interval=0.5, clock=clock) as monitor:
        monitor.start()
        await clock.wait_for_sleepers(1)
        clock.advance(0.4)
        assert 0.0 == monitor.lag()
        clock.advance(20.0)  # the monitor cannot run before this test yields: a stalled loop

        assert pytest.approx(19.9) == monitor.lag()


async def test_not_running_reports_no_lag() -> None:
    """Before start() and after aclose() the lag is 0 and nothing runs."""
    clock = FakeClock()
    monitor = LoopLagMonitor(clock=clock)
    assert (False, 0.0) == (monitor.running, monitor.lag())

    monitor.start()
    monitor.start()  # idempotent
    await clock.wait_for_sleepers(1)
    await monitor.aclose()

    assert (False, 0.0, 0) == (monitor.running, monitor.lag(), clock.sleepers)
    await monitor.aclose()  # idempotent


async def test_blocking_the_real_loop_shows_up() -> None:
    """A loop blocked by synchronous code for 0.3 s reports at least that much lag."""
    async with LoopLagMonitor(interval=0.05) as monitor:
        monitor.start()
        time.sleep(0.3)  # noqa: ASYNC251 - a blocked loop is the behaviour under test

        assert 0.2 <= monitor.lag()


def test_repr() -> None:
    """repr() shows whether it runs, the lag, the maximum and the samples."""
    assert "<LoopLagMonitor running=False lag=0.000s max=0.000s samples=0>" == repr(
        LoopLagMonitor()
    )


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf")])
def test_interval_must_be_positive(interval: float) -> None:
    """The sampling interval must be a finite number > 0."""
    with pytest.raises(ConfigurationError, match="interval must be a finite number > 0"):
        LoopLagMonitor(interval=interval)
