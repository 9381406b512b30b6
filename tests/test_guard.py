"""BackendGuard: opens after consecutive failures, probes once, backs off, recovers."""

from __future__ import annotations

from typing import Any

import pytest

from scalepy.backends.guard import BackendGuard
from scalepy.errors import ConfigurationError
from scalepy.testing import FakeClock


def test_stays_closed_until_the_threshold_of_consecutive_failures() -> None:
    """Failures below the threshold, or interrupted by a success, keep it closed."""
    guard = BackendGuard(failure_threshold=3, clock=FakeClock())
    guard.record_failure()
    guard.record_failure()
    guard.record_success()
    guard.record_failure()
    guard.record_failure()
    assert guard.available()
    assert "closed" in repr(guard)
    assert 0.0 == guard.retry_after
    guard.record_failure()
    assert guard.is_open
    assert not guard.available()


def test_one_probe_after_the_delay_and_success_closes() -> None:
    """After the delay exactly one caller probes; its success closes the guard."""
    clock = FakeClock()
    guard = BackendGuard(failure_threshold=1, initial_delay=0.5, clock=clock)
    guard.record_failure()
    assert 0.5 == guard.retry_after
    clock.advance(0.49)
    assert not guard.available()
    clock.advance(0.01)
    assert [True, False, False] == [guard.available() for _ in range(3)]
    assert "probing" in repr(guard)
    guard.record_success()
    assert guard.available()
    assert "closed" in repr(guard)


def test_failed_probes_double_the_delay_up_to_the_cap() -> None:
    """Each failed probe doubles the delay, never beyond max_delay."""
    clock = FakeClock()
    guard = BackendGuard(failure_threshold=1, initial_delay=1.0, max_delay=3.0, clock=clock)
    guard.record_failure()
    delays = []
    for _ in range(4):
        delays.append(guard.retry_after)
        clock.advance(guard.retry_after)
        assert guard.available()
        guard.record_failure()
    assert [1.0, 2.0, 3.0, 3.0] == delays
    assert "open" in repr(guard)


def test_late_failures_do_not_extend_an_open_guard() -> None:
    """Failures of calls that started before it opened leave the retry time alone."""
    clock = FakeClock()
    guard = BackendGuard(failure_threshold=1, initial_delay=1.0, clock=clock)
    guard.record_failure()
    clock.advance(0.5)
    guard.record_failure()
    assert 0.5 == guard.retry_after


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"initial_delay": 0}, "delays"),
        ({"initial_delay": 5, "max_delay": 1}, "delays"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    """Thresholds and delays are checked at construction."""
    with pytest.raises(ConfigurationError, match=message):
        BackendGuard(**options)
