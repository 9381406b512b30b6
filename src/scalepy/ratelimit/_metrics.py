"""The rate limiter's metric catalogue: every instrument a limiter emits."""

from __future__ import annotations

from scalepy.telemetry import ERROR_TYPE, Metric, MetricKind

__all__ = (
    "BACKEND_ERRORS",
    "DECISIONS",
    "DECISION_DURATION",
    "LEASE",
    "LEASE_TOKENS",
    "METRICS",
    "NAMESPACE",
    "RESULT",
)

NAMESPACE = "scalepy.ratelimit"

RESULT = "scalepy.ratelimit.result"
"""How a decision was reached: `allowed`, `limited`, `leased`, `fail_open`, `fail_closed` or
`local`."""

LEASE = "scalepy.ratelimit.lease"
"""What happened to leased tokens: `taken` (beyond the request that took them) or `lapsed`."""

DECISIONS = Metric(
    name="scalepy.ratelimit.decisions",
    kind=MetricKind.COUNTER,
    unit="{decision}",
    description="Rate-limit decisions, by how they were reached.",
    labels=(RESULT,),
)
DECISION_DURATION = Metric(
    name="scalepy.ratelimit.decision.duration",
    kind=MetricKind.HISTOGRAM,
    unit="s",
    description="Time taken to reach a rate-limit decision.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
BACKEND_ERRORS = Metric(
    name="scalepy.ratelimit.backend.errors",
    kind=MetricKind.COUNTER,
    unit="{error}",
    description="Rate-limit backend calls that failed, by exception type.",
    labels=(ERROR_TYPE,),
)

LEASE_TOKENS = Metric(
    name="scalepy.ratelimit.lease.tokens",
    kind=MetricKind.COUNTER,
    unit="{token}",
    description="Tokens leased by this replica, and leased tokens that lapsed unspent.",
    labels=(LEASE,),
)

METRICS = (DECISIONS, DECISION_DURATION, BACKEND_ERRORS, LEASE_TOKENS)
"""Every metric a rate limiter emits, in the order the reference lists them."""
