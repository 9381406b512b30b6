"""`Job`: a handle on an enqueued job: its status, its result, its cancellation."""

from __future__ import annotations

import enum
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from scalepy.errors import (
    JobCancelled,
    JobFailed,
    JobNotFound,
    NoWorkerState,
    ResultTimeout,
    UsageError,
)

if TYPE_CHECKING:
    from scalepy.queue._queue import Queue
    from scalepy.queue._store import StoredJob

__all__ = ("Job", "JobContext", "JobInfo", "JobStatus", "current_job", "worker_state")

R = TypeVar("R")
T = TypeVar("T")


class JobStatus(enum.Enum):
    """Where a job is in its life."""

    QUEUED = "queued"
    """Ready, waiting for a worker."""
    SCHEDULED = "scheduled"
    """Waiting for its time: delayed, or backing off before a retry."""
    ACTIVE = "active"
    """Leased to a worker, running."""
    COMPLETED = "completed"
    """Finished; its result is kept for the queue's `result_ttl`."""
    DEAD = "dead"
    """Failed on its last attempt; kept in the dead-letter set until re-queued."""
    CANCELLED = "cancelled"
    """Cancelled before it completed."""

    @property
    def finished(self) -> bool:
        """Whether the job has reached an end state (completed, dead or cancelled)."""
        return self in _FINISHED


_FINISHED = frozenset((JobStatus.COMPLETED, JobStatus.DEAD, JobStatus.CANCELLED))


@dataclass(frozen=True, slots=True, kw_only=True)
class JobInfo:
    """What the queue knows about a job."""

    id: str
    """The job's id."""
    task: str
    """The task's name."""
    status: JobStatus
    """Where the job is in its life."""
    priority: int
    """Its priority level, 0 (lowest) to 9."""
    attempts: int
    """Attempts started so far (an attempt cut short by a worker shutdown does not count)."""
    retries: int
    """How many times it may be retried after its first attempt."""
    created_at: float
    """When it was enqueued, Unix time in seconds (Redis' clock)."""
    started_at: float | None
    """When its latest attempt started, if one did."""
    finished_at: float | None
    """When it reached an end state, if it did."""
    error: str | None
    """The latest failed attempt's error, if any (type and message)."""
    cancel_requested: bool
    """Whether cancellation was requested while it ran."""
    worker: str | None
    """The name of the worker that claimed it last, if one did."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobContext:
    """The job a worker is running, as seen from inside the task (`current_job()`)."""

    id: str
    """The job's id: a natural idempotency key for the task's side effects."""
    task: str
    """The task's name."""
    queue: str
    """The queue's name."""
    attempt: int
    """1 for the first attempt, 2 for the first retry, and so on."""


_CURRENT: ContextVar[JobContext] = ContextVar("scalepy.queue.current_job")
_STATE: ContextVar[object] = ContextVar("scalepy.queue.worker_state")


def current_job() -> JobContext:
    """Return the job the calling task runs for.

    Raises:
        LookupError: Not called from inside a task run by a `Worker`.
    """
    return _CURRENT.get()


def worker_state(kind: type[T]) -> T:
    """Return what the worker's `startup` hook returned, e.g. an open `PoolManager`.

    ```python
    async def startup() -> PoolManager:
        pools = PoolManager(postgres=DSN)
        await pools.open()
        return pools

    worker = Worker(queue, startup=startup, shutdown=PoolManager.aclose)

    @queue.task()
    async def count_users() -> int:
        return await worker_state(PoolManager).postgres.fetchval("SELECT count(*) FROM users")
    ```

    Args:
        kind: The type the state has; checked, so the result is typed.

    Returns:
        The state, as `kind`.

    Raises:
        NoWorkerState: Not called from inside a task run by a `Worker` with a
            `startup` hook (also a `LookupError`).
        UsageError: The state is not a `kind` (also a `TypeError`).
    """
    try:
        state = _STATE.get()
    except LookupError:
        raise NoWorkerState(
            "worker_state() works inside a task run by a Worker given startup=...; here no "
            "startup hook left a state (in a test, call the task through a Worker, or pass "
            "what it needs as an argument)"
        ) from None
    if not isinstance(state, kind):
        raise UsageError(
            f"the worker's state is a {type(state).__name__}, not a {kind.__name__}: "
            f"ask for the type the startup hook returns"
        )
    return state


class Job(Generic[R]):
    """A handle on one job; cheap to create, e.g. from an id kept elsewhere (`Queue.job`).

    Attributes:
        id: The job's id.
        created: Whether the enqueue that returned this handle created the job;
            false when a live job already held its unique key (this is that job).
    """

    __slots__ = ("_queue", "created", "id")

    def __init__(self, queue: Queue, job_id: str, *, created: bool = True) -> None:
        self._queue = queue
        self.id = job_id
        self.created = created

    async def info(self) -> JobInfo:
        """Read what the queue knows about the job.

        Raises:
            JobNotFound: Unknown id, or the job ended longer ago than the result
                TTL (a dead job: than the queue's `dead_ttl`), or was purged.
            BackendError: Redis failed or did not answer in time.
        """
        return _info(await self._stored())

    async def status(self) -> JobStatus:
        """Read the job's status.

        Raises:
            JobNotFound: Unknown id, or the job ended longer ago than the result
                TTL (a dead job: than the queue's `dead_ttl`), or was purged.
            BackendError: Redis failed or did not answer in time.
        """
        return JobStatus((await self._stored()).state)

    async def result(self, timeout: float | None = None) -> R:  # noqa: ASYNC109 - the contract
        """Wait for the job to finish and return its result.

        Waits on a notification the worker publishes when the job settles, and
        re-reads the job at least every second in case a notification was lost.

        Args:
            timeout: Seconds to wait at most; `None` waits as long as it takes.

        Returns:
            The task's return value, decoded into the task's return annotation
            (untyped with the queue's serializer: with JSON, tuples come back as
            lists). A job of a task this queue has not registered decodes untyped.

        Raises:
            JobFailed: The job failed for good (dead-lettered); `error` says why. A
                task whose result the serializer cannot encode fails so too, at its
                first attempt: it ran, and a retry would repeat its side effects.
            JobCancelled: The job was cancelled.
            JobNotFound: Unknown id, or the result outlived the result TTL (a dead
                job: the queue's `dead_ttl`), or the job was purged.
            ResultTimeout: The job did not finish within `timeout`.
            BackendError: Redis failed or did not answer in time.
        """
        stored = await self._queue._results.wait(self.id, timeout, self._stored)
        if stored is None:
            raise ResultTimeout(self.id, timeout or 0.0)
        result: R = self._outcome(stored)
        return result

    async def cancel(self) -> JobStatus:
        """Cancel the job: at once if it waits, within a heartbeat if it runs.

        A running job's task is cancelled by its worker at the worker's next
        heartbeat (a third of its lease); `result()` then raises `JobCancelled`.

        Returns:
            `CANCELLED`, `ACTIVE` while a running job's worker has yet to stop it,
            or the end state the job had reached already (nothing changes then).

        Raises:
            JobNotFound: Unknown id, or the job ended longer ago than the result
                TTL (a dead job: than the queue's `dead_ttl`), or was purged.
            BackendError: Redis failed or did not answer in time.
        """
        state = await self._queue._store.cancel(self.id, result_ttl_ms=self._queue._result_ttl_ms)
        if state is None:
            raise JobNotFound(self.id)
        return JobStatus(state)

    def __repr__(self) -> str:
        return f"<Job {self.id!r} queue={self._queue.name!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Job):
            return NotImplemented
        return (self.id, self._queue.name) == (other.id, other._queue.name)

    def __hash__(self) -> int:
        return hash((self.id, self._queue.name))

    async def _stored(self) -> StoredJob:
        stored = await self._queue._store.job(self.id)
        if stored is None:
            raise JobNotFound(self.id)
        return stored

    def _outcome(self, stored: StoredJob) -> Any:
        if stored.state == "completed":
            assert stored.result is not None, "ack.lua stores a result with every completion"
            task = self._queue.tasks.get(stored.task)
            serializer = self._queue.serializer if task is None else task.codec.result
            return serializer.loads(stored.result)
        if stored.state == "cancelled":
            raise JobCancelled(self.id)
        raise JobFailed(self.id, stored.error or "unknown error")


def _info(stored: StoredJob) -> JobInfo:
    return JobInfo(
        id=stored.id,
        task=stored.task,
        status=JobStatus(stored.state),
        priority=stored.priority,
        attempts=stored.tries,
        retries=stored.retries,
        created_at=stored.created_ms / 1000,
        started_at=None if stored.started_ms is None else stored.started_ms / 1000,
        finished_at=None if stored.finished_ms is None else stored.finished_ms / 1000,
        error=stored.error,
        cancel_requested=stored.cancel_requested,
        worker=stored.worker,
    )
