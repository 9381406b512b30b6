"""Prometheus: scalepy metrics on a registry the application owns, rendered for a scrape."""

from __future__ import annotations

import asyncio
import os

from prometheus_client import CollectorRegistry

from scalepy.backends.redis import RedisClient
from scalepy.backends.redis._metrics import PIPELINE_SIZE
from scalepy.integrations.prometheus import PrometheusInstrumentation, prometheus_name
from scalepy.telemetry import Metric, MetricKind

REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

ORDERS = Metric(
    name="shop.orders",
    kind=MetricKind.COUNTER,
    description="Orders placed.",
    labels=("payment.method",),
)


async def main() -> None:
    """Record RedisClient's metrics and one of our own, then render the scrape body."""
    registry = CollectorRegistry()  # not the global REGISTRY unless you pass it
    instrumentation = PrometheusInstrumentation(registry=registry)  # one per registry

    async with RedisClient.from_url(REDIS_URL, instrumentation=instrumentation) as redis:
        await asyncio.gather(*(redis.execute("PING") for _ in range(10)))

    # Application code can describe its own metrics the same way.
    instrumentation.metric(ORDERS).record(1, {"payment.method": "card"})

    # What /metrics serves: also merges every process's files when
    # PROMETHEUS_MULTIPROC_DIR is set.
    body, content_type = instrumentation.render_metrics()
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert prometheus_name(PIPELINE_SIZE) == "scalepy_redis_pipeline_size"  # dots: underscores
    assert "scalepy_redis_pipeline_size_count 1.0" in text
    assert "scalepy_redis_pipeline_size_sum 10.0" in text
    assert 'shop_orders_total{payment_method="card"} 1.0' in text  # counters end in _total

    # An OpenMetrics scraper gets OpenMetrics.
    _, content_type = instrumentation.render_metrics(accept="application/openmetrics-text")
    assert content_type.startswith("application/openmetrics-text")


if __name__ == "__main__":
    asyncio.run(main())
