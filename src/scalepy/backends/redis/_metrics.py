"""The Redis client's metric catalogue: every instrument a `RedisClient` emits."""

from __future__ import annotations

from scalepy.telemetry import Metric, MetricKind

__all__ = ("METRICS", "NAMESPACE", "PIPELINE_SIZE")

NAMESPACE = "scalepy.redis"

PIPELINE_SIZE = Metric(
    name="scalepy.redis.pipeline.size",
    kind=MetricKind.HISTOGRAM,
    unit="{command}",
    description="Commands per automatic pipeline sent to Redis.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)

METRICS = (PIPELINE_SIZE,)
"""Every metric a Redis client emits."""
