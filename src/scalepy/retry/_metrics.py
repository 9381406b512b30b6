"""The retry policy's metric catalogue: every instrument a retry policy emits."""

from __future__ import annotations

from scalepy.telemetry import Metric, MetricKind

__all__ = ("ATTEMPTS", "METRICS", "NAMESPACE", "OUTCOME")

NAMESPACE = "scalepy.retry"

OUTCOME = "scalepy.retry.outcome"
"""What followed an attempt: `success`, `retry`, `exhausted`, `budget_exhausted` or `failure`."""

ATTEMPTS = Metric(
    name="scalepy.retry.attempts",
    kind=MetricKind.COUNTER,
    unit="{attempt}",
    description="Attempts made under a retry policy, by what happened next.",
    labels=(OUTCOME,),
)

METRICS = (ATTEMPTS,)
"""Every metric a retry policy emits."""
