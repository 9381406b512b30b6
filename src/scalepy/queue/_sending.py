"""Enqueueing: serialize at the call, then one `enqueue.lua` call per chunk of jobs.

Every job of one call shares its task and options, sent once per script call;
each job adds only its id (24 random hex digits, made here), its arguments and
its unique key.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import TYPE_CHECKING, Any, TypeVar

from scalepy.errors import ConfigurationError
from scalepy.queue._job import Job
from scalepy.queue._store import Batch
from scalepy.queue._telemetry import capture_trace

if TYPE_CHECKING:
    from collections.abc import Iterable

    from scalepy.queue._store import NewJob
    from scalepy.queue._task import EnqueueOptions

__all__ = ("send", "send_many")

R = TypeVar("R")

_CHUNKS_IN_FLIGHT = 4


async def send(
    options: EnqueueOptions[Any, R], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Job[R]:
    """Enqueue one job of `options.task` with these arguments; see `Task.enqueue`."""
    task = options.task
    queue = task.queue
    payload = task.codec.dump_arguments(args, kwargs)  # before any I/O: fails at the call
    with queue._instrumentation.span(queue._send_span, _attributes(options, 1)):
        jobs = _new_jobs(options, [payload])
        ((job_id, created, other_task),) = await queue._store.enqueue(_batch(options), jobs)
    if other_task is not None:
        raise ConfigurationError(
            f"job id {job_id!r} is taken by a job of task {other_task!r}, not {task.name!r}:"
            " job ids are queue-wide"
        )
    if created:
        queue._sent.record(1, task._labels)
    return Job(queue, job_id, created=created)


async def send_many(
    options: EnqueueOptions[Any, R], calls: Iterable[tuple[Any, ...]]
) -> list[Job[R]]:
    """Enqueue one job per tuple of positional arguments; see `Task.enqueue_many`."""
    task = options.task
    if options.job_id is not None:
        raise ConfigurationError("job_id names one job: enqueue it with enqueue()")
    queue = task.queue
    dumps = task.codec.dump_arguments
    payloads = [dumps(call, {}) for call in calls]
    size = queue.batch_size
    with queue._instrumentation.span(queue._send_span, _attributes(options, len(payloads))):
        jobs = _new_jobs(options, payloads)
        batch = _batch(options)
        replies: list[list[tuple[str, bool, str | None]]] = []
        # A few chunks in flight at a time: overlapped round trips, yet no pipeline so
        # long that its last replies would miss the client's timeout.
        window = size * _CHUNKS_IN_FLIGHT
        for start in range(0, len(jobs), window):
            replies += await asyncio.gather(
                *(
                    queue._store.enqueue(batch, jobs[i : i + size])
                    for i in range(start, min(start + window, len(jobs)), size)
                )
            )
    handles: list[Job[R]] = [
        Job(queue, job_id, created=created) for reply in replies for job_id, created, _ in reply
    ]
    queue._sent.record(sum(job.created for job in handles), task._labels)
    return handles


def _new_jobs(options: EnqueueOptions[Any, Any], payloads: list[bytes]) -> list[NewJob]:
    if options.key is None and not options.task.unique:  # the common case, kept lean
        if options.job_id is not None:
            return [(options.job_id, payloads[0], "")]
        return [(os.urandom(12).hex(), payload, "") for payload in payloads]
    job_id = options.job_id
    return [(job_id or os.urandom(12).hex(), p, _unique_key(options, p)) for p in payloads]


def _batch(options: EnqueueOptions[Any, Any]) -> Batch:
    task = options.task
    priority = task.priority if options.priority is None else options.priority
    named = options.job_id is not None
    return Batch(
        task.name,
        priority,
        task.retries,
        options.when,
        capture_trace(task.queue._propagation),
        named,
    )


def _unique_key(options: EnqueueOptions[Any, Any], payload: bytes) -> str:
    """The job's unique key: scoped to its task, and to keys or argument digests.

    The task name's length goes first, so that no other task name and key spell
    the same string (task `a` with key `b:c`, task `a:b` with key `c`).
    """
    name = options.task.name
    if options.key is not None:
        return f"{len(name)}:{name}:key:{options.key}"
    return f"{len(name)}:{name}:args:{hashlib.sha1(payload, usedforsecurity=False).hexdigest()}"


def _attributes(options: EnqueueOptions[Any, Any], count: int) -> dict[str, str | int]:
    return {
        "messaging.system": "scalepy",
        "messaging.operation.type": "send",
        "messaging.destination.name": options.task.queue.name,
        "messaging.batch.message_count": count,
        "scalepy.queue.task": options.task.name,
    }
