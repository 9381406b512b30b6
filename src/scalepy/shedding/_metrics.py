"""The load shedder's metric catalogue: every instrument a shedder emits."""

from __future__ import annotations

from scalepy.telemetry import Metric, MetricKind

__all__ = (
    "ACTIVE",
    "LIMIT",
    "LIMIT_CHANGED",
    "LIMIT_NEW",
    "LIMIT_OLD",
    "METRICS",
    "NAMESPACE",
    "PRIORITY",
    "QUEUED",
    "REASON",
    "SHED",
    "SHEDDER_NAME",
)

NAMESPACE = "scalepy.shedding"

SHEDDER_NAME = "scalepy.shedding.name"
"""The shedder's name."""
PRIORITY = "scalepy.shedding.priority"
"""A priority class: `low`, `normal` or `high`."""
REASON = "scalepy.shedding.reason"
"""Why a call was shed: `queue_full`, `evicted`, `timeout` or `stale`."""

LIMIT_CHANGED = "scalepy.shedding.limit_changed"
"""The event sent when the concurrency limit moves, with the old and the new limit."""
LIMIT_OLD = "scalepy.shedding.limit.old"
"""The event attribute holding the limit before the move."""
LIMIT_NEW = "scalepy.shedding.limit.new"
"""The event attribute holding the limit after the move."""

LIMIT = Metric(
    name="scalepy.shedding.limit",
    kind=MetricKind.GAUGE,
    unit="{request}",
    description="The adaptive concurrency limit: calls a load shedder runs at once.",
    labels=(SHEDDER_NAME,),
)
ACTIVE = Metric(
    name="scalepy.shedding.request.active",
    kind=MetricKind.GAUGE,
    unit="{request}",
    description="Calls running inside a load shedder's limit.",
    labels=(SHEDDER_NAME,),
)
QUEUED = Metric(
    name="scalepy.shedding.request.queued",
    kind=MetricKind.GAUGE,
    unit="{request}",
    description="Calls waiting in a load shedder's line for a slot.",
    labels=(SHEDDER_NAME,),
)
SHED = Metric(
    name="scalepy.shedding.requests.shed",
    kind=MetricKind.COUNTER,
    unit="{request}",
    description="Calls a load shedder turned away, by priority class and reason.",
    labels=(SHEDDER_NAME, PRIORITY, REASON),
)

METRICS = (LIMIT, ACTIVE, QUEUED, SHED)
"""Every metric a load shedder emits, in the order the reference lists them."""
