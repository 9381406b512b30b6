"""`SampleWindow`: many call measurements folded into one `Sample` per window.

Feeding every call to the limit algorithm would make it jittery and cost a
float-heavy update per call; a window collects calls until it holds at least
`min_samples` of them and spans at least `duration` seconds (from the start of
its first call), then hands the
algorithm their mean RTT, the most calls in flight and whether any dropped.
Pure: the caller passes `now`.
"""

from __future__ import annotations

from scalepy.shedding._limit import Sample

__all__ = ("SampleWindow",)


class SampleWindow:
    """Accumulates call measurements into one `Sample` per window.

    Args:
        duration: The shortest window in seconds.
        min_samples: The fewest calls a window holds.
    """

    __slots__ = ("_count", "_dropped", "_duration", "_ends", "_in_flight", "_min", "_total")

    def __init__(self, duration: float, min_samples: int) -> None:
        self._duration = duration
        self._min = min_samples
        self._ends: float | None = None  # opened by the first call measured
        self._count = 0
        self._total = 0.0
        self._in_flight = 0
        self._dropped = False

    def add(self, now: float, rtt: float, in_flight: int, dropped: bool) -> Sample | None:
        """Add one finished call; return the window's sample if this call closes it.

        Args:
            now: When the call finished.
            rtt: How long it ran, in seconds.
            in_flight: Calls running when it finished, itself included.
            dropped: Whether it failed with an overload signal.

        Returns:
            The closed window's sample, or `None` while the window stays open.
        """
        if self._ends is None:  # the window opens when its first call started
            self._ends = now - rtt + self._duration
        self._count += 1
        self._total += rtt
        if in_flight > self._in_flight:
            self._in_flight = in_flight
        self._dropped = self._dropped or dropped
        if self._count < self._min or now < self._ends:
            return None
        sample = Sample(
            rtt=self._total / self._count, in_flight=self._in_flight, dropped=self._dropped
        )
        self._ends = None
        self._count = 0
        self._total = 0.0
        self._in_flight = 0
        self._dropped = False
        return sample
