"""Sliding windows of call outcomes: the last N calls, or the calls of the last N seconds.

Both windows are pure and O(1) per recorded outcome (the time window clears at
most one bucket per elapsed second, and never more than its size), and keep
their totals so the rates are read without a scan. Their counts are public, so
a shared layer can read and flush them.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

__all__ = ("CountWindow", "OutcomeWindow", "TimeWindow")


class OutcomeWindow(Protocol):
    """What the breaker's state machine needs from a window of outcomes."""

    @property
    def size(self) -> int:
        """How many calls (count window) or seconds (time window) the window spans."""
        ...

    @property
    def calls(self) -> int:
        """Calls currently in the window."""
        ...

    @property
    def failures(self) -> int:
        """Failed calls currently in the window."""
        ...

    @property
    def slow_calls(self) -> int:
        """Calls in the window that took longer than the slow-call duration (failed or not)."""
        ...

    @property
    def failure_rate(self) -> float:
        """`failures / calls`, or 0.0 for an empty window."""
        ...

    @property
    def slow_call_rate(self) -> float:
        """`slow_calls / calls`, or 0.0 for an empty window."""
        ...

    def record(self, now: float, failed: bool, slow: bool) -> bool:
        """Add one outcome, ended at `now`.

        Returns:
            Whether the window now holds at least one failed or slow call (if
            not, neither rate can reach a threshold).
        """
        ...

    def advance(self, now: float) -> None:
        """Drop the outcomes that have left the window by `now`."""
        ...


class CountWindow:
    """The outcomes of the last `size` calls.

    Calls are numbered as they are recorded; the window keeps the numbers of its
    failed and of its slow calls in two queues. A success costs one increment,
    and each record drops at most one number (the call leaving the window), so
    every operation is O(1) and the all-success case touches no queue.

    Args:
        size: How many calls the window holds, >= 1.

    Raises:
        ValueError: If `size` is below 1.
    """

    __slots__ = ("_failed", "_seq", "_slow", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self._seq = 0  # calls recorded so far; the window holds numbers seq-size+1 .. seq
        self._failed: deque[int] = deque()
        self._slow: deque[int] = deque()

    @property
    def calls(self) -> int:
        """Calls currently in the window: all of them until it is full, then `size`."""
        return min(self._seq, self.size)

    @property
    def failures(self) -> int:
        """Failed calls currently in the window."""
        return len(self._failed)

    @property
    def slow_calls(self) -> int:
        """Slow calls currently in the window, failed or not."""
        return len(self._slow)

    @property
    def failure_rate(self) -> float:
        """`failures / calls`, or 0.0 for an empty window."""
        calls = self.calls
        return len(self._failed) / calls if calls else 0.0

    @property
    def slow_call_rate(self) -> float:
        """`slow_calls / calls`, or 0.0 for an empty window."""
        calls = self.calls
        return len(self._slow) / calls if calls else 0.0

    def record(self, now: float, failed: bool, slow: bool) -> bool:
        """Add one outcome, evicting the oldest once the window is full.

        Args:
            now: When the call ended (unused: a count window ignores time).
            failed: Whether the call failed.
            slow: Whether the call was slow.

        Returns:
            Whether the window now holds at least one failed or slow call.
        """
        self._seq = seq = self._seq + 1
        failed_calls = self._failed
        slow_calls = self._slow
        if failed:
            failed_calls.append(seq)
        if slow:
            slow_calls.append(seq)
        if not (failed_calls or slow_calls):
            return False
        oldest = seq - self.size  # the call that just left the window
        if failed_calls and failed_calls[0] <= oldest:
            failed_calls.popleft()
        if slow_calls and slow_calls[0] <= oldest:
            slow_calls.popleft()
        return bool(failed_calls or slow_calls)

    def advance(self, now: float) -> None:
        """Do nothing: outcomes leave a count window only when newer ones arrive.

        Args:
            now: The current time (unused).
        """

    def __repr__(self) -> str:
        return (
            f"CountWindow(size={self.size}, calls={self.calls}, failures={self.failures}, "
            f"slow_calls={self.slow_calls})"
        )


class TimeWindow:
    """The outcomes of the calls that ended in the last `size` seconds.

    Outcomes are aggregated in one bucket per whole second of the clock; at time
    `now` the window holds the buckets of seconds `floor(now) - size + 1` to
    `floor(now)`. Time must not go backwards; an outcome recorded at an earlier
    time than the newest one counts in the newest bucket.

    Args:
        size: How many seconds the window spans, >= 1.

    Raises:
        ValueError: If `size` is below 1.
    """

    __slots__ = ("_calls", "_failures", "_head", "_slow", "calls", "failures", "size", "slow_calls")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self.calls = 0
        self.failures = 0
        self.slow_calls = 0
        self._calls = [0] * size
        self._failures = [0] * size
        self._slow = [0] * size
        # The second of the newest bucket; far in the past until the first outcome.
        self._head = -(2**62)

    def advance(self, now: float) -> None:
        """Drop the buckets of seconds that are no longer in the window at `now`.

        Args:
            now: The current time, in seconds.
        """
        second = math.floor(now)
        head = self._head
        if second <= head:
            return
        size = self.size
        if second - head >= size:
            self.calls = self.failures = self.slow_calls = 0
            self._calls = [0] * size
            self._failures = [0] * size
            self._slow = [0] * size
        else:
            for expired in range(head + 1, second + 1):
                i = expired % size
                self.calls -= self._calls[i]
                self.failures -= self._failures[i]
                self.slow_calls -= self._slow[i]
                self._calls[i] = self._failures[i] = self._slow[i] = 0
        self._head = second

    @property
    def failure_rate(self) -> float:
        """`failures / calls`, or 0.0 for an empty window."""
        return self.failures / self.calls if self.calls else 0.0

    @property
    def slow_call_rate(self) -> float:
        """`slow_calls / calls`, or 0.0 for an empty window."""
        return self.slow_calls / self.calls if self.calls else 0.0

    def record(self, now: float, failed: bool, slow: bool) -> bool:
        """Add one outcome to the bucket of the second it ended in.

        Args:
            now: When the call ended, in seconds.
            failed: Whether the call failed.
            slow: Whether the call was slow.

        Returns:
            Whether the window now holds at least one failed or slow call.
        """
        if math.floor(now) > self._head:
            self.advance(now)
        i = self._head % self.size
        self._calls[i] += 1
        self.calls += 1
        if failed:
            self._failures[i] += 1
            self.failures += 1
        if slow:
            self._slow[i] += 1
            self.slow_calls += 1
        return self.failures > 0 or self.slow_calls > 0

    def __repr__(self) -> str:
        return (
            f"TimeWindow(size={self.size}, calls={self.calls}, failures={self.failures}, "
            f"slow_calls={self.slow_calls})"
        )
