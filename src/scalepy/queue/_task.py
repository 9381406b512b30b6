"""`Task`: an async function registered on a queue, which can be enqueued as jobs."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from scalepy._validation import check_finite, check_int
from scalepy.errors import ConfigurationError
from scalepy.queue._codec import TaskCodec
from scalepy.queue._metrics import QUEUE_NAME, TASK_NAME
from scalepy.queue._sending import send, send_many

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from scalepy.queue._job import Job
    from scalepy.queue._queue import Queue

__all__ = ("Backoff", "EnqueueOptions", "Task", "check_priority")

P = ParamSpec("P")
R = TypeVar("R")

MAX_PRIORITY = 9
MAX_JOB_ID = 1000


def check_priority(priority: int) -> int:
    """Return `priority` if it is a level from 0 to 9, else raise `ConfigurationError`."""
    check_int("priority", priority, minimum=0, maximum=MAX_PRIORITY)
    return priority


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Exponential backoff with full jitter: the wait before a job's retry.

    The wait before retry `n` (0 for the first) is `uniform(0, bound)` with
    `bound = min(maximum, initial * multiplier**n)`, or `bound` itself without
    jitter. Jitter spreads the retries of jobs that failed together (a dependency
    outage) instead of retrying them in lockstep.

    Any callable taking the retry number and returning seconds works in its
    place, e.g. `scalepy.retry.RetryPolicy(...).backoff`.

    Raises:
        ConfigurationError: A field holds a value that is not allowed.
    """

    initial: float = 1.0
    """Upper bound of the first wait, in seconds, > 0."""
    maximum: float = 300.0
    """Longest wait, in seconds, >= `initial`."""
    multiplier: float = 2.0
    """Growth of the bound per retry, >= 1."""
    jitter: bool = True
    """Wait a uniformly random time up to the bound; `False` waits the bound."""
    rng: Callable[[], float] = field(default=random.random, repr=False)
    """Uniform random numbers in [0, 1]; replace it in tests."""

    def __post_init__(self) -> None:
        check_finite("initial", self.initial)
        check_finite("maximum", self.maximum, minimum=self.initial, inclusive=True)
        check_finite("multiplier", self.multiplier, minimum=1, inclusive=True)

    def __call__(self, retry: int) -> float:
        """Return the wait before retry number `retry` (0 for the first), in seconds."""
        try:
            bound = min(self.maximum, self.initial * self.multiplier**retry)
        except OverflowError:
            bound = self.maximum
        return self.rng() * bound if self.jitter else bound


@dataclass(frozen=True, slots=True, kw_only=True)
class EnqueueOptions(Generic[P, R]):
    """A task with options for the jobs it enqueues; made by `Task.options()`."""

    task: Task[P, R]
    """The task."""
    when: str = ""
    """When the jobs run: `""` now, `"+<ms>"` after a delay, `"<ms>"` at a Unix time."""
    key: str | None = None
    """The unique key: at most one live job per key and task."""
    priority: int | None = None
    """The priority level, or `None` for the task's."""
    job_id: str | None = None
    """The job's id, chosen by the caller: the idempotency key of `enqueue`."""

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """Enqueue one job with these options; see `Task.enqueue`."""
        return await send(self, args, kwargs)

    async def enqueue_many(self, calls: Iterable[tuple[Any, ...]]) -> list[Job[R]]:
        """Enqueue many jobs with these options; see `Task.enqueue_many`."""
        return await send_many(self, calls)


class Task(Generic[P, R]):
    """An async function registered on a `Queue` under a name; made by `Queue.task`.

    Calling the task runs the function directly; `enqueue()` runs it on a worker.

    Attributes:
        queue: The queue it belongs to.
        func: The function.
        name: The name workers look the function up by.
        retries: Retries after a failed first attempt before the job is dead-lettered.
        timeout: Seconds an attempt may run before it fails, or `None`.
        backoff: Seconds to wait before retry `n` (0 for the first).
        priority: Default priority level of its jobs, 0 (lowest) to 9.
        unique: Whether a job is skipped while a live job has the same arguments.
        codec: How its arguments and result become bytes, typed by its annotations.
    """

    __slots__ = (
        "_default",
        "_labels",
        "backoff",
        "codec",
        "func",
        "name",
        "priority",
        "queue",
        "retries",
        "timeout",
        "unique",
    )

    def __init__(
        self,
        queue: Queue,
        func: Callable[P, Awaitable[R]],
        *,
        name: str,
        retries: int,
        timeout: float | None,
        backoff: Callable[[int], float],
        priority: int,
        unique: bool,
    ) -> None:
        if not name:
            raise ConfigurationError("a task needs a non-empty name")
        check_int("retries", retries, minimum=0)
        if timeout is not None:
            check_finite("timeout", timeout)
        if not callable(backoff):
            raise ConfigurationError(f"backoff must take the retry number, got {backoff!r}")
        self.queue = queue
        self.func = func
        self.name = name
        self.retries = retries
        self.timeout = timeout
        self.backoff = backoff
        self.priority = check_priority(priority)
        self.unique = unique
        self.codec = TaskCodec(queue.serializer, func, name)
        self._labels = {QUEUE_NAME: queue.name, TASK_NAME: name}
        self._default: EnqueueOptions[P, R] = EnqueueOptions(task=self)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
        """Run the function here and now, not as a job."""
        return self.func(*args, **kwargs)

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """Enqueue a job running the function with these arguments.

        Arguments are serialized now, each by its parameter's annotation (see
        the queue docs, "Typed values").

        Returns:
            A handle on the job (on the live job already holding the unique key,
            for a unique task: see `Job.created`).

        Raises:
            SerializationError: An argument cannot be serialized.
            BackendError: Redis failed or did not answer in time. A timeout
                (`BackendTimeout`) does not say the job was not queued: Redis may
                have run the enqueue without its reply arriving in time. Retry
                with `options(job_id=...)` to be safe.
        """
        return await send(self._default, args, kwargs)

    async def enqueue_many(self, calls: Iterable[tuple[Any, ...]]) -> list[Job[R]]:
        """Enqueue one job per tuple of positional arguments, in bulk.

        Jobs go to Redis in chunks of the queue's `batch_size`, one script call
        per chunk, a few chunks per round trip. Each chunk is atomic; if Redis
        fails midway, the chunks sent before the failure stay enqueued.

        Args:
            calls: One tuple of positional arguments per job.

        Returns:
            The jobs' handles, in order.

        Raises:
            SerializationError: An argument cannot be serialized; nothing was enqueued.
            BackendError: Redis failed or did not answer in time.
        """
        return await send_many(self._default, calls)

    def options(
        self,
        *,
        delay: float | timedelta | None = None,
        at: datetime | None = None,
        key: str | None = None,
        priority: int | None = None,
        job_id: str | None = None,
    ) -> EnqueueOptions[P, R]:
        """Return this task with options for the jobs it enqueues.

        Example:
            `await send_email.options(delay=60, key=f"welcome:{user}").enqueue(user)`

        Args:
            delay: Run the jobs after this many seconds (or this `timedelta`).
            at: Run the jobs at this time (timezone-aware).
            key: A unique key: while a job with this key (and task) is queued,
                scheduled or running, enqueueing another returns that job instead.
            priority: The jobs' priority level, 0 (lowest) to 9.
            job_id: The job's id, instead of a random one, for `enqueue` (one job):
                the idempotency key of the enqueue. While a job with this id
                exists (queued, scheduled, running, or ended and kept for the
                result TTL, or dead), enqueueing again returns it, with
                `created` false, so a retried enqueue never makes a second job.
                Ids are queue-wide: up to 1000 characters, no whitespace.

        Raises:
            ConfigurationError: Both `delay` and `at`, a negative delay, a naive
                `at`, a priority outside 0-9, or an empty, too long or
                whitespace-holding `job_id`.
        """
        return EnqueueOptions(
            task=self,
            when=_when(delay, at),
            key=key,
            priority=None if priority is None else check_priority(priority),
            job_id=None if job_id is None else _check_job_id(job_id),
        )

    def __repr__(self) -> str:
        return f"<Task {self.name!r} queue={self.queue.name!r} retries={self.retries}>"


def _check_job_id(job_id: str) -> str:
    # Settled ids are announced space-separated (see lua/prelude.lua): no whitespace.
    if not 0 < len(job_id) <= MAX_JOB_ID or any(char.isspace() for char in job_id):
        raise ConfigurationError(
            f"job_id must be 1 to {MAX_JOB_ID} characters without whitespace, got {job_id!r}"
        )
    return job_id


def _when(delay: float | timedelta | None, at: datetime | None) -> str:
    if delay is not None and at is not None:
        raise ConfigurationError("give delay or at, not both")
    if delay is not None:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
        check_finite("delay", seconds, inclusive=True)
        return f"+{round(seconds * 1000)}"
    if at is not None:
        if at.tzinfo is None:
            raise ConfigurationError(f"at must be timezone-aware, got {at!r}")
        return str(round(at.timestamp() * 1000))
    return ""
