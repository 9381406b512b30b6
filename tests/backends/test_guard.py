"""BackendGuard: opens after consecutive failures, probes once, backs off, recovers."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from scalepy.backends.guard import BackendGuard
from scalepy.errors import BackendCommandError, BackendUnavailable, ConfigurationError
from scalepy.testing import FakeClock

DOWN = BackendUnavailable("could not connect: refused", backend="redis://app:***@cache:6379/0")


def logged(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    """The level and message of each record the guards logged."""
    return [
        (record.levelno, record.getMessage())
        for record in caplog.records
        if record.name == "scalepy.backends"
    ]


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
        ({"log_interval": -1}, "log_interval"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    """Thresholds and delays are checked at construction."""
    with pytest.raises(ConfigurationError, match=message):
        BackendGuard(**options)


def test_a_named_guard_logs_once_when_degraded_and_once_when_recovered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A WARNING (masked URL, cause) at the first failure, an INFO at the next success.

    The failures in between and the successes after log nothing.
    """
    guard = BackendGuard(failure_threshold=1, clock=FakeClock(), name="cache 'todo'")
    with caplog.at_level(logging.INFO, logger="scalepy.backends"):
        for _ in range(5):
            guard.record_failure(DOWN)
        guard.record_success()
        guard.record_success()

    assert [
        (
            logging.WARNING,
            "cache 'todo' is degraded: redis://app:***@cache:6379/0 failed (BackendUnavailable: "
            "could not connect: refused); it follows its failure policy until the backend "
            "answers again",
        ),
        (logging.INFO, "cache 'todo' recovered: redis://app:***@cache:6379/0 answers again"),
    ] == logged(caplog)


def test_a_flapping_backend_logs_at_most_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Within log_interval a new outage stays quiet; past it, a still-failing backend is logged."""
    clock = FakeClock()
    guard = BackendGuard(clock=clock, name="limiter", log_interval=60.0)
    with caplog.at_level(logging.INFO, logger="scalepy.backends"):
        for _ in range(3):  # three outages within a minute: one WARNING and its INFO
            guard.record_failure(DOWN)
            clock.advance(1.0)
            guard.record_success()
        guard.record_failure(DOWN)  # a fourth outage, begun in the quiet spell, lasts
        clock.advance(60.0)
        guard.record_failure(DOWN)

    assert [logging.WARNING, logging.INFO, logging.WARNING] == [
        level for level, _ in logged(caplog)
    ]


def test_an_unnamed_guard_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """Guards without a name (the breaker's, the pools') keep quiet, as before."""
    guard = BackendGuard(clock=FakeClock())
    with caplog.at_level(logging.INFO, logger="scalepy.backends"):
        guard.record_failure(DOWN)
        guard.record_success()
    assert [] == logged(caplog)


class Store:
    """A store whose ping fails with `error` (or answers when it is None)."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error

    async def ping(self) -> None:
        """Answer, or raise the error."""
        if self.error is not None:
            raise self.error


async def test_ping_raises_backend_unavailable_naming_the_cause() -> None:
    """A refused login raises BackendUnavailable naming the masked URL and the cause.

    A store without ping() passes; a ping that answers closes the guard.
    """
    guard = BackendGuard(failure_threshold=1, clock=FakeClock(), name="cache 'todo'")
    refused = BackendCommandError("WRONGPASS invalid password", backend="redis://:***@h:1/0")
    with pytest.raises(BackendUnavailable) as raised:
        await guard.ping(Store(refused))
    assert (
        "cache 'todo' cannot use its backend: BackendCommandError: WRONGPASS invalid password",
        "redis://:***@h:1/0",
        refused,
    ) == (raised.value.message, raised.value.backend, raised.value.__cause__)
    assert guard.is_open
    await guard.ping(object())
    await guard.ping(Store(None))
    assert not guard.is_open
