"""The pure state machine: hand-checked transitions driven by the time passed in."""

from __future__ import annotations

from typing import Any

import pytest

from scalepy.breaker import BreakerConfig, BreakerState

# The pure core, tested directly.
from scalepy.breaker._state import BreakerCore
from scalepy.errors import ConfigurationError

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN
DISABLED = BreakerState.DISABLED
FORCED_OPEN = BreakerState.FORCED_OPEN


class Recorder:
    """Collects the transitions a core reports."""

    def __init__(self) -> None:
        self.events: list[tuple[BreakerState, BreakerState, float]] = []

    def __call__(self, previous: BreakerState, state: BreakerState, now: float) -> None:
        """Remember one transition."""
        self.events.append((previous, state, now))


def make(**options: Any) -> tuple[BreakerCore, Recorder]:
    """Return a core with small defaults, and the recorder of its transitions."""
    settings: dict[str, Any] = {
        "minimum_calls": 4,
        "window_size": 4,
        "open_for": 10.0,
        "permitted_calls_in_half_open": 2,
        "slow_call_duration": 1.0,
    }
    settings.update(options)
    recorder = Recorder()
    return BreakerCore(BreakerConfig(**settings), on_transition=recorder), recorder


def call(core: BreakerCore, now: float, *, failed: bool = False, duration: float = 0.1) -> bool:
    """Acquire, and record the outcome if admitted; return whether it was admitted."""
    if not core.acquire(now):
        return False
    core.record(now + duration, duration, failed, core.generation)
    return True


def trip(core: BreakerCore, now: float = 0.0) -> None:
    """Open a core built by `make()` with four failures."""
    for _ in range(4):
        call(core, now, failed=True, duration=0.0)
    assert OPEN == core.state


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"failure_rate_threshold": 0.0}, "failure_rate_threshold must be in"),
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold must be in"),
        ({"slow_call_rate_threshold": 0.0}, "slow_call_rate_threshold must be in"),
        ({"slow_call_duration": 0.0}, "slow_call_duration must be"),
        ({"open_for": float("inf")}, "open_for must be"),
        ({"max_wait_in_half_open": -1.0}, "max_wait_in_half_open must be"),
        ({"minimum_calls": 0}, "minimum_calls must be an int >= 1"),
        ({"window_size": 2.5}, "window_size must be an int >= 1"),
        ({"permitted_calls_in_half_open": True}, "permitted_calls_in_half_open must be"),
        ({"window_type": "sliding"}, "window_type must be 'count' or 'time'"),
        ({"minimum_calls": 5, "window_size": 4}, r"minimum_calls \(5\) must be <= window_size"),
        ({"backoff": 0.5}, "backoff must be a finite number >= 1"),
        ({"backoff": 2.0}, "open_for_max is required when backoff > 1"),
        ({"open_for": 10.0, "open_for_max": 5.0}, "open_for_max must be a finite number >="),
    ],
)
def test_config_rejects_invalid_values(options: dict[str, Any], message: str) -> None:
    """Each invalid option is refused with a message saying what is allowed."""
    with pytest.raises(ConfigurationError, match=message):
        BreakerConfig(**options)


def test_time_window_allows_minimum_above_its_size() -> None:
    """A time window may need more calls than it has seconds."""
    config = BreakerConfig(window_type="time", window_size=10, minimum_calls=50)
    assert "TimeWindow" == type(config.new_window()).__name__


def test_closed_judges_only_after_minimum_calls() -> None:
    """Failures below the minimum number of calls do not open the breaker."""
    core, recorder = make()
    for _ in range(3):
        assert call(core, 0.0, failed=True)
    assert CLOSED == core.state
    assert call(core, 1.0, failed=False)  # 3 failures of 4 calls: 75 % >= 50 %
    assert OPEN == core.state
    assert [(CLOSED, OPEN, 1.1)] == recorder.events
    assert 1 == core.generation


def test_failure_rate_below_threshold_stays_closed() -> None:
    """A failure rate below the threshold keeps the breaker closed."""
    core, _ = make(failure_rate_threshold=0.75)
    for failed in (True, False, True, False, True, False):
        call(core, 0.0, failed=failed)
    assert CLOSED == core.state
    assert 0.5 == core.window.failure_rate


def test_slow_calls_open_the_breaker() -> None:
    """A slow-call rate at its threshold opens the breaker, even without failures."""
    core, _ = make(slow_call_rate_threshold=0.5)
    call(core, 0.0, duration=1.0)  # exactly the slow duration: not slow
    call(core, 0.0, duration=1.5)
    call(core, 0.0)
    assert CLOSED == core.state
    call(core, 0.0, duration=2.0)
    assert OPEN == core.state
    assert 2 == core.window.slow_calls


def test_open_rejects_until_the_wait_has_passed() -> None:
    """OPEN rejects with the rest of the wait, then lets a trial through."""
    core, recorder = make()
    trip(core, now=5.0)
    assert 10.0 == core.retry_after(5.0)
    assert not core.acquire(14.0)
    assert 1.0 == pytest.approx(core.retry_after(14.0))
    assert 1 == core.rejected
    assert core.acquire(15.1)
    assert HALF_OPEN == core.state
    assert (OPEN, HALF_OPEN, 15.1) == recorder.events[-1]
    assert 0.0 == core.retry_after(15.1)


def test_half_open_admits_only_the_permitted_trials() -> None:
    """HALF_OPEN admits `permitted_calls_in_half_open` trials and rejects the rest."""
    core, _ = make()
    trip(core)
    assert core.acquire(10.1)
    assert core.acquire(10.1)
    assert not core.acquire(10.1)
    assert 2 == core.in_flight
    core.release(core.generation)  # an ignored trial frees its permit
    assert core.acquire(10.2)
    assert not core.acquire(10.2)


def test_passing_trials_close_the_breaker() -> None:
    """When every trial completes below the thresholds, the breaker closes afresh."""
    core, recorder = make()
    trip(core)
    assert call(core, 10.0)
    assert HALF_OPEN == core.state
    assert call(core, 10.0, failed=True)  # 1 of 2 failed: 50 % >= 50 % reopens
    assert OPEN == core.state
    assert call(core, 20.3)
    assert call(core, 20.3)
    assert CLOSED == core.state
    assert 0 == core.window.calls
    assert [CLOSED, OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED] == [
        recorder.events[0][0],
        *(to for _, to, _ in recorder.events),
    ]


def test_wait_in_open_grows_until_its_cap_and_resets_on_close() -> None:
    """Each failed half-open trial multiplies the wait, up to `open_for_max`."""
    core, _ = make(backoff=2.0, open_for_max=30.0, permitted_calls_in_half_open=1)
    trip(core)
    waits = [core.open_wait]
    now = 0.0
    for _ in range(3):
        now += core.open_wait
        assert call(core, now, failed=True, duration=0.0)
        waits.append(core.open_wait)
    assert [10.0, 20.0, 30.0, 30.0] == waits
    assert not core.acquire(now + 29.0)
    now += 30.0
    assert call(core, now)
    assert CLOSED == core.state
    assert 10.0 == core.open_wait


def test_max_wait_in_half_open_reopens() -> None:
    """HALF_OPEN that waits too long for its trials opens again, with a grown wait."""
    core, recorder = make(max_wait_in_half_open=5.0, backoff=2.0, open_for_max=100.0)
    trip(core)
    assert core.acquire(10.0)
    stale = core.generation
    assert HALF_OPEN == core.update(14.9)
    assert not core.acquire(15.0)
    assert OPEN == core.state
    assert 20.0 == core.open_wait
    core.record(15.0, 5.0, False, stale)  # the stuck trial finally ends: dropped
    core.release(stale)
    assert OPEN == core.state
    assert 0 == core.window.calls  # the trial window, kept while OPEN
    assert OPEN == core.update(34.9)
    assert HALF_OPEN == core.update(35.0)
    assert OPEN == core.update(40.0)
    assert 40.0 == core.open_wait
    assert 5 == len(recorder.events)


def test_stale_outcomes_are_dropped() -> None:
    """An outcome admitted before a transition does not count after it."""
    core, _ = make()
    assert core.acquire(0.0)
    stale = core.generation
    trip(core)
    core.record(10.5, 10.5, False, stale)
    assert core.acquire(10.5)
    core.record(10.6, 0.1, False, stale)
    assert 0 == core.window.calls
    assert 1 == core.in_flight


def test_outcomes_outside_closed_and_half_open_are_dropped() -> None:
    """OPEN, DISABLED and FORCED_OPEN record nothing."""
    core, _ = make()
    trip(core)
    core.record(1.0, 0.1, True)
    assert 4 == core.window.calls
    core.transition_to(DISABLED, 2.0)
    core.record(2.0, 0.1, True)
    assert 4 == core.window.calls


def test_record_without_generation_counts_in_half_open() -> None:
    """Without a generation, an outcome in HALF_OPEN is a trial even if never acquired."""
    core, _ = make()
    trip(core)
    core.update(10.0)
    core.record(10.0, 0.1, False)
    core.release()
    core.record(10.0, 0.1, False)
    assert CLOSED == core.state


def test_forced_open_and_disabled_are_left_only_explicitly() -> None:
    """FORCED_OPEN always rejects; DISABLED always admits and never opens."""
    core, recorder = make()
    assert core.transition_to(FORCED_OPEN, 0.0)
    assert not core.transition_to(FORCED_OPEN, 0.0)
    assert not core.acquire(1e9)
    assert 0.0 == core.retry_after(1.0)
    assert FORCED_OPEN == core.update(1e9)
    assert core.transition_to(DISABLED, 1.0)
    for _ in range(10):
        assert call(core, 2.0, failed=True)
    assert DISABLED == core.state
    core.reset(3.0)
    assert CLOSED == core.state
    assert [
        (CLOSED, FORCED_OPEN, 0.0),
        (FORCED_OPEN, DISABLED, 1.0),
        (DISABLED, CLOSED, 3.0),
    ] == recorder.events
    assert 1 == core.rejected
    assert 3 == core.transitions


def test_reset_when_closed_empties_the_window_silently() -> None:
    """Resetting a CLOSED breaker clears its window without a transition."""
    core, recorder = make()
    call(core, 0.0, failed=True)
    core.reset(1.0)
    assert 0 == core.window.calls
    assert [] == recorder.events
    assert 0 == core.generation


def test_explicit_open_keeps_the_current_wait() -> None:
    """Moving to OPEN explicitly starts a wait of the current length."""
    core, _ = make()
    core.transition_to(OPEN, 3.0)
    assert 3.0 == core.opened_at
    assert 10.0 == core.retry_after(3.0)
    assert "BreakerCore(state=open, generation=1, window=CountWindow(" in repr(core)


def test_core_without_callback() -> None:
    """A core without a transition callback still transitions."""
    core = BreakerCore(BreakerConfig(minimum_calls=1, window_size=1))
    core.record(0.0, 0.0, True)
    assert OPEN == core.state


def test_state_labels() -> None:
    """Each state has a lowercase label and its gauge level as value."""
    assert ["closed", "open", "half_open", "disabled", "forced_open"] == [
        state.label for state in BreakerState
    ]
    assert [0, 1, 2, 3, 4] == [state.value for state in BreakerState]
