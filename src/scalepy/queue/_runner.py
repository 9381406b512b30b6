"""`Runner`: runs a worker's claimed jobs, and settles their outcomes under their tokens.

Each job runs in a task of its own, started from an empty context, with the
producer's trace context attached. Outcomes go to `Acks`, which batches them per
event-loop tick; the heartbeat's findings (leases lost, cancellations requested)
cancel the attempts they concern.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scalepy.queue._acks import Acks
from scalepy.queue._heartbeat import HeldLeases
from scalepy.queue._job import _CURRENT, _STATE, JobContext
from scalepy.queue._metrics import (
    DEAD_LETTERED,
    FAILED,
    LEASES_LOST,
    PROCESS_DURATION,
    PROCESSED,
    QUEUE_NAME,
    RETRIED,
    TASK_NAME,
    UNKNOWN_TASK,
    WAIT_DURATION,
)
from scalepy.queue._telemetry import trace_scope
from scalepy.telemetry import context_propagation

if TYPE_CHECKING:
    from collections.abc import Callable

    from scalepy.queue._queue import Queue
    from scalepy.queue._store import Claimed, Settlement
    from scalepy.queue._task import Task
    from scalepy.queue._unknown import UnknownTasks
    from scalepy.ratelimit import RateLimiter
    from scalepy.telemetry import Instrumentation

__all__ = ("Runner", "WorkerStatistics")

_logger = logging.getLogger("scalepy.queue")
_NO_STATE = object()  # no startup hook: worker_state() raises LookupError
_MAX_ERROR = 4000  # characters of an error (with its traceback) kept on the job


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStatistics:
    """A snapshot of a `Worker`'s activity since it was created."""

    running: int
    """Attempts running now."""
    completed: int
    """Attempts completed and recorded."""
    failed: int
    """Attempts that raised or timed out, or whose result could not be serialized."""
    retried: int
    """Failed attempts scheduled for a retry."""
    dead_lettered: int
    """Failed attempts that were the job's last."""
    cancelled: int
    """Running attempts stopped because their job was cancelled."""
    released: int
    """Attempts handed back to the queue at shutdown."""
    lost: int
    """Attempts whose lease was lost; their outcome was refused."""
    unknown: int
    """Jobs of a task this worker does not have, put back (or dead-lettered past the limit)."""


class _Attempt:
    """One claimed job, running in `task`; `stop` says why it was cancelled, if it was."""

    __slots__ = ("claimed", "outcome", "stop", "task")

    def __init__(self, claimed: Claimed) -> None:
        self.claimed = claimed
        self.task: asyncio.Task[None] | None = None
        self.stop: str | None = None  # "lost", "cancel" or "shutdown"
        self.outcome = ""  # the ack.lua outcome code sent for it


class Runner:
    """Runs claimed jobs and records their outcomes; the worker decides what to claim.

    Args:
        queue: The queue, whose tasks are what runs.
        instrumentation: Where spans and metrics go.
        lease: The worker's lease, seconds: how long to keep retrying an outcome.
        on_slot_freed: Called each time an attempt ends.
        unknown: What to do with jobs of tasks the queue does not have.
    """

    __slots__ = (
        "_counts",
        "_dead",
        "_duration",
        "_failed",
        "_instrumentation",
        "_lost",
        "_on_slot_freed",
        "_process_span",
        "_processed",
        "_propagation",
        "_retried",
        "_tasks",
        "_unknown",
        "_unknown_task",
        "_wait_time",
        "acks",
        "held",
        "limiter",
        "queue",
        "running",
        "state",
    )

    def __init__(
        self,
        queue: Queue,
        *,
        instrumentation: Instrumentation,
        lease: float,
        on_slot_freed: Callable[[], None],
        unknown: UnknownTasks,
    ) -> None:
        self.queue = queue
        self._tasks = queue._tasks
        self._unknown = unknown
        self._instrumentation = instrumentation
        self._propagation = context_propagation(instrumentation)
        self._on_slot_freed = on_slot_freed
        metric = instrumentation.metric
        self._processed, self._failed = metric(PROCESSED), metric(FAILED)
        self._retried, self._dead = metric(RETRIED), metric(DEAD_LETTERED)
        self._lost, self._unknown_task = metric(LEASES_LOST), metric(UNKNOWN_TASK)
        self._duration, self._wait_time = metric(PROCESS_DURATION), metric(WAIT_DURATION)
        self._process_span = f"process {queue.name}"
        self.held = HeldLeases()
        """The leases of the running and settling attempts, for the heartbeat."""
        self.running: dict[str, _Attempt] = {}
        """The attempts running now, by job id."""
        self.limiter: RateLimiter | None = None
        self.state: object = _NO_STATE  # what the worker's startup hook returned
        """The queue's rate limiter, while the worker runs."""
        self.acks: Acks[_Attempt] = Acks(
            queue._store,
            acks_ordered=queue._abilities.acks_ordered,
            result_ttl_ms=queue._result_ttl_ms,
            on_settled=self._on_settled,
            retry_for=lease,
            unknown_limit=unknown.limit,
        )
        """The outcomes on their way to the store."""
        self._counts = dict.fromkeys(
            (
                "completed",
                "failed",
                "retried",
                "dead_lettered",
                "cancelled",
                "released",
                "lost",
                "unknown",
            ),
            0,
        )

    def statistics(self) -> WorkerStatistics:
        """Return a snapshot of the counters."""
        return WorkerStatistics(running=len(self.running), **self._counts)

    def start(self, claimed: Claimed) -> None:
        """Run `claimed` in a task of its own, its lease held until its outcome is recorded.

        A job of a task this worker does not know is put back at once instead.
        """
        attempt = _Attempt(claimed)
        self.held.add(claimed.id, claimed.token)
        task = self._tasks.get(claimed.task)
        if task is None:
            self._settle(attempt, self._unknown.put_back(claimed))
            return
        self.running[claimed.id] = attempt
        # An empty context: a job must not inherit the worker's (or a trace's) state.
        attempt.task = asyncio.get_running_loop().create_task(
            self._execute(attempt, task), context=contextvars.Context()
        )

    async def _execute(self, attempt: _Attempt, task: Task[..., Any]) -> None:
        claimed = attempt.claimed
        labels = task._labels
        self._wait_time.record(claimed.waited_ms / 1000, labels)
        started = time.perf_counter()
        settlement: Settlement | None
        try:
            if self.state is not _NO_STATE:
                _STATE.set(self.state)
            _CURRENT.set(
                JobContext(
                    id=claimed.id, task=claimed.task, queue=self.queue.name, attempt=claimed.tries
                )
            )
            with (
                trace_scope(self._propagation, claimed.trace),
                self._instrumentation.span(
                    self._process_span, _process_attributes(self.queue.name, claimed)
                ),
            ):
                result = await self._call(task, claimed)
        except asyncio.CancelledError:
            settlement = self._stopped(attempt, labels)
        except Exception as exc:
            settlement = self._failure(claimed, task, exc, labels)
        else:
            settlement = self._completion(claimed, task, result, labels)
        self._duration.record(time.perf_counter() - started, labels)
        del self.running[claimed.id]
        self._on_slot_freed()
        if settlement is None:
            self.held.discard(claimed.id, claimed.token)
        else:
            self._settle(attempt, settlement)

    def _settle(self, attempt: _Attempt, settlement: Settlement) -> None:
        attempt.outcome = settlement[2]
        self.acks.add(attempt, settlement)

    def _labels(self, task: Task[..., Any] | None) -> dict[str, str]:
        """The metric labels of a task's jobs (an empty task label for a task unknown here)."""
        return task._labels if task is not None else {QUEUE_NAME: self.queue.name, TASK_NAME: ""}

    async def _call(self, task: Task[..., Any], claimed: Claimed) -> Any:
        args, kwargs = task.codec.load_arguments(claimed.args)
        if self.limiter is not None and self.queue.rate_limit is not None:
            await self.limiter.wait(self.queue.name, self.queue.rate_limit, max_wait=math.inf)
        if task.timeout is None:
            return await task.func(*args, **kwargs)
        async with asyncio.timeout(task.timeout):
            return await task.func(*args, **kwargs)

    def _stopped(self, attempt: _Attempt, labels: dict[str, str]) -> Settlement | None:
        claimed = attempt.claimed
        if attempt.stop == "lost":
            self._counts["lost"] += 1
            self._lost.record(1, labels)
            _logger.warning("job %s: lease lost, attempt %d stopped", claimed.id, claimed.tries)
            return None
        if attempt.stop == "cancel":
            return (claimed.id, claimed.token, "x", "cancelled while running", 0)
        return (claimed.id, claimed.token, "r", "", 0)  # shutdown: back to the queue

    def _completion(
        self, claimed: Claimed, task: Task[..., Any], result: Any, labels: dict[str, str]
    ) -> Settlement:
        try:
            value = task.codec.result.dumps(result)
        except Exception as exc:  # a custom serializer may raise anything
            return self._unstorable(claimed, result, labels, "cannot be serialized", exc)
        limit = self.queue.max_result_bytes
        if len(value) > limit:  # written, it would hold the shared connection too long
            why = f"is {len(value)} bytes serialized, over max_result_bytes ({limit})"
            return self._unstorable(claimed, result, labels, why, None)
        return (claimed.id, claimed.token, "c", value, 0)

    def _unstorable(
        self,
        claimed: Claimed,
        result: Any,
        labels: dict[str, str],
        why: str,
        exc: Exception | None,
    ) -> Settlement:
        """Fail the job for good: its task ran, and a retry would repeat its side effects."""
        self._counts["failed"] += 1
        self._failed.record(1, labels)
        _logger.error(
            "job %s (%s) ran, but its result %s: failed, not retried",
            claimed.id,
            claimed.task,
            why,
            exc_info=exc,
        )
        cause = (
            f"SerializationError: task {claimed.task!r} ran, but its result (of type "
            f"{type(result).__name__}) {why}, so the job is not retried."
        )
        detail = "" if exc is None else " " + _describe(exc)
        return (claimed.id, claimed.token, "f", cause + detail, -1)

    def _failure(
        self, claimed: Claimed, task: Task[..., Any], exc: Exception, labels: dict[str, str]
    ) -> Settlement:
        self._counts["failed"] += 1
        self._failed.record(1, labels)
        _logger.warning(
            "job %s (%s) attempt %d failed", claimed.id, claimed.task, claimed.tries, exc_info=exc
        )
        delay = round(task.backoff(claimed.tries - 1) * 1000)
        return (claimed.id, claimed.token, "f", _describe(exc), delay)

    # -- outcomes -------------------------------------------------------------------

    def _on_settled(self, attempts: list[_Attempt], codes: list[int] | None) -> None:
        for i, attempt in enumerate(attempts):
            claimed = attempt.claimed
            self.held.discard(claimed.id, claimed.token)
            if codes is None:
                continue
            code = codes[i]
            labels = self._labels(self._tasks.get(claimed.task))
            if code == 0:
                self._counts["lost"] += 1
                self._lost.record(1, labels)
                _logger.warning("job %s: lease lost, outcome of attempt refused", claimed.id)
            elif attempt.outcome == "u":
                self._counts["unknown"] += 1
                self._unknown_task.record(1, labels)
                if code == 3:
                    self._dead_lettered(claimed, labels, "no worker that claimed it has its task")
            elif code == 2:
                self._counts["retried"] += 1
                self._retried.record(1, labels)
            elif code == 3:
                self._dead_lettered(claimed, labels, "its last attempt failed")
            elif attempt.outcome == "c":
                self._counts["completed"] += 1
                self._processed.record(1, labels)
            elif attempt.outcome == "x":
                self._counts["cancelled"] += 1
            else:
                self._counts["released"] += 1

    def _dead_lettered(self, claimed: Claimed, labels: dict[str, str], why: str) -> None:
        self._counts["dead_lettered"] += 1
        self._dead.record(1, labels)
        _logger.error("job %s (%s) dead-lettered: %s", claimed.id, claimed.task, why)

    def on_heartbeat(self, lost: list[tuple[str, int]], cancel: list[tuple[str, int]]) -> None:
        """Cancel the attempts whose lease was lost, or whose job is to be cancelled."""
        for reason, leases in (("lost", lost), ("cancel", cancel)):
            for job_id, token in leases:
                if reason == "lost":
                    self.held.discard(job_id, token)
                attempt = self.running.get(job_id)
                if attempt is not None and attempt.claimed.token == token and attempt.stop is None:
                    attempt.stop = reason
                    if attempt.task is not None:
                        attempt.task.cancel()

    async def shut_down(self, grace: float) -> None:
        """Let attempts finish for `grace` seconds, hand the rest back, record every outcome."""
        tasks = [a.task for a in self.running.values() if a.task is not None]
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        for attempt in list(self.running.values()):
            if attempt.stop is None:
                attempt.stop = "shutdown"
            if attempt.task is not None:
                attempt.task.cancel()
        tasks = [a.task for a in self.running.values() if a.task is not None]
        if tasks:
            await asyncio.wait(tasks)
        await self.acks.drain()


def _process_attributes(queue: str, claimed: Claimed) -> dict[str, str | int]:
    return {
        "messaging.system": "scalepy",
        "messaging.operation.type": "process",
        "messaging.destination.name": queue,
        "messaging.message.id": claimed.id,
        "scalepy.queue.task": claimed.task,
        "scalepy.queue.attempt": claimed.tries,
    }


def _describe(exc: BaseException) -> str:
    """`Type: message` on the first line, then the traceback, cut to `_MAX_ERROR`."""
    text = f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_tb(exc.__traceback__))
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."
