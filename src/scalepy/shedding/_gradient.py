"""`Gradient`: a limit that keeps latency within `tolerance` of the latency without queueing.

In the spirit of Netflix concurrency-limits' Gradient2 and Envoy's adaptive
concurrency filter. Each sample's mean round-trip time is compared with a
*baseline*: the mean RTT of calls that ran `min_limit` at a time, measured by a
probe (as Envoy measures its minRTT):

```
gradient = tolerance * baseline / rtt
target   = limit + headroom                    if gradient >= 1  # headroom: sqrt(limit)
           limit * max(gradient, 0.5)          otherwise
limit    = clamp(limit + smoothing * (target - limit), min_limit, max_limit)
```

The limit grows while latency stays within `tolerance` of the baseline and shrinks
in proportion to the excess once it does not, so it settles where calls start to
queue inside the process: for a handler that burns CPU, a little above the calls
that keep the CPU busy. (Gradient2 and Envoy add the headroom after scaling, which
holds the limit that much above the knee: latency then settles at several times the
baseline.) A sample with fewer than half the limit in flight says nothing about
capacity: it moves the limit not at all, the baseline only down.

The probe: the limit drops to `min_limit` until two samples come from calls that
ran alone at that concurrency (the calls admitted before the probe have finished);
the faster of the two is the new baseline, and the limit returns to where it was.
A probe runs first (so a process that starts overloaded learns the unqueued
latency, not its queue), every `probe_every` samples after (so the baseline follows
lasting changes and cannot drift with the load), and after `patience` samples in a
row with latency over twice what is tolerated: shedding is not bringing latency
down, so the service itself may have become slower (a slow dependency). Samples
over the tolerated latency with the limit at `min_limit` count too: it cannot go lower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scalepy._validation import check_finite, check_int
from scalepy.shedding._limit import LimitBounds, Sample, check_fraction, clamp

__all__ = ("Gradient", "GradientCore")

_MIN_GRADIENT = 0.5  # a sample halves the limit at most: one noisy window cannot collapse it
_PROBE_SAMPLES = 2  # clean samples a probe takes; the faster one is the baseline


@dataclass(frozen=True, slots=True, kw_only=True)
class Gradient(LimitBounds):
    """Configuration of the gradient limit (the default algorithm of `LoadShedder`).

    It grows by about sqrt(limit) per sample while latency allows. `min_limit` is
    also the concurrency the baseline latency is measured at (1 by default: calls
    one at a time).

    The bounds (`initial_limit`, `min_limit`, `max_limit`) are `LimitBounds`'.

    Raises:
        ConfigurationError: If a field holds a value that is not allowed; the
            message says what is.
    """

    tolerance: float = 1.5
    """How far the RTT may exceed the baseline before the limit shrinks; >= 1."""
    smoothing: float = 0.2
    """How far each sample moves the limit toward its target; in (0, 1]."""
    probe_every: int = 600
    """Samples between two probes of the baseline (about a minute at 0.1 s windows); >= 1."""
    headroom: int | None = None
    """The growth per sample while latency is tolerated; `None`: sqrt(limit)."""
    patience: int = 5
    """Samples in a row far too slow (over twice the tolerated latency, or over it at
    `min_limit`) before the baseline is probed again; >= 1."""

    def __post_init__(self) -> None:
        LimitBounds.__post_init__(self)  # no bare super(): slotted dataclasses are rebuilt
        check_finite("tolerance", self.tolerance, minimum=1, inclusive=True)
        check_fraction("smoothing", self.smoothing, upper_inclusive=True)
        check_int("probe_every", self.probe_every)
        check_int("patience", self.patience)
        if self.headroom is not None:
            check_int("headroom", self.headroom, minimum=0)

    def start(self) -> GradientCore:
        """Return a fresh core, probing the baseline before it runs at `initial_limit`.

        Returns:
            The gradient algorithm's state.
        """
        return GradientCore(self)


class GradientCore:
    """The gradient algorithm's state: the limit, the baseline RTT and the probe's progress.

    Args:
        config: The policy it follows.
    """

    __slots__ = ("_clean", "_config", "_resume", "_since_probe", "_slow", "baseline", "limit")

    def __init__(self, config: Gradient) -> None:
        self._config = config
        self.baseline: float = math.nan
        """The unqueued RTT in seconds; NaN until the first probe ends."""
        self.limit: float = config.initial_limit
        """The current limit."""
        self._slow = 0  # samples in a row over twice the tolerated latency
        self._since_probe = 0
        self._resume = 0.0  # the limit to return to after the probe; 0: not probing
        self._clean = 0  # clean samples the running probe has taken
        self._probe()

    @property
    def probing(self) -> bool:
        """Whether the limit is at `min_limit` to measure the baseline."""
        return self._resume > 0

    def update(self, sample: Sample) -> float:
        """Learn from one sample and return the new limit.

        Args:
            sample: What the calls of the last window saw.

        Returns:
            The new limit, within `[min_limit, max_limit]`.
        """
        config = self._config
        rtt = sample.rtt
        if rtt <= 0:
            return self.limit
        if self._resume:
            return self._measure(sample)
        if rtt < self.baseline:  # faster than the probe saw: no queueing at all
            self.baseline = rtt
        limit = self.limit
        if sample.in_flight * 2 < limit:
            return limit  # the limit is not in use: nothing learned about capacity
        gradient = config.tolerance * self.baseline / rtt
        if gradient >= 1:
            target = limit + (math.sqrt(limit) if config.headroom is None else config.headroom)
        else:
            target = limit * max(gradient, _MIN_GRADIENT)
        limit = self.limit = clamp(
            limit + config.smoothing * (target - limit), config.min_limit, config.max_limit
        )
        # Too slow, and shedding is not helping: far too slow, or at the floor already.
        floored = gradient < 1 and limit == config.min_limit
        self._slow = self._slow + 1 if gradient <= _MIN_GRADIENT or floored else 0
        self._since_probe += 1
        if self._slow >= config.patience or self._since_probe >= config.probe_every:
            self._probe()
        return self.limit

    def _probe(self) -> None:
        """Drop the limit to `min_limit` until the baseline is measured there."""
        self._resume, self._clean, self._slow, self._since_probe = self.limit, 0, 0, 0
        self.limit = self._config.min_limit

    def _measure(self, sample: Sample) -> float:
        """Take a probe sample; end the probe after enough clean ones."""
        if sample.in_flight > self._config.min_limit:
            return self.limit  # calls admitted before the probe still ran: queued latency
        first = self._clean == 0
        self.baseline = sample.rtt if first else min(self.baseline, sample.rtt)
        self._clean += 1
        if self._clean >= _PROBE_SAMPLES:
            self.limit, self._resume = self._resume, 0.0
        return self.limit

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} limit={self.limit:.2f} baseline={self.baseline:.6f}"
            f"{' probing' if self._resume else ''}>"
        )
