"""Report scalepy metrics to a Prometheus `CollectorRegistry` the caller owns.

Nothing is registered on `prometheus_client.REGISTRY` unless the caller passes
it. Create one `PrometheusInstrumentation` per registry and share it between
primitives: a second one on the same registry cannot register the same metrics.

```python
from prometheus_client import CollectorRegistry
from scalepy.integrations.prometheus import (
    PrometheusInstrumentation, exposition_registry, render_latest,
)

registry = CollectorRegistry()
instrumentation = PrometheusInstrumentation(registry=registry)
...
body, content_type = instrumentation.render_metrics()  # what /metrics serves
```

Multi-process servers (gunicorn, several uvicorn workers) set
`PROMETHEUS_MULTIPROC_DIR` before `prometheus_client` is imported; every process
then writes its values to files there, and `exposition_registry()` merges them.
Gauges and up-down counters are summed over live processes (`livesum`): call
`prometheus_client.multiprocess.mark_process_dead(pid)` when a worker exits.
"""

from __future__ import annotations

import operator
import os
import re
from typing import TYPE_CHECKING, cast

from scalepy._extras import missing_extra
from scalepy.errors import ConfigurationError
from scalepy.telemetry import NOOP, MetricKind, _RecorderCache

try:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.multiprocess import MultiProcessCollector
except ImportError as exc:
    raise missing_extra(__name__, "prometheus") from exc

if TYPE_CHECKING:
    import contextlib
    from collections.abc import Callable, Mapping

    from prometheus_client.metrics import MetricWrapperBase

    from scalepy.telemetry import Attributes, Metric, Recorder, Span

__all__ = ("PrometheusInstrumentation", "exposition_registry", "prometheus_name", "render_latest")

_MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

_UNIT_SUFFIXES = {
    "1": "",
    "%": "percent",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
}
_NOT_NAME_CHARACTERS = re.compile(r"[^a-z0-9]+")


def _unit_suffix(metric: Metric) -> str:
    """Return the Prometheus name suffix for a metric's UCUM unit ("" for none)."""
    unit = metric.unit
    if unit == "1":  # dimensionless: a gauge of it is a ratio, anything else has no unit
        return "ratio" if metric.kind is MetricKind.GAUGE else ""
    if unit in _UNIT_SUFFIXES:
        return _UNIT_SUFFIXES[unit]
    if unit.startswith("{") and unit.endswith("}"):  # an annotation such as {command}
        return ""
    return _NOT_NAME_CHARACTERS.sub("_", unit.lower()).strip("_")


def _family_name(metric: Metric) -> str:
    """The name without the type suffix: dots become underscores, then the unit is appended."""
    name = metric.name.replace(".", "_")
    unit = _unit_suffix(metric)
    return f"{name}_{unit}" if unit and not name.endswith(f"_{unit}") else name


def prometheus_name(metric: Metric) -> str:
    """Return the name a metric is exposed under, as OpenTelemetry's Prometheus exporters map it.

    Dots become underscores; the unit is appended as a word (`s` -> `_seconds`,
    `By` -> `_bytes`, `1` on a gauge -> `_ratio`; annotations like `{request}`
    add nothing); counters end in `_total`. Histograms expose this name's
    `_bucket`, `_sum` and `_count` series.

    Args:
        metric: The metric definition.

    Returns:
        E.g. `scalepy_cache_requests_total` for the counter `scalepy.cache.requests`
        or `scalepy_cache_load_duration_seconds` for the histogram
        `scalepy.cache.load.duration` in `s`.
    """
    name = _family_name(metric)
    return f"{name}_total" if metric.kind is MetricKind.COUNTER else name


_OPERATIONS = {
    MetricKind.COUNTER: "inc",
    MetricKind.UP_DOWN_COUNTER: "inc",
    MetricKind.HISTOGRAM: "observe",
    MetricKind.GAUGE: "set",
}
"""The collector method that applies one value of each kind."""

_MAX_LABEL_SETS = 1024
"""Label sets a recorder remembers; past that it starts over (the children stay)."""


def _operation(collector: MetricWrapperBase, kind: MetricKind) -> Callable[[float], None]:
    """Return the bound method applying one value of a `kind` metric to `collector`."""
    return cast("Callable[[float], None]", getattr(collector, _OPERATIONS[kind]))


class _UnlabelledRecorder:
    """Applies each value to a collector without labels; labels given are dropped."""

    __slots__ = ("_apply",)

    def __init__(self, apply: Callable[[float], None]) -> None:
        self._apply = apply

    def record(self, value: float, labels: Mapping[str, str] | None = None) -> None:
        """Apply the value: the metric declares no label to keep."""
        self._apply(value)


class _LabelledRecorder:
    """Applies each value to the collector's child for the recording's label values.

    The child's bound operation is remembered per label values, picked out of the
    mapping by one `itemgetter` call: `labels()` validates and locks on every call,
    which costs as much as the operation itself on a hot path, and building a key
    out of the mapping's items costs nearly as much again. Keys the metric does not
    declare are not picked, so they cannot grow the memo; `_MAX_LABEL_SETS` bounds
    it should a caller vary the values themselves (forgetting costs nothing but a
    lookup: scalepy never removes a child).
    """

    __slots__ = ("_applies", "_collector", "_keys", "_kind", "_pick")

    def __init__(
        self, collector: MetricWrapperBase, kind: MetricKind, keys: tuple[str, ...]
    ) -> None:
        self._collector = collector
        self._kind = kind
        self._keys = keys
        # The declared values of a complete label mapping: one value, or a tuple of them
        # (None, or a mapping missing one, raises: `record` takes the slow path then).
        self._pick = cast(
            "Callable[[Mapping[str, str] | None], object]", operator.itemgetter(*keys)
        )
        self._applies: dict[object, Callable[[float], None]] = {}

    def record(self, value: float, labels: Mapping[str, str] | None = None) -> None:
        """Apply the value; declared labels that are missing are exported as ""."""
        try:
            apply = self._applies[self._pick(labels)]
        except (KeyError, TypeError):  # new values, a declared label missing, or no labels
            # Such labels are remembered by their values, None for each one missing.
            values = () if labels is None else tuple(map(labels.get, self._keys))
            apply = self._applies.get(values) or self._child_operation(values)
        apply(value)

    def _child_operation(self, values: tuple[str | None, ...]) -> Callable[[float], None]:
        """Find the child of `values` (`()`: no labels given); remember its operation."""
        exported = ("" if v is None else v for v in values or (None,) * len(self._keys))
        apply = _operation(self._collector.labels(*exported), self._kind)
        if len(self._applies) >= _MAX_LABEL_SETS:
            self._applies.clear()
        self._applies[values] = apply
        if values and None not in values:  # complete: `record` picks them by `_pick` next
            self._applies[values if len(values) > 1 else values[0]] = apply
        return apply


class PrometheusInstrumentation:
    """An `Instrumentation` that registers one Prometheus collector per metric.

    Names are `prometheus_name(metric)`: dots become underscores, the unit
    adds a suffix (`s` -> `_seconds`) and counters end in `_total`. Kinds: counters
    map to `Counter`, up-down counters to `Gauge.inc`, histograms to
    `Histogram` (with `Metric.buckets`, else the client's default buckets) and
    gauges to `Gauge.set`. Gauges use `multiprocess_mode="livesum"`. Label keys
    lose their dots too; labels a recording omits are exported as "", and keys
    the metric does not declare are dropped.

    Prometheus has no spans: `span()` returns a shared no-op context manager and
    `event()` does nothing. `render_metrics()` renders the registry for a scrape,
    which is how `scalepy.health` serves `/metrics`.

    Args:
        registry: The registry to register collectors on.
    """

    def __init__(self, *, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._recorders = _RecorderCache(self._create)

    def metric(self, metric: Metric) -> Recorder:
        """Return the recorder for a metric, registering its collector on first use.

        Args:
            metric: The metric definition.

        Returns:
            The same recorder for every call with an equal definition.

        Raises:
            ConfigurationError: If a different metric was already defined under
                the same name, or the registry rejects the collector (most often
                because something else registered the same Prometheus name).
        """
        return self._recorders.get(metric)

    def _create(self, metric: Metric) -> Recorder:
        collector = self._collector(metric)
        if not metric.labels:
            return _UnlabelledRecorder(_operation(collector, metric.kind))
        return _LabelledRecorder(collector, metric.kind, metric.labels)

    def _collector(self, metric: Metric) -> MetricWrapperBase:
        """Register the collector of `metric` on the registry."""
        name, unit = _family_name(metric), _unit_suffix(metric)
        labelnames = tuple(label.replace(".", "_") for label in metric.labels)
        if len(set(labelnames)) != len(labelnames):
            raise ConfigurationError(
                f"labels {metric.labels!r} of metric {metric.name!r} collide once dots "
                "become underscores; rename one of them"
            )
        registry = self._registry
        try:
            if metric.kind is MetricKind.COUNTER:
                return Counter(name, metric.description, labelnames, unit=unit, registry=registry)
            if metric.kind is MetricKind.HISTOGRAM:
                return Histogram(
                    name,
                    metric.description,
                    labelnames,
                    unit=unit,
                    registry=registry,
                    buckets=metric.buckets or Histogram.DEFAULT_BUCKETS,
                )
            return Gauge(  # up-down counters add to a gauge, gauges set it
                name,
                metric.description,
                labelnames,
                unit=unit,
                registry=registry,
                multiprocess_mode="livesum",
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"cannot register metric {metric.name!r} on the Prometheus registry: {exc}; "
                "share one PrometheusInstrumentation per registry"
            ) from exc

    def span(
        self, name: str, attributes: Attributes | None = None
    ) -> contextlib.AbstractContextManager[Span]:
        """Return the shared no-op span context manager: Prometheus has no spans.

        Args:
            name: The operation name (ignored).
            attributes: Attributes of the span (ignored).

        Returns:
            A reusable context manager yielding a span that ignores everything.
        """
        return NOOP.span(name, attributes)

    def event(self, name: str, attributes: Attributes | None = None) -> None:
        """Do nothing: Prometheus has no events.

        Args:
            name: The event name (ignored).
            attributes: Details of the event (ignored).
        """

    def render_metrics(self, accept: str = "") -> tuple[bytes, str]:
        """Render the registry (every process's values in multi-process mode) for a scrape.

        Collecting may read many files: call it off the event loop.

        Args:
            accept: The scraper's `Accept` header; `application/openmetrics-text`
                gives OpenMetrics, anything else the classic text format.

        Returns:
            The response body and its `Content-Type`.
        """
        return render_latest(exposition_registry(self._registry), accept)

    def __repr__(self) -> str:
        return f"PrometheusInstrumentation(metrics={len(self._recorders)})"


def exposition_registry(registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """Return the registry to expose on the metrics endpoint.

    Call it per scrape, or once per process: a multi-process registry reads the
    files on every collection.

    Args:
        registry: The registry the instrumentation writes to, used as is in
            single-process mode.

    Returns:
        When `PROMETHEUS_MULTIPROC_DIR` is set, a fresh registry whose only
        collector merges the values of every process from that directory.
        Otherwise `registry`, or a fresh empty registry if none is given.

    Raises:
        ValueError: If `PROMETHEUS_MULTIPROC_DIR` is set but is not a directory.
    """
    if os.environ.get(_MULTIPROC_DIR_ENV):
        merged = CollectorRegistry()
        # MultiProcessCollector is unannotated; it registers itself on `merged`.
        add_collector = cast("Callable[[CollectorRegistry], object]", MultiProcessCollector)
        add_collector(merged)
        return merged
    return registry if registry is not None else CollectorRegistry()


def render_latest(registry: CollectorRegistry, accept: str = "") -> tuple[bytes, str]:
    """Render a registry for a scrape.

    Args:
        registry: What to render, usually `exposition_registry(...)`.
        accept: The scraper's `Accept` header; the default gives the classic
            Prometheus text format, `application/openmetrics-text` gives
            OpenMetrics.

    Returns:
        The response body and its `Content-Type`.
    """
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
