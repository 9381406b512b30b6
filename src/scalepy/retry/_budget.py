"""`RetryBudget`: retries limited to a fraction of calls, shared by many calls."""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalepy._validation import check_finite
from scalepy.clock import MonotonicClock

if TYPE_CHECKING:
    from scalepy.clock import Clock

__all__ = ("RetryBudget", "RetryBudgetStatistics")

_SCALE = 1_000_000  # tokens are counted in millionths, so deposits of `ratio` add up exactly
_SLICES = 10  # the window is tracked in this many slices; tokens expire slice by slice


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryBudgetStatistics:
    """A snapshot of a `RetryBudget`."""

    calls: int
    """Calls that paid into the budget since it was created."""
    retries: int
    """Retries the budget allowed."""
    rejected: int
    """Retries the budget refused."""
    balance: float
    """Retries the budget would allow right now."""


class RetryBudget:
    """Caps retries at a fraction of calls, shared by every call that uses it.

    Every call deposits `ratio` tokens and every retry withdraws one; a retry
    that finds less than one token is refused. On top of the deposits, a reserve
    of `min_retries_per_second * window` tokens lets a process with few calls
    still retry. Deposits and withdrawals expire after `window` seconds (in
    tenths of it), so the budget follows the recent traffic and refills over
    time. Over any window, retries <= `ratio * calls + min_retries_per_second * window`.

    Safe to share between tasks and threads.

    Args:
        ratio: Retries allowed per call, e.g. 0.2 for one retry per five calls.
        min_retries_per_second: Retries allowed regardless of traffic.
        window: Seconds a deposit or withdrawal counts for.
        clock: The time source; the monotonic clock if `None`.

    Raises:
        ConfigurationError: A negative or non-finite ratio or rate, or a
            window that is not a positive finite number.
    """

    __slots__ = (
        "_calls",
        "_clock",
        "_deposit",
        "_lock",
        "_net",
        "_rejected",
        "_reserve",
        "_retries",
        "_slice_length",
        "_slices",
        "min_retries_per_second",
        "ratio",
        "window",
    )

    def __init__(
        self,
        ratio: float = 0.2,
        min_retries_per_second: float = 10,
        window: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        check_finite("ratio", ratio, minimum=0, inclusive=True)
        check_finite("min_retries_per_second", min_retries_per_second, minimum=0, inclusive=True)
        check_finite("window", window, minimum=0, inclusive=False)
        self.ratio = ratio
        self.min_retries_per_second = min_retries_per_second
        self.window = window
        self._clock = clock or MonotonicClock()
        self._deposit = round(ratio * _SCALE)
        self._reserve = round(min_retries_per_second * window * _SCALE)
        self._slice_length = window / _SLICES
        # [slice number, net tokens added in it], oldest first; `_net` is their sum.
        self._slices: deque[list[int]] = deque()
        self._net = 0
        self._lock = threading.Lock()
        self._calls = 0
        self._retries = 0
        self._rejected = 0

    def deposit(self) -> None:
        """Record one call, adding `ratio` tokens."""
        with self._lock:
            self._calls += 1
            self._add(self._deposit)

    def withdraw(self) -> bool:
        """Take one token for a retry, if there is one.

        Returns:
            Whether the retry may go ahead.
        """
        with self._lock:
            if self._balance() < _SCALE:
                self._rejected += 1
                return False
            self._retries += 1
            self._add(-_SCALE)
            return True

    def statistics(self) -> RetryBudgetStatistics:
        """Return what the budget has counted and what it holds now.

        Returns:
            A frozen snapshot.
        """
        with self._lock:
            balance = self._balance()
            return RetryBudgetStatistics(
                calls=self._calls,
                retries=self._retries,
                rejected=self._rejected,
                balance=balance / _SCALE,
            )

    def _current_slice(self) -> list[int]:
        """Expire slices older than the window and return the current one."""
        number = math.floor(self._clock.now() / self._slice_length)
        slices = self._slices
        while slices and slices[0][0] <= number - _SLICES:
            self._net -= slices.popleft()[1]
        if not slices or slices[-1][0] != number:
            slices.append([number, 0])
        return slices[-1]

    def _add(self, tokens: int) -> None:
        self._current_slice()[1] += tokens
        self._net += tokens

    def _balance(self) -> int:
        self._current_slice()
        return self._reserve + self._net

    def __repr__(self) -> str:
        stats = self.statistics()
        return (
            f"{type(self).__name__}(ratio={self.ratio!r}, "
            f"min_retries_per_second={self.min_retries_per_second!r}, window={self.window!r}, "
            f"balance={stats.balance:.2f}, retries={stats.retries}, rejected={stats.rejected})"
        )
