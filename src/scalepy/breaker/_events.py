"""What a circuit breaker reports: its metrics, its state changes and its statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalepy.telemetry import Metric, MetricKind

if TYPE_CHECKING:
    from scalepy.breaker._state import BreakerState, WindowType

__all__ = (
    "CALLS",
    "CALL_DURATION",
    "STATE",
    "TRANSITIONS",
    "BreakerStatistics",
    "StateChange",
)

STATE = Metric(
    name="scalepy.breaker.state",
    kind=MetricKind.GAUGE,
    description="Circuit breaker state: 0 closed, 1 open, 2 half_open, 3 disabled, 4 forced_open.",
    labels=("name",),
)
CALLS = Metric(
    name="scalepy.breaker.calls",
    kind=MetricKind.COUNTER,
    unit="{call}",
    description="Calls through a circuit breaker, by outcome.",
    labels=("name", "outcome"),
)
TRANSITIONS = Metric(
    name="scalepy.breaker.transitions",
    kind=MetricKind.COUNTER,
    unit="{transition}",
    description="Circuit breaker state transitions.",
    labels=("name", "from", "to"),
)
CALL_DURATION = Metric(
    name="scalepy.breaker.call.duration",
    kind=MetricKind.HISTOGRAM,
    unit="s",
    description="Duration of the calls a circuit breaker let through.",
    labels=("name",),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChange:
    """One state transition of a circuit breaker, as given to its listeners."""

    name: str
    """The breaker's name."""
    from_state: BreakerState
    """The state it left."""
    to_state: BreakerState
    """The state it entered."""
    at: float
    """When, on the breaker's clock."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerStatistics:
    """A snapshot of a circuit breaker, for health checks and dashboards."""

    name: str
    """The breaker's name."""
    state: BreakerState
    """The state at the time of the snapshot."""
    window: WindowType
    """The kind of sliding window judged in CLOSED."""
    calls: int
    """Calls in the window (the trial calls completed, in HALF_OPEN)."""
    failures: int
    """Failed calls among them."""
    slow_calls: int
    """Slow calls among them, failed or not."""
    failure_rate: float
    """`failures / calls`, 0.0 without calls."""
    slow_call_rate: float
    """`slow_calls / calls`, 0.0 without calls."""
    rejected: int
    """Calls rejected since the breaker was created."""
    transitions: int
    """State transitions since the breaker was created."""
    retry_after: float
    """Seconds until an OPEN breaker lets a trial call through; 0.0 otherwise."""
