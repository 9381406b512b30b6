"""Metric definitions shared by the instrumentation tests, and scalepy's metric catalogues.

`CATALOGUES` lists the module holding each primitive's catalogue (`NAMESPACE`,
`METRICS`); `render_reference()` turns them into the tables of docs/telemetry.md.
Run `python -m tests.support.metrics` to rewrite those tables after changing a
catalogue (tests/telemetry/test_metric_catalogues.py fails until the page matches).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import scalepy.backends.redis._metrics
import scalepy.breaker._metrics
import scalepy.bulkhead
import scalepy.cache._metrics
import scalepy.health._metrics
import scalepy.pools._metrics
import scalepy.queue._metrics
import scalepy.ratelimit._metrics
import scalepy.retry._metrics
import scalepy.shedding._metrics
from scalepy.integrations.prometheus import prometheus_name
from scalepy.telemetry import Metric, MetricKind

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from types import ModuleType

    from scalepy.telemetry import Recorder

__all__ = (
    "CATALOGUES",
    "CONFLICTING",
    "IN_FLIGHT",
    "LATENCY",
    "REFERENCE_PAGE",
    "REQUESTS",
    "SIZE",
    "WAIT",
    "catalogue",
    "record_all",
    "render_reference",
)

CATALOGUES: dict[str, ModuleType] = {
    "Cache": scalepy.cache._metrics,
    "Rate limiter": scalepy.ratelimit._metrics,
    "Circuit breaker": scalepy.breaker._metrics,
    "Retry": scalepy.retry._metrics,
    "Bulkhead": scalepy.bulkhead,
    "Load shedder": scalepy.shedding._metrics,
    "Connection pools": scalepy.pools._metrics,
    "Task queue": scalepy.queue._metrics,
    "Health": scalepy.health._metrics,
    "Redis client": scalepy.backends.redis._metrics,
}
"""Each primitive's catalogue module, by the heading it has in the reference."""

REFERENCE_PAGE = Path(__file__).resolve().parents[2] / "docs" / "telemetry.md"
"""The page whose tables `render_reference()` generates."""

_BEGIN, _END = "<!-- metrics:begin (generated) -->", "<!-- metrics:end -->"
_KINDS = {
    MetricKind.COUNTER: "counter",
    MetricKind.UP_DOWN_COUNTER: "up-down counter",
    MetricKind.HISTOGRAM: "histogram",
    MetricKind.GAUGE: "gauge",
}


def catalogue(module: ModuleType) -> tuple[str, tuple[Metric, ...]]:
    """Return a catalogue module's namespace and metrics."""
    namespace: str = module.NAMESPACE
    metrics: tuple[Metric, ...] = module.METRICS
    return namespace, metrics


def render_reference() -> str:
    """Return the generated part of the reference: one table per primitive."""
    parts = [_BEGIN]
    for heading, module in CATALOGUES.items():
        namespace, metrics = catalogue(module)
        parts += [
            f"### {heading}: `{namespace}`",
            "",
            "| Metric | Prometheus | Kind | Unit | Attributes | Meaning |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for metric in metrics:
            attributes = ", ".join(f"`{label}`" for label in metric.labels) or "-"
            parts.append(
                f"| `{metric.name}` | `{prometheus_name(metric)}` | {_KINDS[metric.kind]} "
                f"| `{metric.unit}` | {attributes} | {metric.description} |"
            )
        parts.append("")
    parts.append(_END)
    return "\n".join(parts)


def _rewrite(page: Path) -> None:
    text = page.read_text()
    pattern = re.compile(re.escape(_BEGIN) + ".*?" + re.escape(_END), re.DOTALL)
    page.write_text(pattern.sub(lambda _: render_reference(), text, count=1))


REQUESTS = Metric(
    name="scalepy.test.requests",
    kind=MetricKind.COUNTER,
    description="Requests handled.",
    unit="{request}",
    labels=("route", "db.system"),
)
"""A labelled counter with an annotation unit and a dotted label key."""

CONFLICTING = Metric(name=REQUESTS.name, kind=MetricKind.GAUGE, description="Other.")
"""A different definition under the name of `REQUESTS`."""

IN_FLIGHT = Metric(
    name="scalepy.test.in_flight", kind=MetricKind.UP_DOWN_COUNTER, description="Requests open."
)
"""An unlabelled, dimensionless up-down counter."""

LATENCY = Metric(
    name="scalepy.test.latency",
    kind=MetricKind.HISTOGRAM,
    description="Request duration.",
    unit="s",
    labels=("route",),
    buckets=(0.1, 1.0),
)
"""A labelled histogram in seconds with explicit buckets."""

WAIT = Metric(name="scalepy.test.wait", kind=MetricKind.HISTOGRAM, description="Wait.", unit="s")
"""An unlabelled histogram in seconds that leaves the buckets to the backend."""

SIZE = Metric(
    name="scalepy.test.size",
    kind=MetricKind.GAUGE,
    description="Pool size.",
    unit="{connection}",
    labels=("pool",),
)
"""A labelled gauge."""


def record_all(
    recorder: Recorder, records: Iterable[tuple[float, Mapping[str, str] | None]]
) -> None:
    """Record each `(value, labels)` pair in order."""
    for value, labels in records:
        recorder.record(value, labels)


if __name__ == "__main__":
    _rewrite(Path(sys.argv[1]) if len(sys.argv) > 1 else REFERENCE_PAGE)
