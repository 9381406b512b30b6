"""The health endpoints' metric catalogue: every instrument checks and the lag monitor emit."""

from __future__ import annotations

from scalepy.telemetry import Metric, MetricKind

__all__ = (
    "CHECK_DURATION",
    "CHECK_NAME",
    "CHECK_STATUS",
    "LOOP_LAG",
    "METRICS",
    "NAMESPACE",
    "STATUS",
)

NAMESPACE = "scalepy.health"

CHECK_NAME = "scalepy.health.check.name"
"""The check's name, as in the health report."""
STATUS = "scalepy.health.check.status"
"""A check's status: `pass`, `warn` or `fail`."""

CHECK_STATUS = Metric(
    name="scalepy.health.check.status",
    kind=MetricKind.GAUGE,
    unit="{status}",
    description="1 for the status a health check is in, 0 for the other two (a state set).",
    labels=(CHECK_NAME, STATUS),
)
CHECK_DURATION = Metric(
    name="scalepy.health.check.duration",
    kind=MetricKind.HISTOGRAM,
    unit="s",
    description="How long health check probes ran, up to their timeout.",
    labels=(CHECK_NAME, STATUS),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
LOOP_LAG = Metric(
    name="scalepy.health.event_loop.lag",
    kind=MetricKind.GAUGE,
    unit="s",
    description="How much later than due the event loop ran the lag monitor's last wake-up.",
)

METRICS = (CHECK_STATUS, CHECK_DURATION, LOOP_LAG)
"""Every metric the health endpoints emit, in the order the reference lists them."""
