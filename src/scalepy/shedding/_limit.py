"""What every concurrency-limit algorithm shares: the sample it learns from, its contract, bounds.

An algorithm is two things. Its *policy* is frozen, validated configuration
(`Gradient`, `AIMD`) that users pass to `LoadShedder`; `policy.start()` builds its
*core*, the small mutable object that turns each `Sample` into a new limit. Cores
never read a clock, await or lock: the shedder measures, and a core decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from scalepy._validation import check_int
from scalepy.errors import ConfigurationError

__all__ = ("LimitBounds", "LimitCore", "LimitPolicy", "Sample", "check_fraction", "clamp")


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """What the calls that finished during one sampling window saw."""

    rtt: float
    """Their mean duration in seconds, from taking a slot to completion.

    Waiting in line is excluded; a waiter's duration counts from when its slot was
    handed over, so the event loop's delay before its task runs is included.
    """
    in_flight: int
    """The most calls running at once while they ran."""
    dropped: bool
    """Whether any of them failed in a way that signals overload (a timeout, a 503)."""


class LimitCore(Protocol):
    """The live state of a limit algorithm: one `update()` per sample."""

    @property
    def limit(self) -> float:
        """The current concurrency limit; the shedder admits `int(limit)` calls at once."""
        ...

    def update(self, sample: Sample) -> float:
        """Learn from one sample and return the new limit.

        Args:
            sample: What the calls of the last window saw.

        Returns:
            The new limit, within the policy's `[min_limit, max_limit]`.
        """
        ...


class LimitPolicy(Protocol):
    """A limit algorithm's configuration; `Gradient` and `AIMD` are two."""

    @property
    def initial_limit(self) -> int:
        """The limit the algorithm starts from (`Gradient`: once its first probe ended)."""
        ...

    def start(self) -> LimitCore:
        """Return a fresh core, starting from `initial_limit`.

        Returns:
            The algorithm's state, to be fed samples.
        """
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitBounds:
    """Where a limit starts and the range it stays in; every policy has these fields.

    Raises:
        ConfigurationError: Unless `1 <= min_limit <= initial_limit <= max_limit`.
    """

    initial_limit: int = 20
    """The limit the algorithm starts from; in `[min_limit, max_limit]`."""
    min_limit: int = 1
    """The limit never goes below this; >= 1."""
    max_limit: int = 1000
    """The limit never goes above this; >= `initial_limit`."""

    def __post_init__(self) -> None:
        for name in ("initial_limit", "min_limit", "max_limit"):
            check_int(name, getattr(self, name))
        if not self.min_limit <= self.initial_limit <= self.max_limit:
            raise ConfigurationError(
                "the limits must satisfy min_limit <= initial_limit <= max_limit, got "
                f"{self.min_limit} <= {self.initial_limit} <= {self.max_limit}"
            )


def check_fraction(name: str, value: object, *, upper_inclusive: bool) -> None:
    """Raise `ConfigurationError` unless `value` is a number in (0, 1] or (0, 1)."""
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
        and (value <= 1 if upper_inclusive else value < 1)
    )
    if not ok:
        interval = "(0, 1]" if upper_inclusive else "(0, 1)"
        raise ConfigurationError(f"{name} must be a number in {interval}, got {value!r}")


def clamp(value: float, low: float, high: float) -> float:
    """`value` limited to `[low, high]`."""
    return low if value < low else min(value, high)
