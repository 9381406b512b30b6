"""Report scalepy metrics, spans and events through the OpenTelemetry API.

This module depends on `opentelemetry-api` only, as the OpenTelemetry library
guidelines ask: the application chooses and configures the SDK and exporters.
Without injected providers the global ones are used, so configuring the SDK
after building scalepy objects still works.

```python
from scalepy.integrations.opentelemetry import OpenTelemetryInstrumentation
from scalepy.telemetry import set_default

set_default(OpenTelemetryInstrumentation())
```
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from scalepy import __version__
from scalepy._extras import missing_extra
from scalepy.telemetry import MetricKind, _RecorderCache

try:
    from opentelemetry import context, metrics, propagate, trace
except ImportError as exc:
    raise missing_extra(__name__, "otel") from exc

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from scalepy.telemetry import Attributes, Metric, Recorder, Span

    _Emit = Callable[[float, Mapping[str, str] | None], None]

__all__ = ("OpenTelemetryInstrumentation",)

_INSTRUMENTATION_NAME = "scalepy"
_PROXY_TARGET = "_real_instrument"
"""What an instrument of the API's proxy meter provider records on once an SDK is set."""


class _OpenTelemetryRecorder:
    """Adds, records or sets values on one OpenTelemetry instrument.

    Until the application sets an SDK meter provider, the global provider is the
    API's proxy: its instruments drop every value, and forwarding one still costs
    two calls and a label check on every recording. So the recorder drops the value
    itself while the proxy has no real instrument behind it, and once it has (the
    SDK was set, even long after this recorder was made) records on that real
    instrument directly. The proxy's `_real_instrument` is the API's own switch
    (tests/telemetry/test_opentelemetry_global.py keeps it honest); an instrument
    without it is recorded on as it is.

    Args:
        instrument: The instrument the meter made.
        operation: Its method recording one value: `add`, `record` or `set`.
        labels: The label keys the metric declares.
    """

    __slots__ = ("_emit", "_labels", "_operation", "_proxy")

    def __init__(self, instrument: object, operation: str, labels: frozenset[str]) -> None:
        self._operation = operation
        self._labels = labels
        self._proxy = instrument if hasattr(instrument, _PROXY_TARGET) else None
        self._emit: _Emit | None = None if self._proxy else getattr(instrument, operation)

    def record(self, value: float, labels: Mapping[str, str] | None = None) -> None:
        """Send the value with the declared labels as attributes."""
        emit = self._emit
        if emit is None:
            real = getattr(self._proxy, _PROXY_TARGET)
            if real is None:
                return  # no SDK meter provider yet: the API would drop the value
            emit = self._emit = getattr(real, self._operation)
        if labels is None or labels.keys() <= self._labels:
            emit(value, labels)
        else:
            emit(value, {key: val for key, val in labels.items() if key in self._labels})


class OpenTelemetryInstrumentation:
    """An `Instrumentation` backed by an OpenTelemetry tracer and meter named "scalepy".

    Metric kinds map to synchronous instruments: counters to `Counter`, up-down
    counters to `UpDownCounter`, histograms to `Histogram` (with
    `Metric.buckets` as the explicit bucket boundaries advisory) and gauges to
    the synchronous `Gauge`. Label values become attributes; keys a metric does
    not declare are dropped. Each instrument is created once per metric name.

    It also carries trace context (`inject_context()`, `attached_context()`),
    which is how a task-queue job continues the trace of the code that enqueued it.

    Args:
        tracer_provider: Where spans go; the global tracer provider if omitted.
        meter_provider: Where metrics go; the global meter provider if omitted.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        # The version of the code running, which the distribution's metadata need not be.
        self._tracer = trace.get_tracer(
            _INSTRUMENTATION_NAME, __version__, tracer_provider=tracer_provider
        )
        self._meter = metrics.get_meter(
            _INSTRUMENTATION_NAME, __version__, meter_provider=meter_provider
        )
        self._recorders = _RecorderCache(self._create)

    def metric(self, metric: Metric) -> Recorder:
        """Return the recorder for a metric, creating its instrument on first use.

        Args:
            metric: The metric definition.

        Returns:
            The same recorder for every call with an equal definition.

        Raises:
            ConfigurationError: If a different metric was already defined under
                the same name.
        """
        return self._recorders.get(metric)

    def _create(self, metric: Metric) -> Recorder:
        instrument, operation = self._instrument(metric)
        return _OpenTelemetryRecorder(instrument, operation, frozenset(metric.labels))

    def _instrument(self, metric: Metric) -> tuple[object, str]:
        """Create the instrument of `metric`; return it with its method recording one value."""
        name, unit, description = metric.name, metric.unit, metric.description
        if metric.kind is MetricKind.COUNTER:
            return self._meter.create_counter(name, unit, description), "add"
        if metric.kind is MetricKind.UP_DOWN_COUNTER:
            return self._meter.create_up_down_counter(name, unit, description), "add"
        if metric.kind is MetricKind.HISTOGRAM:
            histogram = self._meter.create_histogram(
                name, unit, description, explicit_bucket_boundaries_advisory=metric.buckets
            )
            return histogram, "record"
        # MetricKind.GAUGE: the synchronous gauge, in the API since 1.23.
        return self._meter.create_gauge(name, unit, description), "set"

    def span(
        self, name: str, attributes: Attributes | None = None
    ) -> contextlib.AbstractContextManager[Span]:
        """Start a span and make it current for the block.

        An `Exception` escaping the block is recorded on the span, whose status
        becomes ERROR, and then propagates.

        Args:
            name: The operation name, e.g. `scalepy.cache.get`.
            attributes: Attributes of the span.

        Returns:
            A context manager whose value is the OpenTelemetry span.
        """
        return self._tracer.start_as_current_span(
            name, attributes=attributes, record_exception=True, set_status_on_exception=True
        )

    def event(self, name: str, attributes: Attributes | None = None) -> None:
        """Add an event to the current span if it is recording; otherwise do nothing.

        Args:
            name: The event name, e.g. `scalepy.breaker.opened`.
            attributes: Details of the event.
        """
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(name, attributes)

    def inject_context(self) -> dict[str, str]:
        """Return the current trace context (and baggage) as a carrier of text headers.

        Uses the globally configured propagators (W3C `traceparent` by default), so a
        process that carries work elsewhere, e.g. a task-queue job, can resume the
        trace there with `attached_context`.

        Returns:
            The headers, e.g. `{"traceparent": "00-…-01"}`; empty when there is no
            context to carry.
        """
        carrier: dict[str, str] = {}
        if context.get_current():  # empty: no span, no baggage, nothing to carry
            propagate.inject(carrier)
        return carrier

    @contextlib.contextmanager
    def attached_context(self, carrier: Mapping[str, str]) -> Iterator[None]:
        """Make the context carried in `carrier` (see `inject_context`) current for the block.

        Spans started in the block are children of the span that was current where
        the carrier was made.

        Args:
            carrier: Headers made by `inject_context`.
        """
        token = context.attach(propagate.extract(carrier))
        try:
            yield
        finally:
            context.detach(token)

    def __repr__(self) -> str:
        return f"OpenTelemetryInstrumentation(metrics={len(self._recorders)})"
