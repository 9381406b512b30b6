"""The circuit breaker's metric catalogue: every instrument a breaker emits."""

from __future__ import annotations

from scalepy.telemetry import Metric, MetricKind

__all__ = (
    "BREAKER_NAME",
    "BREAKER_STATE",
    "CALLS",
    "CALL_DURATION",
    "CALL_OUTCOME",
    "METRICS",
    "NAMESPACE",
    "STATE",
    "TRANSITIONS",
    "TRANSITION_FROM",
    "TRANSITION_TO",
)

NAMESPACE = "scalepy.breaker"

BREAKER_NAME = "scalepy.breaker.name"
"""The breaker's name."""
BREAKER_STATE = "scalepy.breaker.state"
"""A state: `closed`, `open`, `half_open`, `disabled` or `forced_open`."""
CALL_OUTCOME = "scalepy.breaker.call.outcome"
"""What became of a call: `success`, `failure`, `slow`, `rejected` or `ignored`."""
TRANSITION_FROM = "scalepy.breaker.transition.from"
"""The state a transition left."""
TRANSITION_TO = "scalepy.breaker.transition.to"
"""The state a transition entered."""

STATE = Metric(
    name="scalepy.breaker.state",
    kind=MetricKind.GAUGE,
    unit="{state}",
    description="1 for the state a circuit breaker is in, 0 for every other state (a state set).",
    labels=(BREAKER_NAME, BREAKER_STATE),
)
CALLS = Metric(
    name="scalepy.breaker.calls",
    kind=MetricKind.COUNTER,
    unit="{call}",
    description="Calls through a circuit breaker, by outcome.",
    labels=(BREAKER_NAME, CALL_OUTCOME),
)
TRANSITIONS = Metric(
    name="scalepy.breaker.transitions",
    kind=MetricKind.COUNTER,
    unit="{transition}",
    description="Circuit breaker state transitions, by the state left and the state entered.",
    labels=(BREAKER_NAME, TRANSITION_FROM, TRANSITION_TO),
)
CALL_DURATION = Metric(
    name="scalepy.breaker.call.duration",
    kind=MetricKind.HISTOGRAM,
    unit="s",
    description="Duration of the calls a circuit breaker let through.",
    labels=(BREAKER_NAME,),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

METRICS = (STATE, CALLS, TRANSITIONS, CALL_DURATION)
"""Every metric a circuit breaker emits, in the order the reference lists them."""
