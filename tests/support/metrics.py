"""Metric definitions shared by the instrumentation tests, one per kind, and a way to feed them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scalepy.telemetry import Metric, MetricKind

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from scalepy.telemetry import Recorder

__all__ = ("CONFLICTING", "IN_FLIGHT", "LATENCY", "REQUESTS", "SIZE", "WAIT", "record_all")

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
    name="scalepy.test.size", kind=MetricKind.GAUGE, description="Pool size.", labels=("pool",)
)
"""A labelled gauge."""


def record_all(
    recorder: Recorder, records: Iterable[tuple[float, Mapping[str, str] | None]]
) -> None:
    """Record each `(value, labels)` pair in order."""
    for value, labels in records:
        recorder.record(value, labels)
