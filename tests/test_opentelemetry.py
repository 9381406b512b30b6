"""OpenTelemetryInstrumentation against the OpenTelemetry SDK's in-memory exporters."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from typing import TYPE_CHECKING

import pytest
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

from scalepy.errors import ConfigurationError
from scalepy.integrations import opentelemetry as otel_module
from scalepy.integrations.opentelemetry import OpenTelemetryInstrumentation
from scalepy.telemetry import Instrumentation, Metric, MetricKind, combine
from scalepy.testing._instrumentation import RecordingInstrumentation

if TYPE_CHECKING:
    from collections.abc import Iterator

    from opentelemetry.sdk.metrics.export import Metric as ExportedMetric

COMMANDS = Metric(
    name="scalepy.test.commands",
    kind=MetricKind.COUNTER,
    description="Commands sent.",
    unit="{command}",
    labels=("command", "db.system"),
)


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


def test_satisfies_the_protocol(instrumentation: OpenTelemetryInstrumentation) -> None:
    """The class is an Instrumentation (checked by mypy) and shows its instrument count."""
    checked: Instrumentation = instrumentation

    checked.metric(COMMANDS)

    assert "OpenTelemetryInstrumentation(metrics=1)" == repr(instrumentation)


# Metrics


def test_counter(
    instrumentation: OpenTelemetryInstrumentation, reader: InMemoryMetricReader
) -> None:
    """Counters add values per attribute set and keep unit and description."""
    commands = instrumentation.metric(COMMANDS)

    commands.record(1, {"command": "GET", "db.system": "redis"})
    commands.record(2, {"command": "GET", "db.system": "redis"})
    commands.record(5, {"command": "SET"})

    metric = exported(reader, "scalepy.test.commands")
    assert ("{command}", "Commands sent.") == (metric.unit, metric.description)
    assert isinstance(metric.data, Sum)
    assert metric.data.is_monotonic
    assert {
        (("command", "GET"), ("db.system", "redis")): 3,
        (("command", "SET"),): 5,
    } == number_points(metric)


def test_undeclared_labels_are_dropped(
    instrumentation: OpenTelemetryInstrumentation, reader: InMemoryMetricReader
) -> None:
    """Only declared label keys become attributes."""
    instrumentation.metric(COMMANDS).record(1, {"command": "GET", "user": "u1"})

    assert {(("command", "GET"),): 1} == number_points(exported(reader, COMMANDS.name))


def test_unlabelled_record(
    instrumentation: OpenTelemetryInstrumentation, reader: InMemoryMetricReader
) -> None:
    """A record without labels has no attributes."""
    instrumentation.metric(COMMANDS).record(4)

    assert {(): 4} == number_points(exported(reader, COMMANDS.name))


def test_up_down_counter(
    instrumentation: OpenTelemetryInstrumentation, reader: InMemoryMetricReader
) -> None:
    """Up-down counters add signed values and are not monotonic."""
    in_flight = instrumentation.metric(
        Metric(
            name="scalepy.test.in_flight",
            kind=MetricKind.UP_DOWN_COUNTER,
            description="Requests in flight.",
            unit="{request}",
        )
    )

    in_flight.record(3)
    in_flight.record(-1)

    metric = exported(reader, "scalepy.test.in_flight")
    assert isinstance(metric.data, Sum)
    assert not metric.data.is_monotonic
    assert {(): 2} == number_points(metric)


def test_histogram_honours_bucket_advisory(
    instrumentation: OpenTelemetryInstrumentation, reader: InMemoryMetricReader
) -> None:
    """Histogram observations land in the advised buckets, with count and sum."""
    latency = instrumentation.metric(
        Metric(
            name="scalepy.test.latency",
            kind=MetricKind.HISTOGRAM,
            description="Command duration.",
            unit="s",
            labels=("command",),
            buckets=(0.1, 1.0),
        )
    )

    for value in (0.05, 0.5, 2.0):
        latency.record(value, {"command": "GET"})

    metric = exported(reader, "scalepy.test.latency")
    point = histogram_point(metric)
    assert "s" == metric.unit
    assert ((0.1, 1.0), (1, 1, 1)) == (tuple(point.explicit_bounds), tuple(point.bucket_counts))
    assert (3, 2.55, {"command": "GET"}) == (point.count, point.sum, dict(point.attributes or {}))


def test_histogram_without_buckets_uses_sdk_default(
    instrumentation: OpenTelemetryInstrumentation, reader: InMemoryMetricReader
) -> None:
    """Without a buckets hint the SDK's default boundaries apply."""
    instrumentation.metric(
        Metric(name="scalepy.test.size", kind=MetricKind.HISTOGRAM, description="Sizes.", unit="By")
    ).record(10)

    point = histogram_point(exported(reader, "scalepy.test.size"))
    assert (0.0, 5.0, 10.0) == tuple(point.explicit_bounds)[:3]


def test_gauge_keeps_last_value(
    instrumentation: OpenTelemetryInstrumentation, reader: InMemoryMetricReader
) -> None:
    """Gauges are synchronous gauges set to the last value."""
    size = instrumentation.metric(
        Metric(
            name="scalepy.test.pool_size",
            kind=MetricKind.GAUGE,
            description="Connections open.",
            unit="{connection}",
            labels=("pool",),
        )
    )

    size.record(5, {"pool": "a"})
    size.record(7, {"pool": "a"})

    metric = exported(reader, "scalepy.test.pool_size")
    assert isinstance(metric.data, Gauge)
    assert {(("pool", "a"),): 7} == number_points(metric)


def test_same_definition_same_recorder(instrumentation: OpenTelemetryInstrumentation) -> None:
    """Asking twice for an equal definition returns the same recorder."""
    assert instrumentation.metric(COMMANDS) is instrumentation.metric(COMMANDS)


def test_conflicting_definition_is_rejected(instrumentation: OpenTelemetryInstrumentation) -> None:
    """A different definition under a known name raises ConfigurationError."""
    instrumentation.metric(COMMANDS)
    conflicting = Metric(name=COMMANDS.name, kind=MetricKind.COUNTER, description="Other.")

    with pytest.raises(ConfigurationError, match="already defined"):
        instrumentation.metric(conflicting)


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
    assert ("scalepy", importlib.metadata.version("scalepy")) == (
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
    instrumentation.metric(COMMANDS).record(1)

    assert "OpenTelemetryInstrumentation(metrics=1)" == repr(instrumentation)


def test_version_falls_back_without_metadata(
    monkeypatch: pytest.MonkeyPatch, exporter: InMemorySpanExporter
) -> None:
    """From a source tree without installed metadata, the scope version is "0"."""

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(otel_module, "version", missing)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))

    with OpenTelemetryInstrumentation(tracer_provider=tracer_provider).span("op"):
        pass

    (finished,) = exporter.get_finished_spans()
    assert finished.instrumentation_scope is not None
    assert "0" == finished.instrumentation_scope.version


def test_missing_extra_explains_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without opentelemetry-api, importing the integration says which extra to install."""
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.delitem(sys.modules, "scalepy.integrations.opentelemetry")

    with pytest.raises(ImportError, match=r"pip install 'scalepy\[otel\]'") as caught:
        importlib.import_module("scalepy.integrations.opentelemetry")

    assert isinstance(caught.value.__cause__, ImportError)
