"""The task queue's metric catalogue: every instrument a queue and its workers emit."""

from __future__ import annotations

from scalepy.telemetry import Metric, MetricKind

__all__ = (
    "DEAD_LETTERED",
    "FAILED",
    "JOB_COUNT",
    "JOB_STATE",
    "LEASES_LOST",
    "METRICS",
    "NAMESPACE",
    "PROCESSED",
    "PROCESS_DURATION",
    "QUEUE_NAME",
    "RETRIED",
    "SENT",
    "TASK_NAME",
    "UNKNOWN_TASK",
    "WAIT_DURATION",
)

NAMESPACE = "scalepy.queue"

QUEUE_NAME = "scalepy.queue.name"
"""The queue's name."""
TASK_NAME = "scalepy.queue.task"
"""The task's name (empty for a job whose task the worker does not have)."""
JOB_STATE = "scalepy.queue.job.state"
"""Where a job is: `queued`, `scheduled`, `active` or `dead`."""

_JOB_LABELS = (QUEUE_NAME, TASK_NAME)
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
    name="scalepy.queue.attempts.failed",
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
    unit="{lease}",
    description="Attempts whose lease expired or was taken over; their outcome was refused.",
    labels=_JOB_LABELS,
)
UNKNOWN_TASK = Metric(
    name="scalepy.queue.jobs.unknown_task",
    kind=MetricKind.COUNTER,
    unit="{job}",
    description=(
        "Jobs claimed by a worker that does not have their task, put back for another"
        " (or dead-lettered past the limit); the task attribute is empty."
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
WAIT_DURATION = Metric(
    name="scalepy.queue.wait.duration",
    kind=MetricKind.HISTOGRAM,
    unit="s",
    description="Time a job waited ready in the queue before a worker claimed it.",
    labels=_JOB_LABELS,
    buckets=_DURATIONS,
)
JOB_COUNT = Metric(
    name="scalepy.queue.job.count",
    kind=MetricKind.GAUGE,
    unit="{job}",
    description="Jobs in the queue by state: queued, scheduled, active, dead.",
    labels=(QUEUE_NAME, JOB_STATE),
)

METRICS = (
    SENT,
    PROCESSED,
    FAILED,
    RETRIED,
    DEAD_LETTERED,
    LEASES_LOST,
    UNKNOWN_TASK,
    PROCESS_DURATION,
    WAIT_DURATION,
    JOB_COUNT,
)
"""Every metric a queue and its workers emit, in the order the reference lists them."""
