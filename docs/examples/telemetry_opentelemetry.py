"""OpenTelemetry: scalepy metrics and spans through the SDK the application configures."""

from __future__ import annotations

import asyncio
import os

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from scalepy.backends.redis import RedisClient
from scalepy.integrations.opentelemetry import OpenTelemetryInstrumentation

REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def main() -> None:
    """Send RedisClient's metrics and a span to in-memory exporters, then read them back."""
    # The application owns the SDK; in production, exporters send to a collector.
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentation = OpenTelemetryInstrumentation(
        tracer_provider=tracer_provider, meter_provider=meter_provider
    )

    async with RedisClient.from_url(REDIS_URL, instrumentation=instrumentation) as redis:
        await asyncio.gather(*(redis.execute("PING") for _ in range(10)))

    # RedisClient records the size of every automatic pipeline.
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "scalepy.redis.pipeline.size"
        for point in metric.data.data_points
    ]
    assert len(points) == 1
    assert isinstance(points[0], HistogramDataPoint)
    assert (points[0].count, points[0].sum) == (1, 10)  # one pipeline of ten commands

    # Spans: an exception escaping the block marks the span as failed, then propagates.
    try:
        with instrumentation.span("docs.checkout", {"order.id": "42"}):
            instrumentation.event("docs.payment.declined", {"attempt": 1})
            raise LookupError("no such card")
    except LookupError:
        pass
    (span,) = spans.get_finished_spans()
    assert span.name == "docs.checkout"
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["docs.payment.declined", "exception"]

    tracer_provider.shutdown()
    meter_provider.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
