"""An in-memory `Instrumentation` that lets tests assert on what a primitive reported."""

from __future__ import annotations

import contextlib
import math
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scalepy.errors import ConfigurationError
from scalepy.telemetry import MetricKind, _RecorderCache

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from scalepy.telemetry import Attributes, AttributeValue, Metric, Recorder, Span

__all__ = ("RecordedEvent", "RecordedSpan", "RecordingInstrumentation")


@dataclass(slots=True, kw_only=True)
class RecordedEvent:
    """An event added to a span or sent through `RecordingInstrumentation.event()`."""

    name: str
    """The event name."""
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    """A copy of the event's attributes."""


@dataclass(slots=True, kw_only=True, eq=False)
class RecordedSpan:
    """A span opened by `RecordingInstrumentation.span()`; it satisfies `Span`."""

    name: str
    """The operation name."""
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    """The span's attributes, including those set while it was open."""
    events: list[RecordedEvent] = field(default_factory=list)
    """Events added to the span, in order."""
    exception: BaseException | None = None
    """The last exception recorded on the span, or that escaped its block."""
    error: bool = False
    """Whether an `Exception` escaped the block."""
    parent: RecordedSpan | None = None
    """The span that was current when this one started."""

    def add_event(self, name: str, attributes: Attributes | None = None) -> None:
        """Append an event to `events`.

        Args:
            name: The event name.
            attributes: Details of the event.
        """
        self.events.append(RecordedEvent(name=name, attributes=dict(attributes or {})))

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Set one attribute.

        Args:
            key: The attribute name.
            value: Its value.
        """
        self.attributes[key] = value

    def record_exception(self, exc: BaseException, /) -> None:
        """Remember the exception in `exception`.

        Args:
            exc: The exception.
        """
        self.exception = exc


class _RecordingRecorder:
    """Appends every value of one metric to its instrumentation's `records`."""

    __slots__ = ("_metric", "_records")

    def __init__(self, metric: Metric, records: list[tuple[str, float, dict[str, str]]]) -> None:
        self._metric = metric
        self._records = records

    def record(self, value: float, labels: Mapping[str, str] | None = None) -> None:
        """Append the value, rejecting undeclared labels and negative counter increments."""
        metric = self._metric
        labels = dict(labels or {})
        undeclared = labels.keys() - set(metric.labels)
        if undeclared:
            raise ConfigurationError(
                f"metric {metric.name!r} declares labels {metric.labels!r}, "
                f"not {sorted(undeclared)!r}"
            )
        if metric.kind is MetricKind.COUNTER and value < 0:
            raise ValueError(f"counter {metric.name!r} cannot be incremented by {value!r}")
        self._records.append((metric.name, float(value), labels))


def _matches(labels: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in wanted.items())


class RecordingInstrumentation:
    """An `Instrumentation` that keeps everything in memory for assertions.

    It is stricter than the real backends, to catch mistakes early: recording a
    label the metric does not declare, or a negative counter increment, raises.
    Like OpenTelemetry, only an `Exception` escaping a span marks it as failed.

    Attributes:
        metrics: Every metric defined through `metric()`, by name.
        records: One `(metric name, value, labels)` tuple per recorded value.
        spans: Finished spans, in the order they ended.
        events: Events sent through `event()`, whether or not a span was current.
    """

    def __init__(self) -> None:
        self.metrics: dict[str, Metric] = {}
        self.records: list[tuple[str, float, dict[str, str]]] = []
        self.spans: list[RecordedSpan] = []
        self.events: list[RecordedEvent] = []
        self._recorders = _RecorderCache(self._define)
        # One variable per instance, so two instrumentations never share a current span.
        self._current: ContextVar[RecordedSpan | None] = ContextVar(
            f"scalepy.testing.current_span.{id(self):x}", default=None
        )

    def metric(self, metric: Metric) -> Recorder:
        """Return the recorder for a metric.

        Args:
            metric: The metric definition.

        Returns:
            The same recorder for every call with an equal definition.

        Raises:
            ConfigurationError: If a different metric was already defined under
                the same name.
        """
        return self._recorders.get(metric)

    def _define(self, metric: Metric) -> Recorder:
        self.metrics[metric.name] = metric
        return _RecordingRecorder(metric, self.records)

    @contextlib.contextmanager
    def _span(self, name: str, attributes: Attributes | None) -> Iterator[Span]:
        span = RecordedSpan(
            name=name, attributes=dict(attributes or {}), parent=self._current.get()
        )
        token = self._current.set(span)
        try:
            yield span
        except Exception as exc:
            span.record_exception(exc)
            span.error = True
            raise
        finally:
            self._current.reset(token)
            self.spans.append(span)

    def span(
        self, name: str, attributes: Attributes | None = None
    ) -> contextlib.AbstractContextManager[Span]:
        """Open a `RecordedSpan`, current until the block ends, then append it to `spans`.

        Args:
            name: The operation name.
            attributes: Attributes of the span.

        Returns:
            A context manager whose value is the `RecordedSpan`.
        """
        return self._span(name, attributes)

    def event(self, name: str, attributes: Attributes | None = None) -> None:
        """Append an event to `events` and to the current span's events, if any.

        Args:
            name: The event name.
            attributes: Details of the event.
        """
        event = RecordedEvent(name=name, attributes=dict(attributes or {}))
        self.events.append(event)
        span = self._current.get()
        if span is not None:
            span.events.append(event)

    def value(
        self, name: str, attributes: Mapping[str, str] | None = None, /, **labels: str
    ) -> float:
        """Return the aggregated value of a metric over the records matching the labels.

        Args:
            name: The metric name.
            attributes: Label values a record must have, for dotted keys such as
                `{"scalepy.cache.result": "hit"}`; others are not compared.
            **labels: More label values a record must have, for plain keys.

        Returns:
            The sum of the values for counters and up-down counters, the sum of
            the observations for histograms, and the last value for gauges (0.0
            when nothing matches).

        Raises:
            KeyError: If no metric of that name was defined, or it declares no
                label of a key asked for.
        """
        kind = self._definition(name).kind
        values = list(self._matching(name, {**(attributes or {}), **labels}))
        if kind is MetricKind.GAUGE:
            return values[-1] if values else 0.0
        return math.fsum(values)

    def count(
        self, name: str, attributes: Mapping[str, str] | None = None, /, **labels: str
    ) -> int:
        """Return how many values were recorded for a metric with matching labels.

        Args:
            name: The metric name.
            attributes: Label values a record must have, for dotted keys; others
                are not compared.
            **labels: More label values a record must have, for plain keys.

        Returns:
            The number of matching records, e.g. the observation count of a histogram.

        Raises:
            KeyError: If no metric of that name was defined, or it declares no
                label of a key asked for.
        """
        self._definition(name)
        return sum(1 for _ in self._matching(name, {**(attributes or {}), **labels}))

    def clear(self) -> None:
        """Forget records, spans and events; metric definitions are kept."""
        self.records.clear()
        self.spans.clear()
        self.events.clear()

    def _definition(self, name: str) -> Metric:
        try:
            return self.metrics[name]
        except KeyError:
            raise KeyError(
                f"no metric {name!r} was defined; known: {sorted(self.metrics)!r}"
            ) from None

    def _matching(self, name: str, labels: Mapping[str, str]) -> Iterator[float]:
        undeclared = labels.keys() - set(self.metrics[name].labels)
        if undeclared:  # a misspelt key would match nothing and make any "== 0" pass
            raise KeyError(
                f"metric {name!r} declares labels {self.metrics[name].labels!r}, "
                f"not {sorted(undeclared)!r}"
            )
        return (
            value
            for metric, value, recorded in self.records
            if metric == name and _matches(recorded, labels)
        )

    def __repr__(self) -> str:
        return (
            f"RecordingInstrumentation(metrics={len(self.metrics)}, records={len(self.records)}, "
            f"spans={len(self.spans)}, events={len(self.events)})"
        )
