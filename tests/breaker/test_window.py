"""Sliding windows: the last N calls, and the calls of the last N seconds."""

from __future__ import annotations

import pytest

# The internal sliding windows, tested directly.
from scalepy.breaker._window import CountWindow, TimeWindow


def counts(window: CountWindow | TimeWindow) -> tuple[int, int, int]:
    """Return the window's (calls, failures, slow calls)."""
    return window.calls, window.failures, window.slow_calls


@pytest.mark.parametrize("window_type", [CountWindow, TimeWindow])
def test_size_must_be_positive(window_type: type[CountWindow | TimeWindow]) -> None:
    """A window of fewer than one call or second is refused."""
    with pytest.raises(ValueError, match="size must be >= 1"):
        window_type(0)


@pytest.mark.parametrize("window_type", [CountWindow, TimeWindow])
def test_empty_window_has_zero_rates(window_type: type[CountWindow | TimeWindow]) -> None:
    """An empty window reports no calls and rates of 0.0."""
    window = window_type(3)
    assert (0, 0, 0) == counts(window)
    assert 0.0 == window.failure_rate
    assert 0.0 == window.slow_call_rate


def test_count_window_fills_then_evicts_the_oldest() -> None:
    """The count window keeps the last `size` outcomes and their totals."""
    window = CountWindow(3)
    assert window.record(0.0, True, False)
    assert window.record(0.0, False, True)
    assert (2, 1, 1) == counts(window)
    assert window.record(0.0, True, True)
    assert (3, 2, 2) == counts(window)
    assert 2 / 3 == window.failure_rate
    assert window.record(0.0, False, False)  # evicts the first failure
    assert (3, 1, 2) == counts(window)
    assert window.record(0.0, False, False)  # evicts the slow success
    assert (3, 1, 1) == counts(window)
    assert not window.record(0.0, False, False)  # evicts the slow failure
    assert (3, 0, 0) == counts(window)
    assert not window.record(0.0, False, False)


def test_count_window_keeps_a_lone_slow_call_until_it_leaves() -> None:
    """A slow success is reported until it leaves the window."""
    window = CountWindow(2)
    assert window.record(0.0, False, True)
    assert window.record(0.0, False, False)
    assert 0.5 == window.slow_call_rate
    assert not window.record(0.0, False, False)
    assert (2, 0, 0) == counts(window)


def test_count_window_ignores_time() -> None:
    """Advancing a count window changes nothing."""
    window = CountWindow(2)
    window.record(0.0, True, False)
    window.advance(1e9)
    assert (1, 1, 0) == counts(window)
    assert "CountWindow(size=2, calls=1, failures=1, slow_calls=0)" == repr(window)


def test_time_window_drops_outcomes_older_than_its_seconds() -> None:
    """The time window holds the buckets of the last `size` whole seconds."""
    window = TimeWindow(3)
    assert window.record(10.2, True, False)
    assert window.record(11.9, False, True)
    assert window.record(12.0, False, False)
    assert (3, 1, 1) == counts(window)
    window.advance(12.999)
    assert (3, 1, 1) == counts(window)
    window.advance(13.0)  # second 10 leaves
    assert (2, 0, 1) == counts(window)
    assert not window.record(14.5, False, False)  # second 11 leaves
    assert (2, 0, 0) == counts(window)
    assert 0.0 == window.slow_call_rate


def test_time_window_clears_after_a_long_pause() -> None:
    """A jump of at least `size` seconds empties the window."""
    window = TimeWindow(2)
    window.record(0.0, True, True)
    window.record(1.0, True, False)
    assert 1.0 == window.failure_rate
    assert 0.5 == window.slow_call_rate
    assert not window.record(100.0, False, False)
    assert (1, 0, 0) == counts(window)
    assert "TimeWindow(size=2, calls=1, failures=0, slow_calls=0)" == repr(window)


def test_time_window_counts_a_late_outcome_in_the_newest_bucket() -> None:
    """Time going backwards does not corrupt the totals."""
    window = TimeWindow(2)
    window.record(5.0, False, False)
    window.record(3.0, True, False)
    window.advance(4.0)
    assert (2, 1, 0) == counts(window)
    window.advance(7.0)
    assert (0, 0, 0) == counts(window)
