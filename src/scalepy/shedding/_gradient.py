"""`Gradient`: a limit that follows the ratio of long-term to short-term latency.

In the spirit of Netflix concurrency-limits' Gradient2. Each sample's mean
round-trip time (the short-term RTT) is compared with an exponential average
over many samples (the long-term RTT):

```
gradient  = clamp(tolerance * long_rtt / short_rtt, 0.5, 1.0)
target    = (limit + headroom(limit)) * gradient     # headroom: sqrt(limit) by default
limit     = clamp(limit + smoothing * (target - limit), min_limit, max_limit)
```

(Gradient2 adds the headroom after scaling, `limit * gradient + headroom`, which
keeps the limit above 4 however slow the calls: too many for a handler that
burns CPU. Scaled with the rest, the headroom lets the limit go down to 1.)

While latency stays within `tolerance` of its long-term level the gradient is 1
and the limit grows by the headroom, which probes for more capacity; once calls
queue inside the process (latency rises) the gradient falls below 1 and the limit
shrinks, at most by half per sample. A sample with fewer than half the limit in
flight says nothing about capacity (the service is not using the limit): it
moves the limit not at all, the long-term RTT only down.

Unlike Gradient2's, this long-term RTT is the no-queueing latency: it drops at once
to any faster sample, and rises only with uncongested samples (within `tolerance`
of it), averaged over `long_window`. Under sustained overload every sample is
congested, and a long-term RTT that followed them would drift up, the limit with
it, and latency without bound. One rule lets it rise further:

- the limit sits at its floor (halving it no longer lowers it) and latency is still
  over twice `tolerance` times the long-term RTT for `patience` samples in a row:
  shedding cannot bring latency down, so it is not queueing but the service itself
  that got slower (a slow dependency). The short-term RTT becomes the new long-term
  one, and the limit grows again from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scalepy._validation import check_finite, check_int
from scalepy.shedding._limit import LimitBounds, Sample, check_fraction, clamp

__all__ = ("Gradient", "GradientCore")

_MIN_GRADIENT = 0.5  # a sample halves the limit at most: one noisy window cannot collapse it


@dataclass(frozen=True, slots=True, kw_only=True)
class Gradient(LimitBounds):
    """Configuration of the gradient limit (the default algorithm of `LoadShedder`).

    It grows by about sqrt(limit) per sample while latency allows. A process that may
    start under overload should start low (`initial_limit=1`): its first sample then
    measures the latency without queueing, where one taken at 20 calls in flight
    would pass queueing for the norm until a faster sample comes.

    The bounds (`initial_limit`, `min_limit`, `max_limit`) are `LimitBounds`'.

    Raises:
        ConfigurationError: If a field holds a value that is not allowed; the
            message says what is.
    """

    tolerance: float = 1.5
    """How much the short-term RTT may exceed the long-term one before the limit shrinks; >= 1."""
    smoothing: float = 0.2
    """How far each sample moves the limit toward its target; in (0, 1]."""
    long_window: int = 600
    """Samples the long-term RTT averages over (an exponential average); >= 1.

    Long enough that sustained overload does not pass for the normal latency, short
    enough that a lasting change of the normal latency (a slower dependency) is learned.
    """
    headroom: int | None = None
    """Calls allowed to queue beyond the estimate, the growth per sample; `None`: sqrt(limit)."""
    patience: int = 5
    """Samples at the floor, still too slow, before a slower latency is the new normal; >= 1."""

    def __post_init__(self) -> None:
        LimitBounds.__post_init__(self)  # no bare super(): slotted dataclasses are rebuilt
        check_finite("tolerance", self.tolerance, minimum=1, inclusive=True)
        check_fraction("smoothing", self.smoothing, upper_inclusive=True)
        check_int("long_window", self.long_window)
        check_int("patience", self.patience)
        if self.headroom is not None:
            check_int("headroom", self.headroom, minimum=0)

    def start(self) -> GradientCore:
        """Return a fresh core at `initial_limit`.

        Returns:
            The gradient algorithm's state.
        """
        return GradientCore(self)


class GradientCore:
    """The gradient algorithm's state: the limit and the long-term RTT.

    Args:
        config: The policy it follows.
    """

    __slots__ = ("_alpha", "_config", "_pinned", "limit", "long_rtt")

    def __init__(self, config: Gradient) -> None:
        self._config = config
        self._alpha = 2 / (config.long_window + 1)
        self.limit: float = config.initial_limit
        """The current limit."""
        self.long_rtt: float = math.nan
        """The long-term RTT in seconds; NaN until the first sample that counts."""
        self._pinned = 0  # samples in a row at the floor and still too slow

    def update(self, sample: Sample) -> float:
        """Learn from one sample and return the new limit.

        Args:
            sample: What the calls of the last window saw.

        Returns:
            The new limit, within `[min_limit, max_limit]`.
        """
        config = self._config
        limit = self.limit
        short = sample.rtt
        if short <= 0:
            return limit
        long = self.long_rtt
        if math.isnan(long) or short < long:  # the fastest the service has been: no queueing
            long = self.long_rtt = short
        if sample.in_flight * 2 < limit:
            return limit  # the limit is not in use: nothing learned about capacity
        if short <= config.tolerance * long:  # uncongested: the normal latency
            long += self._alpha * (short - long)
        headroom = math.sqrt(limit) if config.headroom is None else config.headroom
        gradient = clamp(config.tolerance * long / short, _MIN_GRADIENT, 1.0)
        # At the floor: halving would take less than one call off the target.
        floor = (limit + headroom) * _MIN_GRADIENT >= limit - 1 or limit <= config.min_limit
        pinned = floor and gradient <= _MIN_GRADIENT  # as low as it goes, and still too slow
        self._pinned = self._pinned + 1 if pinned else 0
        if self._pinned >= config.patience:  # not queueing: the service itself got slower
            long, gradient, self._pinned = short, 1.0, 0
        self.long_rtt = long
        target = (limit + headroom) * gradient
        limit = clamp(
            limit + config.smoothing * (target - limit), config.min_limit, config.max_limit
        )
        self.limit = limit
        return limit

    def __repr__(self) -> str:
        return f"<{type(self).__name__} limit={self.limit:.2f} long_rtt={self.long_rtt:.6f}>"
