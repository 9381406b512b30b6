"""The instrumentation contract every scalepy primitive reports through.

Primitives never import a metrics or tracing vendor. They describe their metrics
once as `Metric` values, ask an `Instrumentation` for a `Recorder` per metric at
construction, and wrap interesting operations in `Instrumentation.span()`:

```python
HITS = Metric(name="scalepy.cache.hits", kind=MetricKind.COUNTER, unit="{request}",
              description="Cache lookups answered from the cache.",
              labels=("scalepy.cache.name",))

class Cache:
    def __init__(self, *, instrumentation: Instrumentation | None = None) -> None:
        instrumentation = instrumentation or get_default()
        self._hits = instrumentation.metric(HITS)
```

The default is `NoopInstrumentation`: it hands out one shared recorder and one
shared span context manager, so an unconfigured primitive pays a method call and
nothing else. `scalepy.integrations.opentelemetry` and
`scalepy.integrations.prometheus` implement the protocol for real backends;
`combine()` fans out to several of them, and `scalepy.testing` provides an
in-memory `RecordingInstrumentation` for tests. Two optional abilities, found with
`context_propagation()` and `metrics_exposition()`, let the task queue carry trace
context and the health endpoints serve `/metrics` without importing a vendor.

scalepy's own metrics live in one catalogue per primitive and follow one naming
rule (docs/telemetry.md): `scalepy.<primitive>.<thing>`, UCUM units, attribute
keys under the same namespace.

This module imports only the standard library.
"""

from __future__ import annotations

import contextlib
import enum
import math
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from scalepy.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

__all__ = (
    "ERROR_TYPE",
    "NOOP",
    "AttributeValue",
    "Attributes",
    "ContextPropagation",
    "Instrumentation",
    "Metric",
    "MetricKind",
    "MetricsExposition",
    "NoopInstrumentation",
    "Recorder",
    "Span",
    "combine",
    "context_propagation",
    "get_default",
    "metrics_exposition",
    "set_default",
)

AttributeValue = str | bool | int | float
"""A value a span or event attribute may hold."""

Attributes = Mapping[str, AttributeValue]
"""Attributes of a span or an event, keyed by dotted names such as `db.system`."""

ERROR_TYPE = "error.type"
"""The attribute naming what went wrong (the exception's class name), as OpenTelemetry names it."""

_DOTTED_NAME = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")
_MAX_NAME_LENGTH = 255  # the OpenTelemetry limit for instrument names


class MetricKind(enum.Enum):
    """How the values given to a `Recorder` are aggregated."""

    COUNTER = "counter"
    """A monotonic sum: each value (never negative) is added."""
    UP_DOWN_COUNTER = "up_down_counter"
    """A sum that may go down: each value, positive or negative, is added."""
    HISTOGRAM = "histogram"
    """A distribution: each value is one observation, e.g. a duration."""
    GAUGE = "gauge"
    """A current level: each value replaces the previous one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Metric:
    """The definition of one metric, shared by every backend.

    Definitions are plain values: two equal `Metric` objects describe the same
    metric, and a backend rejects a second, different definition under a name it
    has already seen.

    Raises:
        ConfigurationError: If a field holds a value that is not allowed; the
            message says what is.
    """

    name: str
    """Dotted lowercase identifiers in OpenTelemetry style, e.g. `scalepy.redis.commands`."""
    kind: MetricKind
    """How recorded values are aggregated."""
    description: str
    """One sentence saying what is measured; exported as the help text."""
    unit: str = "1"
    """A UCUM unit: `s`, `By`, `1` (dimensionless) or an annotation like `{command}`."""
    labels: tuple[str, ...] = ()
    """The label keys a recording may carry; keep their values low-cardinality."""
    buckets: tuple[float, ...] | None = None
    """Strictly increasing histogram bucket boundaries, a hint to backends; histograms only."""

    def __post_init__(self) -> None:
        if len(self.name) > _MAX_NAME_LENGTH or not _DOTTED_NAME.fullmatch(self.name):
            raise ConfigurationError(
                f"invalid metric name {self.name!r}: expected dotted lowercase identifiers "
                f"of at most {_MAX_NAME_LENGTH} characters, e.g. 'scalepy.redis.commands'"
            )
        if not self.description.strip():
            raise ConfigurationError(f"metric {self.name!r} needs a non-empty description")
        if not self.unit or not self.unit.isascii() or any(c.isspace() for c in self.unit):
            raise ConfigurationError(
                f"invalid unit {self.unit!r} for metric {self.name!r}: expected a UCUM unit "
                "such as 's', 'By', '1' or '{command}'"
            )
        self._check_labels()
        self._check_buckets()

    def _check_labels(self) -> None:
        for label in self.labels:
            if not _DOTTED_NAME.fullmatch(label):
                raise ConfigurationError(
                    f"invalid label {label!r} for metric {self.name!r}: expected dotted "
                    "lowercase identifiers, e.g. 'cache' or 'db.system'"
                )
        if len(set(self.labels)) != len(self.labels):
            raise ConfigurationError(f"metric {self.name!r} lists a label twice: {self.labels!r}")
        if self.kind is MetricKind.HISTOGRAM and "le" in self.labels:
            raise ConfigurationError(
                f"histogram {self.name!r} cannot use the label 'le', reserved for buckets"
            )

    def _check_buckets(self) -> None:
        if self.buckets is None:
            return
        if self.kind is not MetricKind.HISTOGRAM:
            raise ConfigurationError(
                f"metric {self.name!r} is a {self.kind.value}: only histograms take buckets"
            )
        if not self.buckets:
            raise ConfigurationError(
                f"histogram {self.name!r} has empty buckets: give at least one boundary, "
                "or None for the backend's default"
            )
        if not all(math.isfinite(bound) for bound in self.buckets):
            raise ConfigurationError(
                f"histogram {self.name!r} buckets must be finite numbers, got {self.buckets!r}"
            )
        if any(low >= high for low, high in zip(self.buckets, self.buckets[1:], strict=False)):
            raise ConfigurationError(
                f"histogram {self.name!r} buckets must be strictly increasing, got {self.buckets!r}"
            )


class Recorder(Protocol):
    """Records values of one metric; obtained once from `Instrumentation.metric()`."""

    def record(self, value: float, labels: Mapping[str, str] | None = None) -> None:
        """Record one value.

        Counters and up-down counters add `value`, histograms observe it and
        gauges are set to it. Counter values must not be negative.

        Args:
            value: The amount, observation or level.
            labels: Values for (a subset of) the metric's declared label keys.
                Backends drop keys the metric does not declare.
        """
        ...


class Span(Protocol):
    """An operation in progress, as handed out by `Instrumentation.span()`."""

    def add_event(self, name: str, attributes: Attributes | None = None) -> None:
        """Record that something happened during the operation.

        Args:
            name: The event name, e.g. `scalepy.breaker.opened`.
            attributes: Details of the event.
        """
        ...

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Attach or replace one attribute of the operation.

        Args:
            key: The dotted attribute name.
            value: Its value.
        """
        ...

    def record_exception(self, exc: BaseException, /) -> None:
        """Record an exception that was handled during the operation.

        Args:
            exc: The exception.
        """
        ...


class Instrumentation(Protocol):
    """Where primitives send metrics, spans and events.

    Primitives take an optional `instrumentation` argument and use
    `instrumentation or get_default()` once, at construction.
    """

    def metric(self, metric: Metric) -> Recorder:
        """Return the recorder for a metric, creating the backend instrument once.

        Args:
            metric: The metric definition.

        Returns:
            A recorder; asking again with the same definition is allowed.

        Raises:
            ConfigurationError: If a different metric was already defined under
                the same name.
        """
        ...

    def span(
        self, name: str, attributes: Attributes | None = None
    ) -> contextlib.AbstractContextManager[Span]:
        """Return a context manager timing one operation as a span.

        An `Exception` escaping the block is recorded on the span and marks it
        as failed, then propagates. Other `BaseException`s (cancellation,
        `KeyboardInterrupt`) end the span without marking it failed.

        Args:
            name: The operation name, e.g. `scalepy.cache.get`.
            attributes: Attributes of the span.

        Returns:
            A context manager whose value is the span.
        """
        ...

    def event(self, name: str, attributes: Attributes | None = None) -> None:
        """Record an event on the current span, if there is one.

        Args:
            name: The event name, e.g. `scalepy.breaker.opened`.
            attributes: Details of the event.
        """
        ...


@runtime_checkable
class ContextPropagation(Protocol):
    """An optional ability: carrying the current trace context to another process.

    The task queue uses it to continue the enqueuing trace in the worker. Find it
    on an instrumentation with `context_propagation()`.
    """

    def inject_context(self) -> dict[str, str]:
        """Return the current trace context as text headers (empty when there is none).

        Returns:
            The headers, e.g. `{"traceparent": "00-…-01"}`.
        """
        ...

    def attached_context(
        self, carrier: Mapping[str, str]
    ) -> contextlib.AbstractContextManager[None]:
        """Return a context manager making the context in `carrier` current for its block.

        Args:
            carrier: Headers made by `inject_context()`, possibly in another process.

        Returns:
            The context manager.
        """
        ...


@runtime_checkable
class MetricsExposition(Protocol):
    """An optional ability: rendering the recorded metrics for a scrape.

    The health endpoints serve `/metrics` with it. Find it on an instrumentation
    with `metrics_exposition()`.
    """

    def render_metrics(self, accept: str = "") -> tuple[bytes, str]:
        """Render every metric for one scrape. May block: call it off the event loop.

        Args:
            accept: The scraper's `Accept` header, to choose the format.

        Returns:
            The body and its `Content-Type`.
        """
        ...


def _members(instrumentation: Instrumentation) -> tuple[Instrumentation, ...]:
    """The instrumentations a `combine()` result forwards to, or the instrumentation alone."""
    return instrumentation.members if isinstance(instrumentation, _Fanout) else (instrumentation,)


def context_propagation(instrumentation: Instrumentation) -> ContextPropagation | None:
    """Return what carries trace context for `instrumentation`, if anything does.

    Call it once, at construction: the check is not free.

    Args:
        instrumentation: An instrumentation, possibly made by `combine()`.

    Returns:
        The instrumentation itself, or the first member of a combination, that
        implements `ContextPropagation`; `None` if none does.
    """
    return next((m for m in _members(instrumentation) if isinstance(m, ContextPropagation)), None)


def metrics_exposition(instrumentation: Instrumentation) -> MetricsExposition | None:
    """Return what renders the metrics of `instrumentation` for a scrape, if anything does.

    Args:
        instrumentation: An instrumentation, possibly made by `combine()`.

    Returns:
        The instrumentation itself, or the first member of a combination, that
        implements `MetricsExposition`; `None` if none does.
    """
    return next((m for m in _members(instrumentation) if isinstance(m, MetricsExposition)), None)


class _RecorderCache:
    """One recorder per metric name, created on first use; what every `metric()` is built on.

    Asking again with an equal definition returns the same recorder; a different
    definition under a known name is rejected. A creation that raises leaves
    nothing behind. Safe to share between threads.

    Args:
        create: Makes the recorder for a metric name seen for the first time.
    """

    __slots__ = ("_create", "_known", "_lock")

    def __init__(self, create: Callable[[Metric], Recorder]) -> None:
        self._create = create
        self._lock = threading.Lock()
        self._known: dict[str, tuple[Metric, Recorder]] = {}

    def get(self, metric: Metric) -> Recorder:
        """Return the recorder for `metric`, as the class docstring describes.

        Raises:
            ConfigurationError: If a different metric is known under its name.
        """
        with self._lock:
            known = self._known.get(metric.name)
            if known is None:
                known = self._known[metric.name] = (metric, self._create(metric))
        if known[0] != metric:
            raise ConfigurationError(
                f"metric {metric.name!r} is already defined as {known[0]!r}; "
                f"cannot redefine it as {metric!r}"
            )
        return known[1]

    def __len__(self) -> int:
        return len(self._known)


class _NoopRecorder:
    """A recorder that discards every value."""

    __slots__ = ()

    def record(self, value: float, labels: Mapping[str, str] | None = None) -> None:
        """Discard the value."""


class _NoopSpan(contextlib.AbstractContextManager["_NoopSpan"]):
    """A span that ignores everything; it is its own reusable context manager."""

    __slots__ = ()

    def add_event(self, name: str, attributes: Attributes | None = None) -> None:
        """Discard the event."""

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Discard the attribute."""

    def record_exception(self, exc: BaseException, /) -> None:
        """Discard the exception."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None


_NOOP_RECORDER = _NoopRecorder()
_NOOP_SPAN = _NoopSpan()


class NoopInstrumentation:
    """An instrumentation that records nothing and allocates nothing per call.

    `metric()` always returns the same recorder and `span()` the same reusable
    context manager. It is the process default until `set_default()` is called.
    """

    __slots__ = ()

    def metric(self, metric: Metric) -> Recorder:
        """Return the shared recorder that discards every value.

        Args:
            metric: The metric definition (ignored).

        Returns:
            The shared no-op recorder.
        """
        return _NOOP_RECORDER

    def span(
        self, name: str, attributes: Attributes | None = None
    ) -> contextlib.AbstractContextManager[Span]:
        """Return the shared no-op span context manager.

        Args:
            name: The operation name (ignored).
            attributes: Attributes of the span (ignored).

        Returns:
            A reusable context manager yielding a span that ignores everything.
        """
        return _NOOP_SPAN

    def event(self, name: str, attributes: Attributes | None = None) -> None:
        """Do nothing.

        Args:
            name: The event name (ignored).
            attributes: Details of the event (ignored).
        """

    def __repr__(self) -> str:
        return "NoopInstrumentation()"


NOOP = NoopInstrumentation()
"""A stateless `NoopInstrumentation`, the initial process default."""


class _FanoutRecorder:
    """Records each value on several recorders."""

    __slots__ = ("_records",)

    def __init__(self, recorders: tuple[Recorder, ...]) -> None:
        self._records = tuple(recorder.record for recorder in recorders)

    def record(self, value: float, labels: Mapping[str, str] | None = None) -> None:
        """Record the value on every recorder."""
        for record in self._records:
            record(value, labels)


def _fanout_recorder(recorders: tuple[Recorder, ...]) -> Recorder:
    """Record on every recorder that keeps values; a lone one needs no fan-out in front."""
    kept = tuple(recorder for recorder in recorders if recorder is not _NOOP_RECORDER)
    if len(kept) > 1:
        return _FanoutRecorder(kept)
    return kept[0] if kept else _NOOP_RECORDER


class _FanoutSpan:
    """Forwards everything to one span per combined instrumentation."""

    __slots__ = ("_spans",)

    def __init__(self, spans: tuple[Span, ...]) -> None:
        self._spans = spans

    def add_event(self, name: str, attributes: Attributes | None = None) -> None:
        """Add the event to every span."""
        for span in self._spans:
            span.add_event(name, attributes)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Set the attribute on every span."""
        for span in self._spans:
            span.set_attribute(key, value)

    def record_exception(self, exc: BaseException, /) -> None:
        """Record the exception on every span."""
        for span in self._spans:
            span.record_exception(exc)


class _Fanout:
    """Sends everything to several instrumentations, in order."""

    __slots__ = ("members",)

    def __init__(self, members: tuple[Instrumentation, ...]) -> None:
        self.members = members

    def metric(self, metric: Metric) -> Recorder:
        """Return a recorder recording on every member's recorder that keeps values."""
        return _fanout_recorder(tuple(member.metric(metric) for member in self.members))

    @contextlib.contextmanager
    def _span(self, name: str, attributes: Attributes | None) -> Iterator[Span]:
        with contextlib.ExitStack() as stack:
            spans = tuple(stack.enter_context(m.span(name, attributes)) for m in self.members)
            yield _FanoutSpan(spans)

    def span(
        self, name: str, attributes: Attributes | None = None
    ) -> contextlib.AbstractContextManager[Span]:
        """Open one span per member; an escaping exception reaches all of them."""
        return self._span(name, attributes)

    def event(self, name: str, attributes: Attributes | None = None) -> None:
        """Send the event to every member."""
        for member in self.members:
            member.event(name, attributes)

    def __repr__(self) -> str:
        return f"combine({', '.join(map(repr, self.members))})"


def combine(*instrumentations: Instrumentation) -> Instrumentation:
    """Fan out to several instrumentations, e.g. OpenTelemetry and Prometheus.

    No-op members are dropped and nested combinations are flattened.

    Args:
        *instrumentations: The instrumentations to send everything to, in order.

    Returns:
        `NOOP` if nothing is left to combine, the single remaining
        instrumentation itself, or one that forwards to all of them.
    """
    members: list[Instrumentation] = []
    for instrumentation in instrumentations:
        if isinstance(instrumentation, _Fanout):
            members.extend(instrumentation.members)
        elif not isinstance(instrumentation, NoopInstrumentation):
            members.append(instrumentation)
    if not members:
        return NOOP
    if len(members) == 1:
        return members[0]
    return _Fanout(tuple(members))


_default: Instrumentation = NOOP


def get_default() -> Instrumentation:
    """Return the process-wide default instrumentation.

    Primitives call this once, at construction, when no instrumentation is
    passed (`instrumentation or get_default()`), so `set_default()` affects only
    primitives created afterwards.

    Returns:
        The instrumentation given to the last `set_default()` call, else `NOOP`.
    """
    return _default


def set_default(instrumentation: Instrumentation) -> None:
    """Set the process-wide default instrumentation for primitives created from now on.

    Call it once at start-up, before building primitives; pass `NOOP` to reset.

    Args:
        instrumentation: The new default.
    """
    global _default  # the one piece of global state, documented above
    _default = instrumentation
