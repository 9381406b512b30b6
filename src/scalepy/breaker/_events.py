"""What a circuit breaker reports besides metrics (`_metrics`): state changes and statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scalepy.breaker._state import BreakerState, WindowType

__all__ = ("BreakerStatistics", "StateChange")


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
