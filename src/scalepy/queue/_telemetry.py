"""The queue's metrics, and the trace context a job carries from `send` to `process`.

Spans follow the OpenTelemetry messaging conventions: the producer's `send <queue>`
and the worker's `process <queue>`, whose parent is the context that was current
where the job was enqueued. That context travels in the job as W3C headers, made
and read by `scalepy.integrations.opentelemetry` when `opentelemetry-api` is
installed; without it jobs carry nothing.
"""

from __future__ import annotations

import contextlib
import json
from functools import cache
from typing import TYPE_CHECKING

from scalepy.telemetry import Metric, MetricKind

if TYPE_CHECKING:
    from types import ModuleType

__all__ = (
    "DEAD_LETTERED",
    "DEPTH",
    "FAILED",
    "LEASES_LOST",
    "PROCESSED",
    "PROCESS_DURATION",
    "RETRIED",
    "SENT",
    "UNKNOWN_TASK",
    "WAIT_TIME",
    "capture_trace",
    "trace_scope",
)

_JOB_LABELS = ("queue", "task")
_DURATIONS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

SENT = Metric(
    name="scalepy.queue.jobs.sent",
    kind=MetricKind.COUNTER,
    unit="{job}",
    description="Jobs enqueued (a unique job already queued is not counted again).",
    labels=_JOB_LABELS,
)
PROCESSED = Metric(
    name="scalepy.queue.jobs.processed",
    kind=MetricKind.COUNTER,
    unit="{job}",
    description="Jobs whose attempt completed and was recorded.",
    labels=_JOB_LABELS,
)
FAILED = Metric(
    name="scalepy.queue.jobs.failed",
    kind=MetricKind.COUNTER,
    unit="{attempt}",
    description="Attempts that raised or timed out, or whose result could not be serialized.",
    labels=_JOB_LABELS,
)
RETRIED = Metric(
    name="scalepy.queue.jobs.retried",
    kind=MetricKind.COUNTER,
    unit="{job}",
    description="Failed attempts scheduled to be retried.",
    labels=_JOB_LABELS,
)
DEAD_LETTERED = Metric(
    name="scalepy.queue.jobs.dead_lettered",
    kind=MetricKind.COUNTER,
    unit="{job}",
    description="Jobs moved to the dead-letter set after their last attempt failed.",
    labels=_JOB_LABELS,
)
LEASES_LOST = Metric(
    name="scalepy.queue.leases.lost",
    kind=MetricKind.COUNTER,
    unit="{attempt}",
    description="Attempts whose lease expired or was taken over; their outcome was refused.",
    labels=_JOB_LABELS,
)
UNKNOWN_TASK = Metric(
    name="scalepy.queue.jobs.unknown_task",
    kind=MetricKind.COUNTER,
    unit="{job}",
    description=(
        "Jobs claimed by a worker that does not have their task, put back for another"
        " (or dead-lettered past the limit); the task label is empty."
    ),
    labels=_JOB_LABELS,
)
PROCESS_DURATION = Metric(
    name="scalepy.queue.process.duration",
    kind=MetricKind.HISTOGRAM,
    unit="s",
    description="Time a worker spent running one attempt of a job.",
    labels=_JOB_LABELS,
    buckets=_DURATIONS,
)
WAIT_TIME = Metric(
    name="scalepy.queue.wait.duration",
    kind=MetricKind.HISTOGRAM,
    unit="s",
    description="Time a job waited ready in the queue before a worker claimed it.",
    labels=_JOB_LABELS,
    buckets=_DURATIONS,
)
DEPTH = Metric(
    name="scalepy.queue.depth",
    kind=MetricKind.GAUGE,
    unit="{job}",
    description="Jobs in the queue by state: queued, scheduled, active, dead.",
    labels=("queue", "state"),
)


@cache
def _opentelemetry() -> ModuleType | None:
    try:
        from scalepy.integrations import opentelemetry
    except ImportError:
        return None
    return opentelemetry


def capture_trace() -> str:
    """Return the current trace context as the text a job carries, or `""` if none."""
    otel = _opentelemetry()
    carrier = {} if otel is None else otel.inject_context()
    return json.dumps(carrier, separators=(",", ":")) if carrier else ""


def trace_scope(trace: str) -> contextlib.AbstractContextManager[None]:
    """Make the context a job carries (`capture_trace`) current for a block."""
    otel = _opentelemetry()
    if not trace or otel is None:
        return contextlib.nullcontext()
    scope: contextlib.AbstractContextManager[None] = otel.attached_context(json.loads(trace))
    return scope
