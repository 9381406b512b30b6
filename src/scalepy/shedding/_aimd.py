"""`AIMD`: additive increase, multiplicative decrease, driven by drops and timeouts.

The loss-based algorithm of TCP Reno, as Netflix concurrency-limits' `AIMDLimit`:
a sample with a drop (a call failed with an overload signal) or whose mean RTT
exceeds `timeout` multiplies the limit by `backoff`; a sample that used at least
half the limit adds `increase`; any other sample leaves it alone. Simpler and
more predictable than `Gradient`, but blind to latency below `timeout`.
"""

from __future__ import annotations

from dataclasses import dataclass

from scalepy._validation import check_finite
from scalepy.shedding._limit import LimitBounds, Sample, check_fraction, clamp

__all__ = ("AIMD", "AIMDCore")


@dataclass(frozen=True, slots=True, kw_only=True)
class AIMD(LimitBounds):
    """Configuration of the additive-increase, multiplicative-decrease limit.

    The bounds (`initial_limit`, `min_limit`, `max_limit`) are `LimitBounds`'.

    Raises:
        ConfigurationError: If a field holds a value that is not allowed; the
            message says what is.
    """

    backoff: float = 0.9
    """The factor a drop multiplies the limit by; in (0, 1)."""
    increase: float = 1.0
    """What a sample that used the limit adds to it; > 0."""
    timeout: float = 5.0
    """A sample whose mean RTT exceeds this many seconds counts as a drop; > 0."""

    def __post_init__(self) -> None:
        LimitBounds.__post_init__(self)  # no bare super(): slotted dataclasses are rebuilt
        check_fraction("backoff", self.backoff, upper_inclusive=False)
        check_finite("increase", self.increase)
        check_finite("timeout", self.timeout)

    def start(self) -> AIMDCore:
        """Return a fresh core at `initial_limit`.

        Returns:
            The AIMD algorithm's state.
        """
        return AIMDCore(self)


class AIMDCore:
    """The AIMD algorithm's state: the limit alone.

    Args:
        config: The policy it follows.
    """

    __slots__ = ("_config", "limit")

    def __init__(self, config: AIMD) -> None:
        self._config = config
        self.limit: float = config.initial_limit
        """The current limit."""

    def update(self, sample: Sample) -> float:
        """Learn from one sample and return the new limit.

        Args:
            sample: What the calls of the last window saw.

        Returns:
            The new limit, within `[min_limit, max_limit]`.
        """
        config = self._config
        limit = self.limit
        if sample.dropped or sample.rtt > config.timeout:
            limit *= config.backoff
        elif sample.in_flight * 2 >= limit:
            limit += config.increase
        else:
            return limit
        self.limit = clamp(limit, config.min_limit, config.max_limit)
        return self.limit

    def __repr__(self) -> str:
        return f"<{type(self).__name__} limit={self.limit:.2f}>"
