"""OpenTelemetryInstrumentation against the OpenTelemetry SDK's in-memory exporters."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from opentelemetry import baggage, context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import scalepy
from scalepy.integrations.opentelemetry import OpenTelemetryInstrumentation
from scalepy.telemetry import combine
from scalepy.testing import RecordingInstrumentation
from tests.support.metrics import IN_FLIGHT, LATENCY, REQUESTS, SIZE, WAIT, record_all

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from opentelemetry.sdk.metrics.export import Metric as ExportedMetric

    from scalepy.telemetry import Metric


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """Collect finished spans in memory."""
    return InMemorySpanExporter()


@pytest.fixture
def reader() -> InMemoryMetricReader:
    """Collect metrics in memory on demand."""
    return InMemoryMetricReader()


@pytest.fixture
def instrumentation(
    exporter: InMemorySpanExporter, reader: InMemoryMetricReader
) -> Iterator[OpenTelemetryInstrumentation]:
    """An instrumentation on injected SDK providers, shut down after the test."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[reader])
    yield OpenTelemetryInstrumentation(
        tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    tracer_provider.shutdown()
    meter_provider.shutdown()


def exported(reader: InMemoryMetricReader, name: str) -> ExportedMetric:
    """Return the one exported metric called `name`, checking it comes from the scalepy scope."""
    data = reader.get_metrics_data()
    assert data is not None
    found = [
        (scope_metrics.scope.name, metric)
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        if metric.name == name
    ]
    assert 1 == len(found)
    scope, metric = found[0]
    assert "scalepy" == scope
    return metric


def number_points(metric: ExportedMetric) -> dict[tuple[tuple[str, object], ...], float]:
    """Map each data point's sorted attributes to its value."""
    assert isinstance(metric.data, Sum | Gauge)
    points: dict[tuple[tuple[str, object], ...], float] = {}
    for point in metric.data.data_points:
        assert isinstance(point, NumberDataPoint)
        points[tuple(sorted((point.attributes or {}).items()))] = point.value
    return points


def histogram_point(metric: ExportedMetric) -> HistogramDataPoint:
    """Return the single data point of a histogram."""
    assert isinstance(metric.data, Histogram)
    (point,) = metric.data.data_points
    return point


# Metrics


@pytest.mark.parametrize(
    ("definition", "records", "monotonic", "points"),
    [
        pytest.param(
            REQUESTS,
            [
                (1, {"route": "a", "db.system": "redis"}),
                (2, {"route": "a", "db.system": "redis"}),
                (5, {"route": "b"}),
            ],
            True,
            {(("db.system", "redis"), ("route", "a")): 3, (("route", "b"),): 5},
            id="counter-adds-per-attribute-set",
        ),
        pytest.param(
            REQUESTS,
            [(1, {"route": "a", "user": "u1"})],
            True,
            {(("route", "a"),): 1},
            id="undeclared-labels-dropped",
        ),
        pytest.param(REQUESTS, [(4, None)], True, {(): 4}, id="unlabelled-record"),
        pytest.param(
            IN_FLIGHT, [(3, None), (-1, None)], False, {(): 2}, id="up-down-counter-adds-signed"
        ),
        pytest.param(
            SIZE,
            [(5, {"pool": "a"}), (7, {"pool": "a"})],
            None,
            {(("pool", "a"),): 7},
            id="gauge-keeps-last-value",
        ),
    ],
)
def test_number_instruments(
    instrumentation: OpenTelemetryInstrumentation,
    reader: InMemoryMetricReader,
    definition: Metric,
    records: list[tuple[float, Mapping[str, str] | None]],
    monotonic: bool | None,
    points: dict[tuple[tuple[str, object], ...], float],
) -> None:
    """Counters and up-down counters are sums, gauges synchronous gauges.

    Each keeps the metric's unit and description; only declared label keys
    become attributes. `monotonic` is None where the data is a gauge.
    """
    record_all(instrumentation.metric(definition), records)

    metric = exported(reader, definition.name)
    assert (definition.unit, definition.description) == (metric.unit, metric.description)
    assert monotonic == (metric.data.is_monotonic if isinstance(metric.data, Sum) else None)
    assert isinstance(metric.data, Sum if monotonic is not None else Gauge)
    assert points == number_points(metric)


def test_histogram_honours_bucket_advisory(
    instrumentation: OpenTelemetryInstrumentation, reader: InMemoryMetricReader
) -> None:
    """Histogram observations land in the advised buckets, with count and sum."""
    record_all(instrumentation.metric(LATENCY), [(v, {"route": "a"}) for v in (0.05, 0.5, 2.0)])

    metric = exported(reader, LATENCY.name)
    point = histogram_point(metric)
    assert "s" == metric.unit
    assert ((0.1, 1.0), (1, 1, 1)) == (tuple(point.explicit_bounds), tuple(point.bucket_counts))
    assert (3, 2.55, {"route": "a"}) == (point.count, point.sum, dict(point.attributes or {}))


def test_histogram_without_buckets_uses_sdk_default(
    instrumentation: OpenTelemetryInstrumentation, reader: InMemoryMetricReader
) -> None:
    """Without a buckets hint the SDK's default boundaries apply."""
    instrumentation.metric(WAIT).record(10)

    point = histogram_point(exported(reader, WAIT.name))
    assert (0.0, 5.0, 10.0) == tuple(point.explicit_bounds)[:3]


# Spans and events


def test_span_reaches_exporter(
    instrumentation: OpenTelemetryInstrumentation, exporter: InMemorySpanExporter
) -> None:
    """Spans carry their attributes and events and come from the scalepy tracer."""
    with instrumentation.span("scalepy.test.op", {"db.system": "redis"}) as span:
        span.set_attribute("attempt", 2)
        span.add_event("scalepy.test.step", {"ok": True})

    (finished,) = exporter.get_finished_spans()
    assert "scalepy.test.op" == finished.name
    assert {"db.system": "redis", "attempt": 2} == dict(finished.attributes or {})
    assert [("scalepy.test.step", {"ok": True})] == [
        (event.name, dict(event.attributes or {})) for event in finished.events
    ]
    assert finished.instrumentation_scope is not None
    assert ("scalepy", scalepy.__version__) == (
        finished.instrumentation_scope.name,
        finished.instrumentation_scope.version,
    )
    assert StatusCode.UNSET == finished.status.status_code


def test_escaping_exception_is_recorded_with_error_status(
    instrumentation: OpenTelemetryInstrumentation, exporter: InMemorySpanExporter
) -> None:
    """An exception leaving the block is recorded, sets ERROR status and propagates."""
    with pytest.raises(RuntimeError, match="boom"), instrumentation.span("scalepy.test.op"):
        raise RuntimeError("boom")

    (finished,) = exporter.get_finished_spans()
    (event,) = finished.events
    assert StatusCode.ERROR == finished.status.status_code
    assert "RuntimeError: boom" == finished.status.description
    assert ("exception", "RuntimeError") == (
        event.name,
        (event.attributes or {}).get("exception.type"),
    )


def test_handled_exception_keeps_status(
    instrumentation: OpenTelemetryInstrumentation, exporter: InMemorySpanExporter
) -> None:
    """record_exception() on the span adds an event without failing the span."""
    with instrumentation.span("scalepy.test.op") as span:
        span.record_exception(ValueError("retried"))

    (finished,) = exporter.get_finished_spans()
    assert (StatusCode.UNSET, ["exception"]) == (
        finished.status.status_code,
        [event.name for event in finished.events],
    )


def test_event_goes_to_current_span(
    instrumentation: OpenTelemetryInstrumentation, exporter: InMemorySpanExporter
) -> None:
    """event() adds to the span current at the time, including a nested one."""
    with instrumentation.span("outer"):
        instrumentation.event("scalepy.test.outer_event", {"n": 1})
        with instrumentation.span("inner"):
            instrumentation.event("scalepy.test.inner_event")

    inner, outer = exporter.get_finished_spans()
    assert inner.parent is not None
    assert outer.context is not None
    assert outer.context.span_id == inner.parent.span_id
    assert ["scalepy.test.inner_event"] == [event.name for event in inner.events]
    assert [("scalepy.test.outer_event", {"n": 1})] == [
        (event.name, dict(event.attributes or {})) for event in outer.events
    ]


def test_event_without_span_is_dropped(
    instrumentation: OpenTelemetryInstrumentation, exporter: InMemorySpanExporter
) -> None:
    """With no recording span current, event() does nothing."""
    instrumentation.event("scalepy.test.lost")

    assert () == tuple(exporter.get_finished_spans())


def test_combined_with_recording(
    instrumentation: OpenTelemetryInstrumentation, exporter: InMemorySpanExporter
) -> None:
    """Fanned out, one failure reaches both the OpenTelemetry span and the recording."""
    recording = RecordingInstrumentation()
    combined = combine(instrumentation, recording)

    def fail() -> None:
        with combined.span("scalepy.test.op"):
            combined.event("scalepy.test.event")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()

    (finished,) = exporter.get_finished_spans()
    assert StatusCode.ERROR == finished.status.status_code
    assert ["scalepy.test.event", "exception"] == [event.name for event in finished.events]
    assert (True, ["scalepy.test.event"]) == (
        recording.spans[0].error,
        [event.name for event in recording.spans[0].events],
    )


# Construction


def test_global_providers_are_used_by_default() -> None:
    """Without injected providers, the global (here no-op) providers are used."""
    instrumentation = OpenTelemetryInstrumentation()

    with instrumentation.span("scalepy.test.op"):
        instrumentation.event("scalepy.test.event")
    instrumentation.metric(REQUESTS).record(1)

    assert "OpenTelemetryInstrumentation(metrics=1)" == repr(instrumentation)


def test_the_context_is_carried_only_when_there_is_one() -> None:
    """No span and no baggage carry nothing; a span or baggage alone is carried."""
    propagation = OpenTelemetryInstrumentation()
    assert propagation.inject_context() == {}
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("producer") as span:
        carried = propagation.inject_context()
    trace_id = f"{span.get_span_context().trace_id:032x}"
    assert trace_id in carried["traceparent"]
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        assert propagation.inject_context() == {"baggage": "tenant=acme"}
    finally:
        context.detach(token)
